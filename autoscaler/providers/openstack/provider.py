"""OpenStack servers as replicas, through openstacksdk (a drop-in for SimpleScaleVM).

A group is the set of servers whose metadata has `metadata_key: metadata_value`
(default `group: <group name>`). The provider keeps nothing that matters in memory:
every `list` asks Nova.

Idempotent creates: each new server gets a fresh create token, in its name
(`<name_prefix>-<group>-<token>`) and in its metadata (`autoscaler_token`). When a
create answers with a timeout, a 5xx or a 409, the provider looks the token up before
trying again, so a server that was made anyway is adopted, never doubled. A server made
by a create whose answer was lost also shows up in the next `list` (it carries the
group's metadata), so an autoscaler killed mid-create leaves no orphan.

Quota: a 403/413 "Quota exceeded for <name>" stops the remaining creates of the call
and is reported once, in `ActionResult.quota_exceeded`.

Throughput: the flavor, image and network are looked up once, side by side, from the
first `list` on, and cached (see lookups.py); a create refused for one of those ids
drops the cache and is sent again once with fresh ids. Creates and deletes run
`max_concurrency` at once (default 25: fifty servers in two rounds of API latency).
"""

from __future__ import annotations

import base64
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from autoscaler.config import Config
from autoscaler.core.model import Replica, ReplicaState
from autoscaler.core.spec import GroupConfig
from autoscaler.providers.base import ActionResult, ProviderError, ReplicaProvider
from autoscaler.providers.openstack import auth as openstack_auth
from autoscaler.providers.openstack import floating_ips as openstack_floating_ips
from autoscaler.providers.openstack.lookups import Lookups, Resolved

log = logging.getLogger(__name__)

TOKEN_KEY = "autoscaler_token"
MAX_USER_DATA_BYTES = 49152  # 65535 base64 characters in Nova's API, less padding
_QUOTA = re.compile(r"quota exceeded for (?:resources:\s*\[?'?)?([A-Za-z0-9_-]+)", re.I)
_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I)

DEFAULTS: dict[str, Any] = {
    "cloud": None,
    "auth": None,
    "auth_type": None,
    "region_name": None,
    "interface": None,
    "endpoint_overrides": None,
    "verify": None,
    "flavor": None,
    "image": None,
    "network": None,
    "key_name": None,
    "security_groups": [],
    "availability_zone": None,
    "user_data_file": None,
    "ip_version": 4,
    "metadata_key": "group",
    "metadata_value": None,  # default: the group's name
    "metrics_port": 8080,
    "name_prefix": "autoscaler",
    # Requests in flight at once (creates, deletes). Nova answers a create once the build
    # request is recorded and queued (202); the build itself is throttled by Nova (10
    # concurrent builds per compute host by default), so 25 requests in flight is a
    # burst a Nova API absorbs, and 50 creates take two round trips. Nova has no
    # request rate limit of its own; where an operator adds one, a 429 is retried
    # (token-checked, never doubled), and max_concurrency can be lowered.
    "max_concurrency": 25,
    "request_timeout_seconds": 30.0,
    "shutoff_grace_seconds": 300.0,
    "build_timeout_seconds": 1800.0,
    "floating_ips": None,
}
FLOATING_DEFAULTS: dict[str, Any] = {"enabled": False, "description": "server", "network": None}
REQUIRED = ("flavor", "image", "network")
# Nova statuses a server passes through while it still runs (or soon will).
_RUNNING = {
    "ACTIVE",
    "REBOOT",
    "HARD_REBOOT",
    "MIGRATING",
    "RESIZE",
    "VERIFY_RESIZE",
    "REVERT_RESIZE",
    "PASSWORD",
    "RESCUE",
}
_STOPPED = {"SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED", "SHELVED_OFFLOADED", "STOPPED"}


