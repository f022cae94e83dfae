"""An emulator of the OpenStack API subset the provider uses, served over real HTTP.

Written from the official API references (Identity v3, Compute v2.1, Networking v2.0,
Image v2). openstacksdk talks to it unmodified, exactly as to a cloud: Keystone issues a
token and a catalog, the SDK discovers versions, then calls Nova, Neutron and Glance.

What real Nova (tests/openstack/real_nova.py) cannot show here is what this adds:
Neutron networks, ports and floating IPs (with `description`), and faults on demand
(HTTP errors, slow responses, quota errors, servers stuck in BUILD or going to ERROR).
The same provider contract suite runs against both, which keeps this emulator honest.

Behaviour kept faithful to the references and to Nova's code:
- every service call needs a valid `X-Auth-Token` (401 otherwise);
- `GET /servers/detail` filters by `name` as a regular expression and `status`, pages
  with `limit`/`marker`, and ignores unknown query parameters such as `metadata` (Nova
  does not filter on metadata: clients must);
- a create is validated (image, flavor, networks, metadata, base64 user data, key pair,
  security groups, availability zone) and answers 202 with the new id;
- quota errors answer 403 "Quota exceeded for instances: ..." as Nova does;
- a deleted server shows `task_state: deleting` for a while, then disappears, and its
  ports go with it (floating IPs on them are disassociated, as Neutron does).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PROJECT_ID = "9f1c0e2a6b7d4c8e9a0b1c2d3e4f5a6b"
USER_ID = "2b3c4d5e6f708192a3b4c5d6e7f80912"
COMPUTE_MAX_MICROVERSION = "2.96"


@dataclass
class Fault:
    """One injected fault. Matches requests by method and a regex on the path.

    status: the HTTP status answered (None: no error, only `delay`).
    after: perform the real operation first, then answer the error (a create that
        succeeded server-side but whose answer was lost).
    delay: seconds to sleep before answering (a slow or timing-out response).
    count: how many matching requests it applies to (None: until cleared).
    """

    method: str
    path: str
    status: int | None = 500
    message: str = "Injected fault"
    delay: float = 0.0
    after: bool = False
    count: int | None = 1
    hits: int = 0


@dataclass
class EmuServer:
    id: str
    name: str
    project_id: str
    flavor: dict[str, Any]
    image_id: str
    network_ids: list[str]
    metadata: dict[str, str]
    key_name: str | None
    security_groups: list[str]
    availability_zone: str
    user_data: str | None
    created: float
    active_at: float | None  # None: stays in BUILD
    error: bool = False
    status_override: str | None = None  # e.g. SHUTOFF, set by tests
    updated: float = 0.0
    deleted_at: float | None = None
    ports: list[str] = field(default_factory=list)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class OpenStackEmulator:
    """Keystone + Nova + Neutron + Glance subset on 127.0.0.1, with fault injection."""

    def __init__(
        self,
        *,
        username: str = "demo",
        password: str = "s3cret-Passw0rd",
        project_name: str = "demo",
        app_credential_id: str = "a1b2c3d4e5f6",
        app_credential_secret: str = "app-cred-Secr3t",
        build_seconds: float = 0.3,
        delete_seconds: float = 0.3,
        max_instances: int = 20,
        latency: float = 0.0,
    ) -> None:
        self.username = username
        self.password = password
        self.project_name = project_name
        self.app_credential_id = app_credential_id
        self.app_credential_secret = app_credential_secret
        self.build_seconds = build_seconds
        self.delete_seconds = delete_seconds
        self.max_instances = max_instances
        # Seconds every API request waits before it is handled (not /_emulator): a slow
        # or distant cloud. Slept outside the lock, so concurrent requests overlap as
        # they do on a real API. Settable at any time (also in the control API).
        self.latency = latency
        self.lock = threading.RLock()
        self.tokens: dict[str, float] = {}
        self.servers: dict[str, EmuServer] = {}
        self.ports: dict[str, dict[str, Any]] = {}
        self.floating_ips: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []  # (method, path?query), never headers
        self.request_bodies: list[str] = []
        # (method, path?query, started, answered) in time.monotonic(): which calls overlapped
        self.timings: list[tuple[str, str, float, float]] = []
        self.stuck_in_build = 0  # next N created servers never leave BUILD
        self.error_on_build = 0  # next N created servers go to ERROR
        self._ip_counter = 10
        self.flavors = [
            {"id": "1", "name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1},
            {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20},
        ]
        self.images = [{"id": "155d900f-4e14-4e4c-a73d-069cbf4541e6", "name": "cirros"}]
        self.networks = [
            {
                "id": "3cb9bc59-5699-4588-a4b1-b87f96708bc6",
                "name": "private",
                "external": False,
                "cidr4": "10.0.0.0/24",
                "cidr6": "fd00:10::/64",
            },
            {
                "id": "8f0d3a5e-0c4e-4b69-9a0a-3b6a5b1c2d3e",
                "name": "public",
                "external": True,
                "cidr4": "203.0.113.0/24",
                "cidr6": "2001:db8::/64",
            },
        ]
        self.keypairs = {"mykey"}
        self.security_group_names = {"default", "web"}
        self.availability_zones = {"nova", "az2"}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> OpenStackEmulator:
        emulator = self

        class Handler(_Handler):
            emu = emulator

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # A short poll: stop() waits for the loop's next one (0.5 s by default, per test).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._httpd is not None, "emulator not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    def password_auth(self) -> dict[str, str]:
        return {
            "auth_url": self.auth_url,
            "username": self.username,
            "password": self.password,
            "project_name": self.project_name,
            "user_domain_name": "Default",
            "project_domain_id": "default",
        }

    def provider_options(self, **overrides: Any) -> dict[str, Any]:
        """Options of the OpenStack provider that reach this emulator."""
        return {
            "auth": self.password_auth(),
            "region_name": "RegionOne",
            "flavor": "m1.tiny",
            "image": "cirros",
            "network": "private",
            "request_timeout_seconds": 5,
            **overrides,
        }

    def os_env(self) -> dict[str, str]:
        """The OS_* variables a user would export for this cloud (SimpleScaleVM style)."""
        return {
            "OS_AUTH_URL": self.auth_url,
            "OS_USERNAME": self.username,
            "OS_PASSWORD": self.password,
            "OS_PROJECT_NAME": self.project_name,
            "OS_PROJECT_ID": PROJECT_ID,
            "OS_PROJECT_DOMAIN_ID": "default",
            "OS_USER_DOMAIN_NAME": "Default",
            "OS_REGION_NAME": "RegionOne",
            "OS_INTERFACE": "public",
            "OS_IDENTITY_API_VERSION": "3",
        }

    # ------------------------------------------------------------ test controls
    def add_fault(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def add_floating_ip(self, description: str) -> dict[str, Any]:
        with self.lock:
            ext = self.networks[1]
            fip = {
                "id": str(uuid.uuid4()),
                "floating_ip_address": self._next_ip(ext, 4),
                "floating_network_id": ext["id"],
                "fixed_ip_address": None,
                "port_id": None,
                "router_id": None,
                "status": "DOWN",
                "description": description,
                "project_id": PROJECT_ID,
                "tenant_id": PROJECT_ID,
                "tags": [],
                "revision_number": 0,
                "created_at": _iso(time.time()),
                "updated_at": _iso(time.time()),
            }
            self.floating_ips[fip["id"]] = fip
            return dict(fip)

    def set_server_status(self, server_id: str, status: str | None) -> None:
        """Force a status (e.g. SHUTOFF, ERROR) as if the hypervisor changed it."""
        with self.lock:
            s = self.servers[server_id]
            s.status_override = status
            s.updated = time.time()

    def live_servers(self) -> list[EmuServer]:
        with self.lock:
            self._expire()
            return [s for s in self.servers.values() if s.deleted_at is None]

    def fip_server(self, fip_id: str) -> str | None:
        """Id of the server holding this floating IP, or None."""
        with self.lock:
            port_id = self.floating_ips[fip_id]["port_id"]
            return self.ports[port_id]["device_id"] if port_id else None

    # ---------------------------------------------------------------- internals
    def _next_ip(self, net: dict[str, Any], version: int) -> str:
        self._ip_counter += 1
        cidr = ipaddress.ip_network(net["cidr4"] if version == 4 else net["cidr6"])
        return str(cidr.network_address + self._ip_counter)

    def _expire(self) -> None:
        now = time.time()
        for sid, s in list(self.servers.items()):
            if s.deleted_at is not None and now - s.deleted_at >= self.delete_seconds:
                for pid in s.ports:
                    self.ports.pop(pid, None)
                    for fip in self.floating_ips.values():
                        if fip["port_id"] == pid:
                            fip.update(port_id=None, fixed_ip_address=None, status="DOWN")
                del self.servers[sid]

    def _status(self, s: EmuServer) -> tuple[str, str | None]:
        """(status, task_state)."""
        if s.deleted_at is not None:
            return ("ACTIVE" if s.active_at and time.time() >= s.active_at else "BUILD"), "deleting"
        if s.status_override:
            return s.status_override, None
        if s.error and time.time() >= s.created + self.build_seconds:
            return "ERROR", None
        if s.active_at is not None and time.time() >= s.active_at:
            return "ACTIVE", None
        return "BUILD", "spawning"

    def _ensure_ports(self, s: EmuServer) -> None:
        """Ports are bound when the server leaves BUILD (the network is wired then)."""
        if s.ports or s.active_at is None or time.time() < s.active_at:
            return
        for net_id in s.network_ids:
            net = next(n for n in self.networks if n["id"] == net_id)
            port = {
                "id": str(uuid.uuid4()),
                "network_id": net_id,
                "device_id": s.id,
                "device_owner": "compute:" + s.availability_zone,
                "mac_address": f"fa:16:3e:{self._ip_counter % 256:02x}:"
                f"{len(self.ports) % 256:02x}:07",
                "fixed_ips": [
                    {"subnet_id": net_id + "-v4", "ip_address": self._next_ip(net, 4)},
                    {"subnet_id": net_id + "-v6", "ip_address": self._next_ip(net, 6)},
                ],
                "status": "ACTIVE",
                "project_id": s.project_id,
                "tenant_id": s.project_id,
                "description": "",
                "name": "",
                "admin_state_up": True,
            }
            self.ports[port["id"]] = port
            s.ports.append(port["id"])

    def server_view(self, s: EmuServer) -> dict[str, Any]:
        self._ensure_ports(s)
        status, task_state = self._status(s)
        addresses: dict[str, list[dict[str, Any]]] = {}
        for pid in s.ports:
            port = self.ports.get(pid)
            if port is None:
                continue
            net = next(n for n in self.networks if n["id"] == port["network_id"])
            entries = addresses.setdefault(net["name"], [])
            for ip in port["fixed_ips"]:
                version = ipaddress.ip_address(ip["ip_address"]).version
                entries.append(
                    {
                        "addr": ip["ip_address"],
                        "version": version,
                        "OS-EXT-IPS:type": "fixed",
                        "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                    }
                )
            for fip in self.floating_ips.values():
                if fip["port_id"] == pid:
                    entries.append(
                        {
                            "addr": fip["floating_ip_address"],
                            "version": 4,
                            "OS-EXT-IPS:type": "floating",
                            "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                        }
                    )
        vm_state = {"BUILD": "building", "ACTIVE": "active", "ERROR": "error"}.get(
            status, status.lower()
        )
        return {
            "id": s.id,
            "name": s.name,
            "status": status,
            "tenant_id": s.project_id,
            "user_id": USER_ID,
            "metadata": dict(s.metadata),
            "hostId": "",
            "image": {"id": s.image_id, "links": []},
            "flavor": {
                "vcpus": s.flavor["vcpus"],
                "ram": s.flavor["ram"],
                "disk": s.flavor["disk"],
                "ephemeral": 0,
                "swap": 0,
                "original_name": s.flavor["name"],
                "extra_specs": {},
            },
            "created": _iso(s.created),
            "updated": _iso(max(s.updated, s.created)),
            "addresses": addresses,
            "accessIPv4": "",
            "accessIPv6": "",
            "links": [{"rel": "self", "href": f"{self.url}/compute/v2.1/servers/{s.id}"}],
            "OS-DCF:diskConfig": "MANUAL",
            "progress": 0,
            "OS-EXT-AZ:availability_zone": s.availability_zone,
            "config_drive": "",
            "key_name": s.key_name,
            "OS-SRV-USG:launched_at": _iso(s.active_at) if s.active_at else None,
            "OS-SRV-USG:terminated_at": None,
            "security_groups": [{"name": n} for n in s.security_groups],
            "OS-EXT-STS:task_state": task_state,
            "OS-EXT-STS:vm_state": vm_state,
            "OS-EXT-STS:power_state": 1 if status == "ACTIVE" else 0,
            "os-extended-volumes:volumes_attached": [],
            "locked": False,
            "locked_reason": None,
            "description": None,
            "tags": [],
            "trusted_image_certificates": None,
            "server_groups": [],
            "pinned_availability_zone": None,
            "host_status": "UP",
        }


class HTTPError(Exception):
    def __init__(self, status: int, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


_NOVA_ERROR_KEYS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    409: "conflictingRequest",
    413: "overLimit",
    500: "computeFault",
    503: "serviceUnavailable",
}


class _Handler(BaseHTTPRequestHandler):
    emu: OpenStackEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: tests read emu.requests instead

    # ----------------------------------------------------------------- plumbing
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        emu = self.emu
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        query = {k: v for k, v in parse_qs(split.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        started = time.monotonic()
        with emu.lock:
            emu.requests.append((method, self.path))
            if raw:
                emu.request_bodies.append(raw.decode("utf-8", "replace"))
            fault = self._match_fault(method, path)
        service = path.split("/")[1] if path != "/" else ""
        try:
            if emu.latency > 0 and service != "_emulator":
                time.sleep(emu.latency)
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.status and not fault.after:
                raise HTTPError(fault.status, fault.message)
            body = json.loads(raw) if raw else None
            status, payload, headers = self._route(method, path, query, body)
            if fault is not None and fault.status and fault.after:
                raise HTTPError(fault.status, fault.message)
        except HTTPError as err:
            status, payload, headers = self._error(service, err)
        except json.JSONDecodeError:
            status, payload, headers = self._error(service, HTTPError(400, "Malformed JSON"))
        self._send(status, payload, headers)
        with emu.lock:
            emu.timings.append((method, self.path, started, time.monotonic()))

    def _match_fault(self, method: str, path: str) -> Fault | None:
        for f in self.emu.faults:
            if f.method.upper() == method and re.search(f.path, path):
                if f.count is not None and f.hits >= f.count:
                    continue
                f.hits += 1
                return f
        return None

    def _error(self, service: str, err: HTTPError) -> tuple[int, dict[str, Any], dict[str, str]]:
        if service == "compute":
            key = err.kind or _NOVA_ERROR_KEYS.get(err.status, "computeFault")
            return err.status, {key: {"code": err.status, "message": err.message}}, {}
        if service == "network":
            kind = err.kind or {404: "NotFound", 409: "Conflict"}.get(err.status, "HTTPError")
            return (
                err.status,
                {"NeutronError": {"type": kind, "message": err.message, "detail": ""}},
                {},
            )
        return err.status, {"error": {"code": err.status, "message": err.message}}, {}

    def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Openstack-Request-Id", "req-" + str(uuid.uuid4()))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to do

    def _authorize(self) -> None:
        token = self.headers.get("X-Auth-Token")
        with self.emu.lock:
            if not token or token not in self.emu.tokens:
                raise HTTPError(401, "The request you have made requires authentication.")

    # ------------------------------------------------------------------ routing
    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        parts = path.strip("/").split("/")
        service = parts[0] if parts and parts[0] else ""
        if service == "identity":
            return self._identity(method, parts[1:], body)
        if service == "compute":
            return self._compute(method, parts[1:], query, body)
        if service == "network":
            return self._network(method, parts[1:], query, body)
        if service == "image":
            return self._image(method, parts[1:], query)
        if service == "_emulator":
            return self._control(method, parts[1:], body)
        raise HTTPError(404, "Not found")

    # ----------------------------------------------------------------- keystone
    def _identity_version(self) -> dict[str, Any]:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self.emu.url}/identity/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }

    def _identity(
        self, method: str, parts: list[str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if parts == [] and method == "GET":
            return 300, {"versions": {"values": [self._identity_version()]}}, {}
        if parts == ["v3"] and method == "GET":
            return 200, {"version": self._identity_version()}, {}
        if parts == ["v3", "auth", "tokens"] and method == "POST":
            return self._issue_token(body)
        raise HTTPError(404, "Not found")

    def _issue_token(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        emu = self.emu
        try:
            ident = body["auth"]["identity"]
            methods = ident["methods"]
        except (TypeError, KeyError) as exc:
            raise HTTPError(400, "Expecting auth.identity.methods") from exc
        if methods == ["password"]:
            user = ident["password"]["user"]
            domain = user.get("domain", {})
            if (
                user.get("name") != emu.username
                or user.get("password") != emu.password
                or not (domain.get("name") == "Default" or domain.get("id") == "default")
            ):
                raise HTTPError(401, "The request you have made requires authentication.")
            scope = body["auth"].get("scope", {}).get("project", {})
            if scope.get("id") not in (None, PROJECT_ID) or scope.get("name") not in (
                None,
                emu.project_name,
            ):
                raise HTTPError(401, "Unknown project")
        elif methods == ["application_credential"]:
            cred = ident["application_credential"]
            if (
                cred.get("id") != emu.app_credential_id
                or cred.get("secret") != emu.app_credential_secret
            ):
                raise HTTPError(401, "The request you have made requires authentication.")
        else:
            raise HTTPError(401, "Unsupported auth method")
        token = uuid.uuid4().hex
        with emu.lock:
            emu.tokens[token] = time.time()
        base = emu.url

        def endpoints(url: str) -> list[dict[str, str]]:
            return [
                {
                    "id": uuid.uuid4().hex,
                    "interface": i,
                    "region": "RegionOne",
                    "region_id": "RegionOne",
                    "url": url,
                }
                for i in ("public", "internal", "admin")
            ]

        catalog = [
            {
                "type": "identity",
                "name": "keystone",
                "id": "1",
                "endpoints": endpoints(f"{base}/identity"),
            },
            {
                "type": "compute",
                "name": "nova",
                "id": "2",
                "endpoints": endpoints(f"{base}/compute/v2.1"),
            },
            {
                "type": "network",
                "name": "neutron",
                "id": "3",
                "endpoints": endpoints(f"{base}/network"),
            },
            {"type": "image", "name": "glance", "id": "4", "endpoints": endpoints(f"{base}/image")},
        ]
        now = time.time()
        payload = {
            "token": {
                "methods": methods,
                "expires_at": _iso(now + 3600).replace("Z", ".000000Z"),
                "issued_at": _iso(now).replace("Z", ".000000Z"),
                "user": {
                    "id": USER_ID,
                    "name": emu.username,
                    "domain": {"id": "default", "name": "Default"},
                },
                "project": {
                    "id": PROJECT_ID,
                    "name": emu.project_name,
                    "domain": {"id": "default", "name": "Default"},
                },
                "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}],
                "catalog": catalog,
                "audit_ids": [uuid.uuid4().hex[:22]],
            }
        }
        return 201, payload, {"X-Subject-Token": token}

    # --------------------------------------------------------------------- nova
    def _compute_version(self) -> dict[str, Any]:
        return {
            "id": "v2.1",
            "status": "CURRENT",
            "version": COMPUTE_MAX_MICROVERSION,
            "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{self.emu.url}/compute/v2.1/"}],
        }

    def _compute(
        self, method: str, parts: list[str], query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if parts == [] and method == "GET":
            return 200, {"versions": [self._compute_version()]}, {}
        if parts == ["v2.1"] and method == "GET":
            return 200, {"version": self._compute_version()}, {}
        if not parts or parts[0] != "v2.1":
            raise HTTPError(404, "Not found")
        self._authorize()
        rest = parts[1:]
        # Clients may put the project id in the URL (legacy endpoints): accept it.
        if rest and rest[0] == PROJECT_ID:
            rest = rest[1:]
        emu = self.emu
        with emu.lock:
            emu._expire()
            if rest == ["servers"] and method == "POST":
                return self._create_server(body)
            if rest in (["servers", "detail"], ["servers"]) and method == "GET":
                return self._list_servers(query, detail=rest == ["servers", "detail"])
            if len(rest) == 2 and rest[0] == "servers":
                s = emu.servers.get(rest[1])
                if s is None:
                    raise HTTPError(404, f"Instance {rest[1]} could not be found.")
                if method == "GET":
                    return 200, {"server": emu.server_view(s)}, {}
                if method == "DELETE":
                    if s.deleted_at is None:
                        s.deleted_at = time.time()
                    return 204, None, {}
            if len(rest) == 3 and rest[0] == "servers" and rest[2] == "metadata":
                s = emu.servers.get(rest[1])
                if s is None:
                    raise HTTPError(404, f"Instance {rest[1]} could not be found.")
                return 200, {"metadata": dict(s.metadata)}, {}
            if rest in (["flavors"], ["flavors", "detail"]) and method == "GET":
                flavors = emu.flavors
                if "name" in query:  # not a Nova filter: ignored, as Nova does
                    pass
                return 200, {"flavors": [self._flavor_view(f) for f in flavors]}, {}
            if len(rest) == 2 and rest[0] == "flavors" and method == "GET":
                for f in emu.flavors:
                    if f["id"] == rest[1]:
                        return 200, {"flavor": self._flavor_view(f)}, {}
                raise HTTPError(404, f"Flavor {rest[1]} could not be found.")
        raise HTTPError(404, "Not found")

    def _flavor_view(self, f: dict[str, Any]) -> dict[str, Any]:
        return {
            **f,
            "OS-FLV-EXT-DATA:ephemeral": 0,
            "OS-FLV-DISABLED:disabled": False,
            "os-flavor-access:is_public": True,
            "swap": 0,
            "rxtx_factor": 1.0,
            "description": None,
            "extra_specs": {},
            "links": [],
        }

    def _create_server(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        emu = self.emu
        if not isinstance(body, dict) or not isinstance(body.get("server"), dict):
            raise HTTPError(400, "Invalid input: 'server' is a required property")
        req = body["server"]
        name = req.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise HTTPError(400, "Invalid input for field/attribute name.")
        allowed = {
            "name",
            "imageRef",
            "flavorRef",
            "networks",
            "metadata",
            "key_name",
            "security_groups",
            "availability_zone",
            "user_data",
            "min_count",
            "max_count",
            "return_reservation_id",
            "config_drive",
            "description",
            "tags",
            "block_device_mapping_v2",
            "OS-DCF:diskConfig",
            "adminPass",
            "accessIPv4",
            "accessIPv6",
            "personality",
            "hostname",
        }
        extra = set(req) - allowed
        if extra:
            raise HTTPError(
                400, f"Additional properties are not allowed ({', '.join(sorted(extra))})"
            )
        image_id = req.get("imageRef")
        if not any(i["id"] == image_id for i in emu.images):
            raise HTTPError(400, f"Image {image_id} could not be found.")
        flavor_ref = str(req.get("flavorRef", "")).rsplit("/", 1)[-1]
        flavor = next((f for f in emu.flavors if f["id"] == flavor_ref), None)
        if flavor is None:
            raise HTTPError(400, f"Flavor {flavor_ref} could not be found.")
        networks = req.get("networks")
        if networks in ("auto", "none"):
            net_ids = [emu.networks[0]["id"]] if networks == "auto" else []
        elif isinstance(networks, list):
            net_ids = []
            for n in networks:
                nid = n.get("uuid") if isinstance(n, dict) else None
                if not any(x["id"] == nid for x in emu.networks):
                    raise HTTPError(400, f"Network {nid} could not be found.")
                net_ids.append(nid)
        else:
            # From 2.37 on, networks is required.
            raise HTTPError(400, "Invalid input: 'networks' is a required property")
        metadata = req.get("metadata", {})
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 255 and len(v) <= 255
            for k, v in metadata.items()
        ):
            raise HTTPError(400, "Invalid input for field/attribute metadata.")
        user_data = req.get("user_data")
        if user_data is not None:
            try:
                base64.b64decode(user_data, validate=True)
            except (binascii.Error, TypeError) as exc:
                raise HTTPError(400, "User data needs to be valid base 64.") from exc
            if len(user_data) > 65535:
                raise HTTPError(400, "User data too large.")
        key_name = req.get("key_name")
        if key_name is not None and key_name not in emu.keypairs:
            raise HTTPError(400, f"Invalid key_name provided: {key_name}")
        sgs = []
        for sg in req.get("security_groups", [{"name": "default"}]):
            if not isinstance(sg, dict) or sg.get("name") not in emu.security_group_names:
                raise HTTPError(400, f"Security group {sg} not found for project.")
            sgs.append(sg["name"])
        az = req.get("availability_zone") or "nova"
        if az not in emu.availability_zones:
            raise HTTPError(400, f"The requested availability zone is not available: {az}")
        live = [s for s in emu.servers.values() if s.deleted_at is None]
        if len(live) + 1 > emu.max_instances:
            raise HTTPError(
                403,
                "Quota exceeded for instances: Requested 1, but already used "
                f"{len(live)} of {emu.max_instances} instances",
            )
        now = time.time()
        stuck = emu.stuck_in_build > 0
        error = not stuck and emu.error_on_build > 0
        if stuck:
            emu.stuck_in_build -= 1
        if error:
            emu.error_on_build -= 1
        s = EmuServer(
            id=str(uuid.uuid4()),
            name=name,
            project_id=PROJECT_ID,
            flavor=flavor,
            image_id=image_id,
            network_ids=net_ids,
            metadata=dict(metadata),
            key_name=key_name,
            security_groups=sgs,
            availability_zone=az,
            user_data=user_data,
            created=now,
            active_at=None if (stuck or error) else now + emu.build_seconds,
            error=error,
            updated=now,
        )
        emu.servers[s.id] = s
        return (
            202,
            {
                "server": {
                    "id": s.id,
                    "links": [],
                    "OS-DCF:diskConfig": "MANUAL",
                    "security_groups": [{"name": n} for n in sgs],
                    "adminPass": "generated-" + uuid.uuid4().hex[:8],
                }
            },
            {"Location": f"{emu.url}/compute/v2.1/servers/{s.id}"},
        )

    def _list_servers(
        self, query: dict[str, list[str]], detail: bool
    ) -> tuple[int, Any, dict[str, str]]:
        emu = self.emu
        servers = sorted(emu.servers.values(), key=lambda s: (s.created, s.id), reverse=True)
        if "name" in query:
            pattern = re.compile(query["name"][0])
            servers = [s for s in servers if pattern.search(s.name)]
        if "status" in query:
            wanted = {v.upper() for v in query["status"]}
            servers = [s for s in servers if emu._status(s)[0] in wanted]
        if "marker" in query:
            ids = [s.id for s in servers]
            marker = query["marker"][0]
            if marker not in ids:
                raise HTTPError(400, f"marker [{marker}] not found")
            servers = servers[ids.index(marker) + 1 :]
        limit = int(query.get("limit", ["1000"])[0])
        page = servers[:limit]
        out: dict[str, Any] = {
            "servers": [
                emu.server_view(s) if detail else {"id": s.id, "name": s.name, "links": []}
                for s in page
            ]
        }
        if len(servers) > limit and page:
            out["servers_links"] = [
                {
                    "rel": "next",
                    "href": f"{emu.url}/compute/v2.1/servers/detail?limit={limit}"
                    f"&marker={page[-1].id}",
                }
            ]
        return 200, out, {}

    # ------------------------------------------------------------------ neutron
    def _network(
        self, method: str, parts: list[str], query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        emu = self.emu
        if parts == [] and method == "GET":
            return (
                200,
                {
                    "versions": [
                        {
                            "id": "v2.0",
                            "status": "CURRENT",
                            "links": [{"rel": "self", "href": f"{emu.url}/network/v2.0/"}],
                        }
                    ]
                },
                {},
            )
        if parts == ["v2.0"] and method == "GET":
            return 200, {"resources": []}, {}
        if not parts or parts[0] != "v2.0":
            raise HTTPError(404, "Not found")
        self._authorize()
        rest = parts[1:]
        with emu.lock:
            emu._expire()
            for s in emu.servers.values():
                emu._ensure_ports(s)
            if rest == ["networks"] and method == "GET":
                nets = [self._net_view(n) for n in emu.networks]
                return 200, {"networks": _filter(nets, query)}, {}
            if len(rest) == 2 and rest[0] == "networks" and method == "GET":
                for n in emu.networks:
                    if n["id"] == rest[1]:
                        return 200, {"network": self._net_view(n)}, {}
                raise HTTPError(404, f"Network {rest[1]} could not be found.", "NetworkNotFound")
            if rest == ["ports"] and method == "GET":
                return 200, {"ports": _filter(list(emu.ports.values()), query)}, {}
            if rest == ["floatingips"] and method == "GET":
                fips = _filter(list(emu.floating_ips.values()), query)
                return 200, {"floatingips": fips}, {}
            if len(rest) == 2 and rest[0] == "floatingips":
                fip = emu.floating_ips.get(rest[1])
                if fip is None:
                    raise HTTPError(
                        404, f"Floating IP {rest[1]} could not be found", "FloatingIPNotFound"
                    )
                if method == "GET":
                    return 200, {"floatingip": dict(fip)}, {}
                if method == "PUT":
                    return self._update_fip(fip, body)
        raise HTTPError(404, "Not found")

    def _net_view(self, n: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": n["id"],
            "name": n["name"],
            "router:external": n["external"],
            "status": "ACTIVE",
            "admin_state_up": True,
            "shared": False,
            "subnets": [n["id"] + "-v4", n["id"] + "-v6"],
            "project_id": PROJECT_ID,
            "tenant_id": PROJECT_ID,
            "description": "",
            "mtu": 1500,
        }

    def _update_fip(self, fip: dict[str, Any], body: Any) -> tuple[int, Any, dict[str, str]]:
        emu = self.emu
        if not isinstance(body, dict) or not isinstance(body.get("floatingip"), dict):
            raise HTTPError(400, "Resource body required", "BadRequest")
        req = body["floatingip"]
        unknown = set(req) - {"port_id", "fixed_ip_address", "description"}
        if unknown:
            raise HTTPError(
                400, f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'", "HTTPBadRequest"
            )
        if "description" in req:
            fip["description"] = req["description"]
        if "port_id" in req:
            port_id = req["port_id"]
            if port_id is None:
                fip.update(port_id=None, fixed_ip_address=None, status="DOWN")
            else:
                port = emu.ports.get(port_id)
                if port is None:
                    raise HTTPError(404, f"Port {port_id} could not be found.", "PortNotFound")
                v4 = [
                    ip["ip_address"]
                    for ip in port["fixed_ips"]
                    if ipaddress.ip_address(ip["ip_address"]).version == 4
                ]
                for other in emu.floating_ips.values():
                    if other["id"] != fip["id"] and other["port_id"] == port_id:
                        raise HTTPError(
                            409,
                            f"Cannot associate floating IP {fip['floating_ip_address']} with "
                            f"port {port_id}: it already has floating IP "
                            f"{other['floating_ip_address']}",
                            "FloatingIPPortAlreadyAssociated",
                        )
                fip.update(port_id=port_id, fixed_ip_address=v4[0], status="ACTIVE")
        fip["revision_number"] += 1
        fip["updated_at"] = _iso(time.time())
        return 200, {"floatingip": dict(fip)}, {}

    # ------------------------------------------------------------------- glance
    def _image(
        self, method: str, parts: list[str], query: dict[str, list[str]]
    ) -> tuple[int, Any, dict[str, str]]:
        emu = self.emu
        version = {
            "id": "v2.16",
            "status": "CURRENT",
            "links": [{"rel": "self", "href": f"{emu.url}/image/v2/"}],
        }
        if parts == [] and method == "GET":
            return 300, {"versions": [version]}, {}
        if not parts or parts[0] != "v2":
            raise HTTPError(404, "Not found")
        if parts == ["v2"] and method == "GET":
            return 200, {"versions": [version]}, {}
        self._authorize()
        views = [
            {
                **i,
                "status": "active",
                "visibility": "public",
                "disk_format": "qcow2",
                "container_format": "bare",
                "min_disk": 0,
                "min_ram": 0,
                "protected": False,
                "tags": [],
                "self": f"/v2/images/{i['id']}",
                "file": f"/v2/images/{i['id']}/file",
                "schema": "/v2/schemas/image",
            }
            for i in emu.images
        ]
        if parts == ["v2", "images"] and method == "GET":
            return (
                200,
                {
                    "images": _filter(views, query),
                    "schema": "/v2/schemas/images",
                    "first": "/v2/images",
                },
                {},
            )
        if len(parts) == 3 and parts[1] == "images" and method == "GET":
            for v in views:
                if v["id"] == parts[2]:
                    return 200, v, {}
            raise HTTPError(404, f"No image found with ID {parts[2]}")
        raise HTTPError(404, "Not found")

    # ----------------------------------------------------------------- control
    def _control(self, method: str, parts: list[str], body: Any) -> tuple[int, Any, dict[str, str]]:
        """Fault injection over HTTP, for tests driving the emulator from another process."""
        emu = self.emu
        if parts == ["faults"] and method == "POST":
            emu.add_fault(Fault(**body))
            return 201, {"faults": len(emu.faults)}, {}
        if parts == ["faults"] and method == "DELETE":
            emu.clear_faults()
            return 204, None, {}
        if parts == ["servers"] and method == "GET":
            return 200, {"servers": [emu.server_view(s) for s in emu.live_servers()]}, {}
        if parts == ["latency"] and method == "PUT":
            emu.latency = float(body["seconds"])
            return 200, {"seconds": emu.latency}, {}
        raise HTTPError(404, "Not found")


def _filter(items: list[dict[str, Any]], query: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Neutron/Glance style filtering: every query key that is an attribute must match."""
    out = []
    for item in items:
        ok = True
        for key, values in query.items():
            if key in ("fields", "limit", "marker", "sort_key", "sort_dir"):
                continue
            if key not in item:
                continue  # unknown filters are ignored
            if str(item[key]) not in values and not (item[key] is None and "" in values):
                ok = False
                break
        if ok:
            out.append(dict(item))
    return out