# ------------------------------------------------------------------------ options
def check_options(options: Mapping[str, Any], path: str) -> list[str]:
    """Every problem in the `provider:` options, each message naming its key path."""
    errors: list[str] = []
    for key in options:
        if key not in DEFAULTS and key != "type":
            errors.append(f"{path}.{key}: unknown option; allowed: {', '.join(sorted(DEFAULTS))}")
    for key in REQUIRED:
        v = options.get(key)
        if not isinstance(v, str) or not v.strip():
            errors.append(f"{path}.{key}: required, the name or id of the {key} (got {v!r})")
    for key in (
        "cloud",
        "auth_type",
        "region_name",
        "interface",
        "key_name",
        "availability_zone",
        "metadata_key",
        "metadata_value",
        "name_prefix",
    ):
        v = options.get(key)
        if v is not None and (not isinstance(v, str) or not v):
            errors.append(f"{path}.{key}: must be a non-empty string (got {v!r})")
    prefix = options.get("name_prefix")
    if isinstance(prefix, str) and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}", prefix):
        errors.append(f"{path}.name_prefix: letters, digits, '.', '_', '-' only (got {prefix!r})")
    auth = options.get("auth")
    if auth is not None:
        if not isinstance(auth, Mapping):
            errors.append(f"{path}.auth: must be a mapping of keystone auth options")
        else:
            for k, v in auth.items():
                if not isinstance(v, str | int | bool):  # never echo the value: may be secret
                    errors.append(f"{path}.auth.{k}: must be a string")
            if "auth_url" not in auth:
                errors.append(f"{path}.auth.auth_url: required when auth is given")
    eo = options.get("endpoint_overrides")
    if eo is not None and (
        not isinstance(eo, Mapping) or not all(isinstance(v, str) for v in eo.values())
    ):
        errors.append(f"{path}.endpoint_overrides: must map service types to URLs (got {eo!r})")
    sgs = options.get("security_groups")
    if sgs is not None and (
        not isinstance(sgs, list | tuple) or not all(isinstance(s, str) and s for s in sgs)
    ):
        errors.append(f"{path}.security_groups: must be a list of names (got {sgs!r})")
    ipv = options.get("ip_version", 4)
    if ipv not in (4, 6) or isinstance(ipv, bool):
        errors.append(f"{path}.ip_version: must be one of 4, 6 (got {ipv!r})")
    port = options.get("metrics_port", 8080)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        errors.append(f"{path}.metrics_port: must be an integer in 1..65535 (got {port!r})")
    mc = options.get("max_concurrency", DEFAULTS["max_concurrency"])
    if not isinstance(mc, int) or isinstance(mc, bool) or not 1 <= mc <= 64:
        errors.append(f"{path}.max_concurrency: must be an integer in 1..64 (got {mc!r})")
    for key in ("request_timeout_seconds", "shutoff_grace_seconds", "build_timeout_seconds"):
        v = options.get(key, DEFAULTS[key])
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            errors.append(f"{path}.{key}: must be a number > 0 (got {v!r})")
    ud = options.get("user_data_file")
    if ud is not None:
        p = Path(str(ud))
        if not p.is_file():
            errors.append(f"{path}.user_data_file: no such file (got {ud!r})")
        elif p.stat().st_size > MAX_USER_DATA_BYTES:
            errors.append(
                f"{path}.user_data_file: larger than Nova accepts "
                f"({p.stat().st_size} > {MAX_USER_DATA_BYTES} bytes)"
            )
    fips = options.get("floating_ips")
    if fips is not None:
        if not isinstance(fips, Mapping):
            errors.append(f"{path}.floating_ips: must be a mapping (enabled, description, network)")
        else:
            for k in fips:
                if k not in FLOATING_DEFAULTS:
                    errors.append(
                        f"{path}.floating_ips.{k}: unknown option; allowed: "
                        f"{', '.join(sorted(FLOATING_DEFAULTS))}"
                    )
            if not isinstance(fips.get("enabled", False), bool):
                errors.append(
                    f"{path}.floating_ips.enabled: must be true or false "
                    f"(got {fips.get('enabled')!r})"
                )
            for k in ("description", "network"):
                v = fips.get(k)
                if v is not None and (not isinstance(v, str) or not v):
                    errors.append(
                        f"{path}.floating_ips.{k}: must be a non-empty string (got {v!r})"
                    )
    return errors


@dataclass(frozen=True)
class Settings:
    group: str
    flavor: str
    image: str
    network: str
    key_name: str | None
    security_groups: tuple[str, ...]
    availability_zone: str | None
    user_data: str | None  # base64, as Nova wants it
    ip_version: int
    metadata_key: str
    metadata_value: str
    metrics_port: int
    name_prefix: str
    max_concurrency: int
    request_timeout: float
    shutoff_grace: float
    build_timeout: float
    floating_enabled: bool
    floating_description: str
    floating_network: str | None
    connection_options: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @staticmethod
    def from_options(group: str, options: Mapping[str, Any]) -> Settings:
        o = {**DEFAULTS, **options}
        fip = {**FLOATING_DEFAULTS, **(o["floating_ips"] or {})}
        user_data = None
        if o["user_data_file"]:
            raw = Path(o["user_data_file"]).read_bytes()
            user_data = base64.b64encode(raw).decode("ascii")
        return Settings(
            group=group,
            flavor=o["flavor"],
            image=o["image"],
            network=o["network"],
            key_name=o["key_name"] or None,
            security_groups=tuple(o["security_groups"] or ()),
            availability_zone=o["availability_zone"] or None,
            user_data=user_data,
            ip_version=int(o["ip_version"]),
            metadata_key=o["metadata_key"],
            metadata_value=o["metadata_value"] or group,
            metrics_port=int(o["metrics_port"]),
            name_prefix=o["name_prefix"],
            max_concurrency=int(o["max_concurrency"]),
            request_timeout=float(o["request_timeout_seconds"]),
            shutoff_grace=float(o["shutoff_grace_seconds"]),
            build_timeout=float(o["build_timeout_seconds"]),
            floating_enabled=bool(fip["enabled"]),
            floating_description=fip["description"],
            floating_network=fip["network"],
            connection_options={
                k: o[k]
                for k in (
                    "cloud",
                    "auth",
                    "auth_type",
                    "region_name",
                    "interface",
                    "endpoint_overrides",
                    "verify",
                )
            },
        )


def build(group: GroupConfig, config: Config) -> OpenStackProvider:
    return OpenStackProvider(Settings.from_options(group.name, group.provider.options))


# ------------------------------------------------------------------------- errors
class _Outcome:
    """How a failed call should be handled."""

    QUOTA = "quota"
    RETRY = "retry"  # the API answered 5xx, 409 or 429: it is done with the request
    UNKNOWN = "unknown"  # no answer (timeout, reset): the request may still be running
    FATAL = "fatal"


def classify(exc: BaseException) -> tuple[str, str | None]:
    """(_Outcome, quota name or None) for an exception raised by openstacksdk."""
    status = getattr(exc, "status_code", None)
    text = str(exc)
    if status in (403, 413) and "quota" in text.lower():
        m = _QUOTA.search(text)
        return _Outcome.QUOTA, (m.group(1) if m else "unknown")
    if status is None:
        return _Outcome.UNKNOWN, None
    if status >= 500 or status in (408, 409, 429):
        return _Outcome.RETRY, None
    return _Outcome.FATAL, None


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    name = type(exc).__name__
    return (first if first.startswith(name) else f"{name}: {first}")[:300]


def _one(kind: str, value: str, items: Any) -> Any:
    """The item whose id is `value`, else the one named `value` (as find_* decides)."""
    named = []
    for item in items:
        if item.id == value:
            return item
        if item.name == value:
            named.append(item)
    if len(named) > 1:
        raise LookupError(f"{len(named)} {kind}s are named {value!r}: give the id")
    if not named:
        raise LookupError(f"no {kind} named or with id {value!r}")
    return named[0]


def _refused_id(exc: BaseException, r: Resolved) -> bool:
    """True when Nova refused a create naming the flavor, image or network id it was sent
    ("Image <id> could not be found.", "Flavor <id> could not be found.", ...)."""
    if getattr(exc, "status_code", None) not in (400, 404):
        return False
    text = str(exc)
    for word, value in (("flavor", r.flavor), ("image", r.image), ("network", r.network_id)):
        if word in text.lower() and re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text):
            return True
    return False


def _parse_time(value: str | None) -> float:
    if not value:
        return time.time()
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# ----------------------------------------------------------------------- provider
class OpenStackProvider(ReplicaProvider):
    """list / create / delete / reconcile for one group of Nova servers."""

    kind = "openstack"
    reconciles_addresses = True  # floating IPs follow healthy servers

    def __init__(
        self,
        settings: Settings,
        env: Mapping[str, str] | None = None,
        connect: Callable[[Mapping[str, Any], float], Any] = openstack_auth.connect,
    ) -> None:
        self.s = settings
        env = openstack_auth.environment() if env is None else env
        self._redact = openstack_auth.Redactor(
            openstack_auth.secret_values(settings.connection_options.get("auth"), env)
        )
        self._connect = connect
        self._conn: Any = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="openstack")
        # A look-up is at most authentication (2), version discovery and three calls.
        self._lookups = Lookups(
            {"flavor": self._find_flavor, "image": self._find_image, "network": self._find_network},
            timeout=6 * settings.request_timeout + 5,
        )
        self._members: frozenset[str] = frozenset()

    # -- plumbing ------------------------------------------------------------------
    def _error(self, what: str, exc: BaseException) -> ProviderError:
        return ProviderError(f"openstack {what} failed: {self._redact(_short(exc))}")

    @property
    def conn(self) -> Any:
        with self._lock:
            if self._conn is None:
                try:
                    self._conn = self._connect(self.s.connection_options, self.s.request_timeout)
                except Exception as exc:
                    raise self._error("connection", exc) from None
                # Creates, deletes and look-ups in flight each hold a connection.
                openstack_auth.widen_http_pool(self._conn, self.s.max_concurrency + 4)
            return self._conn

    # -- look-ups (run on the Lookups pool, cached there) ----------------------------------
    def _resolve(self) -> dict[str, Any]:
        """Flavor, image and network ids, as a create sends them (cached)."""
        r = self._lookups.resolved()
        return {
            "flavor": r.flavor,
            "image": r.image,
            "network_id": r.network_id,
            "network_name": r.network_name,
        }

    # One call each on the usual path (find_* first GETs the value as an id, then lists).
    def _find_flavor(self) -> str:
        compute = self.conn.compute
        try:
            return str(_one("flavor", self.s.flavor, compute.flavors(details=True)).id)
        except LookupError:
            # Not in the listing (a private flavor shared by id): as an id, once.
            return str(compute.find_flavor(self.s.flavor, ignore_missing=False).id)

    def _find_image(self) -> str:
        if _UUID.match(self.s.image):  # Glance ids are UUIDs: anything else is a name
            return self.s.image
        return str(_one("image", self.s.image, self.conn.image.images(name=self.s.image)).id)

    def _find_network(self) -> dict[str, Any]:
        network = self.conn.network
        try:
            if _UUID.match(self.s.network):
                n = network.find_network(self.s.network, ignore_missing=False)
            else:
                n = _one("network", self.s.network, network.networks(name=self.s.network))
        except LookupError:
            raise
        except Exception:
            # A cloud without Neutron in its catalog (nova-network style test clouds):
            # a network given by id still works; its addresses are matched on any network.
            if _UUID.match(self.s.network):
                return {"network_id": self.s.network, "network_name": None}
            raise
        return {"network_id": n.id, "network_name": n.name}

    def _replica_network_name(self) -> str | None:
        """The network's name as Nova keys `addresses` by it (None: any network)."""
        try:
            name: str | None = self._lookups.get("network")["network_name"]
            return name
        except Exception:  # noqa: BLE001 - listing must not depend on Neutron
            return None if _UUID.match(self.s.network) else self.s.network

    # -- list ----------------------------------------------------------------------
    def _servers(self, **query: Any) -> list[Any]:
        # Nova does not filter on metadata: ask for all, keep the group's.
        return [
            s
            for s in self.conn.compute.servers(details=True, **query)
            if (s.metadata or {}).get(self.s.metadata_key) == self.s.metadata_value
        ]

    def list(self) -> list[Replica]:
        try:
            _ = self.conn  # connection errors are reported as such, before any look-up
            # The look-ups run while Nova lists: the network's name is needed below, the
            # flavor and image by the first create, which then finds them done.
            self._lookups.start()
            servers = self._servers()
            net_name = self._replica_network_name()
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error("list", exc) from None
        now = time.time()
        replicas = [self._replica(s, net_name, now) for s in servers]
        self._members = frozenset(r.id for r in replicas)
        return replicas

    def _address(self, server: Any, net_name: str | None) -> tuple[str | None, str | None]:
        """(fixed address on the replica network, first floating address)."""
        fixed = floating = None
        addresses = server.addresses or {}
        entries = addresses.get(net_name, []) if net_name else sum(addresses.values(), [])
        for entry in entries:
            kind = entry.get("OS-EXT-IPS:type", "fixed")
            if kind == "floating":
                floating = floating or entry.get("addr")
            elif entry.get("version") == self.s.ip_version and fixed is None:
                fixed = entry.get("addr")
        return fixed, floating

    def _replica(self, server: Any, net_name: str | None, now: float) -> Replica:
        status = (server.status or "").upper()
        fixed, floating = self._address(server, net_name)
        if (server.task_state or "") == "deleting" or status in ("DELETED", "SOFT_DELETED"):
            state = ReplicaState.DELETING
        elif status in ("BUILD", "REBUILD"):
            # A server stuck in BUILD never serves: after build_timeout it is replaced.
            building_for = now - _parse_time(server.created_at)
            stuck = building_for > self.s.build_timeout
            state = ReplicaState.FAILED if stuck else ReplicaState.BUILDING
        elif status in _STOPPED:
            stopped_for = now - _parse_time(server.updated_at)
            state = (
                ReplicaState.FAILED if stopped_for > self.s.shutoff_grace else ReplicaState.BUILDING
            )
        elif status in _RUNNING:
            state = ReplicaState.ACTIVE if fixed else ReplicaState.BUILDING
        else:  # ERROR, UNKNOWN and anything new
            state = ReplicaState.FAILED
        address = None
        if fixed:
            host = f"[{fixed}]" if ":" in fixed else fixed
            address = f"{host}:{self.s.metrics_port}"
        metadata = {k: str(v) for k, v in (server.metadata or {}).items()}
        metadata["status"] = status
        if floating:
            metadata["external_address"] = floating
        return Replica(
            id=server.id,
            group=self.s.group,
            state=state,
            created_at=_parse_time(server.created_at),
            address=address,
            name=server.name or "",
            metadata=metadata,
        )

    # -- create --------------------------------------------------------------------
    def _find_token(self, name: str, token: str) -> str | None:
        # Nova's name filter is a regular expression: anchor it.
        for s in self.conn.compute.servers(details=True, name=f"^{re.escape(name)}$"):
            if (s.metadata or {}).get(TOKEN_KEY) == token:
                return s.id
        return None

    def _create_one(
        self, stop: threading.Event, deadline: float, r: Resolved
    ) -> tuple[str, str, str | None]:
        """("ok", id, None) | ("failed", message, None) | ("quota", message, name) | skipped."""
        if stop.is_set():
            return "skipped", "", None
        token = secrets.token_hex(5)
        name = f"{self.s.name_prefix}-{self.s.group}-{token}"
        body: dict[str, Any] = {
            "name": name,
            "image_id": r.image,
            "flavor_id": r.flavor,
            "networks": [{"uuid": r.network_id}],
            "metadata": {self.s.metadata_key: self.s.metadata_value, TOKEN_KEY: token},
        }
        if self.s.key_name:
            body["key_name"] = self.s.key_name
        if self.s.security_groups:
            body["security_groups"] = [{"name": n} for n in self.s.security_groups]
        if self.s.availability_zone:
            body["availability_zone"] = self.s.availability_zone
        if self.s.user_data:
            body["user_data"] = self.s.user_data
        attempt = 0
        last = ""
        refreshed = False
        while True:
            attempt += 1
            try:
                return "ok", self.conn.compute.create_server(**body).id, None
            except Exception as exc:  # noqa: BLE001 - classified below
                outcome, quota = classify(exc)
                last = self._redact(_short(exc))
                if outcome == _Outcome.QUOTA:
                    stop.set()
                    return "quota", last, quota
                if outcome == _Outcome.FATAL and not refreshed and _refused_id(exc, r):
                    # A cached id went stale (an image replaced under the same name, a
                    # flavor or network recreated): look up again once, and resend
                    # only if an id changed. Nova made nothing, so resending is safe.
                    refreshed = True
                    try:
                        fresh = self._lookups.refresh(r)
                    except Exception as lookup_exc:  # noqa: BLE001
                        return "failed", f"{last}; lookup: {self._redact(_short(lookup_exc))}", None
                    if fresh.ids() == r.ids():
                        return "failed", last, None
                    log.info(
                        "group %s: flavor, image or network id changed: resending", self.s.group
                    )
                    r = fresh
                    body.update(
                        image_id=r.image, flavor_id=r.flavor, networks=[{"uuid": r.network_id}]
                    )
                    attempt -= 1  # this one was refused before anything was made
                    continue
                if outcome == _Outcome.FATAL:
                    return "failed", last, None
            # The answer was lost or the API hiccuped: the server may exist anyway.
            try:
                found = self._find_token(name, token)
            except Exception as exc:  # noqa: BLE001
                last = f"{last}; lookup: {self._redact(_short(exc))}"
                found = None
            if found:
                log.info("create of %s answered with an error but the server exists: adopted", name)
                return "ok", found, None
            if outcome == _Outcome.UNKNOWN:
                # No answer: Nova may still be handling that POST, so sending another
                # could make two. Give up here; if the server appears it carries the
                # group's metadata and the next list counts it.
                return "failed", f"{last} (not retried: the server may still appear)", None
            if attempt >= 3 or stop.is_set() or time.monotonic() + 1 > deadline:
                return "failed", last, None
            time.sleep(min(0.5 * 2 ** (attempt - 1), 4.0))

    def _deadline(self) -> float:
        # Three attempts plus a lookup each, every request bounded by request_timeout.
        return time.monotonic() + 6 * self.s.request_timeout + 10

    def create(self, count: int) -> ActionResult:
        result = ActionResult()
        if count <= 0:
            return result
        try:
            resolved = self._lookups.resolved()
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error("create (looking up flavor, image and network)", exc) from None
        stop = threading.Event()
        deadline = self._deadline()
        futures = [
            self._pool.submit(self._create_one, stop, deadline, resolved) for _ in range(count)
        ]
        done, not_done = wait(futures, timeout=max(1.0, deadline - time.monotonic()))
        for f in futures:
            if f in not_done:
                result.failed.append(("", "create timed out"))
                continue
            error = f.exception()
            if error is not None:
                result.failed.append(("", self._redact(_short(error))))
                continue
            kind, value, quota = f.result()
            if kind == "ok":
                result.succeeded.append(value)
            elif kind == "quota":
                result.failed.append(("", value))
                result.quota_exceeded = result.quota_exceeded or quota
            elif kind == "failed":
                result.failed.append(("", value))
        if result.quota_exceeded:
            log.warning(
                "group %s: quota exceeded for %s: %d of %d creates not done this cycle",
                self.s.group,
                result.quota_exceeded,
                count - len(result.succeeded),
                count,
            )
        return result

    # -- delete --------------------------------------------------------------------
    def _delete_one(self, server_id: str, deadline: float) -> str | None:
        """None when gone or going, else the error."""
        attempt = 0
        while True:
            attempt += 1
            try:
                self.conn.compute.delete_server(server_id, ignore_missing=True)
                return None
            except Exception as exc:  # noqa: BLE001
                outcome, _ = classify(exc)
                msg = self._redact(_short(exc))
                # A DELETE is idempotent: resending after no answer is safe.
                retriable = outcome in (_Outcome.RETRY, _Outcome.UNKNOWN)
                if not retriable or attempt >= 3 or time.monotonic() + 1 > deadline:
                    return msg
            time.sleep(min(0.5 * 2 ** (attempt - 1), 4.0))

    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        result = ActionResult()
        deadline = self._deadline()
        futures = {i: self._pool.submit(self._delete_one, i, deadline) for i in replica_ids}
        _, not_done = wait(futures.values(), timeout=max(1.0, deadline - time.monotonic()))
        for rid, f in futures.items():
            if f in not_done:
                result.failed.append((rid, "delete timed out"))
                continue
            error, outcome = f.exception(), None
            if error is None:
                outcome = f.result()
            if error is not None:
                result.failed.append((rid, self._redact(_short(error))))
            elif outcome is None:
                result.succeeded.append(rid)
            else:
                result.failed.append((rid, outcome))
        return result

    # -- external addresses ----------------------------------------------------------
    def reconcile(self, healthy: frozenset[str], removing: frozenset[str]) -> None:
        """Keep every floating IP of the pool on a healthy replica (see floating_ips)."""
        if not self.s.floating_enabled:
            return
        try:
            conn = self.conn
            if not self._members:
                self.list()
            net = self._lookups.get("network")
            ext_id = None
            if self.s.floating_network:
                ext_id = conn.network.find_network(self.s.floating_network, ignore_missing=False).id
            openstack_floating_ips.reconcile(
                conn,
                description=self.s.floating_description,
                external_network_id=ext_id,
                replica_network_id=net["network_id"],
                members=self._members | healthy,
                healthy=healthy,
                removing=removing,
                redact=self._redact,
            )
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error("floating IP reconcile", exc) from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._lookups.close()
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:  # noqa: BLE001 - closing must not raise
                    pass
                self._conn = None
