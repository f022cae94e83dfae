"""Docker containers as replicas, through the `docker` SDK (microscaler's target).

Works with any Docker-compatible API (Docker Engine, Podman's `podman system service`).
A group is the set of containers carrying the labels `io.autoscaler.group=<group>` and
`io.autoscaler.instance=<instance>` on the configured engines; nothing else is ever
listed, stopped or removed. The provider keeps nothing that matters in memory: every
`list` asks the engines.

Several engines (microscaler's "availability zones"): each new container goes to the
reachable engine with the fewest of the group's containers, so replicas spread evenly.
If an engine cannot be listed, `list` fails as a whole (the group holds): a partial
list would read as missing replicas and create duplicates on the other engines.

Idempotent creates: the replica id is the container name, `<name_prefix>-<group>-<token>`,
chosen before the request and also stored as a label. When a create gets no answer
(timeout, reset), a 5xx or a 409 (name taken), the provider looks the name up on that
engine before trying again: a container that was made anyway is adopted, never doubled.
A container created but never started is started; one that cannot start is removed.

States map like OpenStack's: created/restarting -> building (failed after
`build_timeout_seconds`), running -> active (building while its health check starts,
failed when unhealthy), exited/dead/paused -> failed (replaced by the controller, as
microscaler's health manager did), removing -> deleting.

Delete stops gracefully (SIGTERM, `stop_timeout_seconds`, then SIGKILL) and removes the
container; a container that is already gone counts as deleted.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from autoscaler.config import Config
from autoscaler.core.model import Replica, ReplicaState
from autoscaler.core.spec import GroupConfig
from autoscaler.providers.base import ActionResult, ProviderError, ReplicaProvider, delete_each

log = logging.getLogger(__name__)

LABEL_GROUP = "io.autoscaler.group"
LABEL_INSTANCE = "io.autoscaler.instance"
LABEL_TOKEN = "io.autoscaler.token"
LABEL_CREATED = "io.autoscaler.created"
LABEL_ENGINE = "io.autoscaler.engine"
ADDRESS_MODES = ("published", "container_ip", "host")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}")
_MEMORY = re.compile(r"\d+[bkmgBKMG]?")
_PORT_KEY = re.compile(r"\d{1,5}(/(tcp|udp|sctp))?")

DEFAULTS: dict[str, Any] = {
    "engines": ["unix:///var/run/docker.sock"],
    "image": None,
    "command": None,
    "env": {},
    "labels": {},
    "ports": {},
    "volumes": {},
    "network": None,
    "cpus": None,
    "memory": None,
    "metrics_port": 8080,
    "address": "published",
    "publish_host": "127.0.0.1",
    "instance": "default",
    "name_prefix": "autoscaler",
    "max_concurrency": 4,
    "request_timeout_seconds": 30.0,
    "stop_timeout_seconds": 10.0,
    "build_timeout_seconds": 300.0,
    "pull": True,
}
ENGINE_KEYS = ("url", "address_host")


# ------------------------------------------------------------------------ options
def _str_map(v: Any) -> bool:
    return isinstance(v, Mapping) and all(
        isinstance(k, str) and k and isinstance(x, str | int | float) and not isinstance(x, bool)
        for k, x in v.items()
    )


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_engines(v: Any, path: str) -> list[str]:
    if not isinstance(v, list) or not v:
        return [f"{path}.engines: must be a non-empty list of engine URLs (got {v!r})"]
    errors: list[str] = []
    for i, e in enumerate(v):
        p = f"{path}.engines[{i}]"
        url = e.get("url") if isinstance(e, Mapping) else e
        if isinstance(e, Mapping):
            for k in sorted(set(e) - set(ENGINE_KEYS)):
                errors.append(f"{p}.{k}: unknown engine option; allowed: url, address_host")
            ah = e.get("address_host")
            if ah is not None and (not isinstance(ah, str) or not ah.strip()):
                errors.append(f"{p}.address_host: must be a host name or IP (got {ah!r})")
        if not isinstance(url, str) or urlparse(url).scheme not in (
            "unix",
            "tcp",
            "http",
            "https",
            "ssh",
        ):
            errors.append(
                f"{p}: must be an engine URL (unix:///var/run/docker.sock, "
                f"tcp://host:2375, ssh://user@host) or {{url, address_host}} (got {url!r})"
            )
    urls = [e.get("url") if isinstance(e, Mapping) else e for e in v]
    if len({str(u) for u in urls}) != len(urls):
        errors.append(f"{path}.engines: the same engine is listed twice")
    return errors


def check_options(options: Mapping[str, Any], path: str) -> list[str]:
    """Every problem in the `docker` provider options, each naming its key path."""
    if not isinstance(options, Mapping):
        return [f"{path}: got {options!r}, expected a mapping of options"]
    errors: list[str] = []
    for key in sorted(set(options) - set(DEFAULTS) - {"type"}):
        errors.append(f"{path}.{key}: unknown option; allowed: {', '.join(sorted(DEFAULTS))}")
    o = {**DEFAULTS, **options}
    errors += _check_engines(o["engines"], path)
    if not isinstance(o["image"], str) or not o["image"].strip():
        errors.append(f"{path}.image: required, the image to run (got {o['image']!r})")
    cmd = o["command"]
    if cmd is not None and (
        not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd)
    ):
        errors.append(f"{path}.command: must be a non-empty list of strings (got {cmd!r})")
    for key in ("env", "labels"):
        if not _str_map(o[key]):
            errors.append(f"{path}.{key}: must map names to strings (got {o[key]!r})")
    if isinstance(o["labels"], Mapping) and any(
        str(k).startswith("io.autoscaler.") for k in o["labels"]
    ):
        errors.append(f"{path}.labels: io.autoscaler.* labels are the provider's own")
    ports = o["ports"]
    if not isinstance(ports, Mapping) or not all(
        isinstance(k, str | int) and _PORT_KEY.fullmatch(str(k)) for k in ports
    ):
        errors.append(
            f"{path}.ports: must map container ports ('8080' or '8080/tcp') to a host port, "
            f"'ip:port', or null for any port (got {ports!r})"
        )
    vols = o["volumes"]
    if not isinstance(vols, Mapping) or not all(
        isinstance(k, str) and k and isinstance(x, str) and x.startswith("/")
        for k, x in vols.items()
    ):
        errors.append(
            f"{path}.volumes: must map host paths or volume names to container paths "
            f"(append ':ro' to the container path for read-only; got {vols!r})"
        )
    net = o["network"]
    if net is not None and (not isinstance(net, str) or not net):
        errors.append(f"{path}.network: must be a network name or 'host' (got {net!r})")
    cpus = o["cpus"]
    if cpus is not None and (not _number(cpus) or cpus <= 0):
        errors.append(f"{path}.cpus: must be a number of CPUs > 0, e.g. 0.5 (got {cpus!r})")
    mem = o["memory"]
    if mem is not None and not (
        (isinstance(mem, int) and not isinstance(mem, bool) and mem > 0)
        or (isinstance(mem, str) and _MEMORY.fullmatch(mem))
    ):
        errors.append(f"{path}.memory: must be bytes or a size like '256m', '1g' (got {mem!r})")
    port = o["metrics_port"]
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        errors.append(f"{path}.metrics_port: must be an integer in 1..65535 (got {port!r})")
    if o["address"] not in ADDRESS_MODES:
        errors.append(
            f"{path}.address: must be one of {', '.join(ADDRESS_MODES)} (got {o['address']!r})"
        )
    if o["address"] == "host" and net not in (None, "host"):
        errors.append(f"{path}.address: 'host' needs network 'host' (got network {net!r})")
    ph = o["publish_host"]
    if not isinstance(ph, str) or not ph.strip() or any(c.isspace() for c in ph):
        errors.append(f"{path}.publish_host: must be an IP to publish on (got {ph!r})")
    for key in ("instance", "name_prefix"):
        v = o[key]
        if not isinstance(v, str) or not _NAME.fullmatch(v):
            errors.append(f"{path}.{key}: letters, digits, '.', '_', '-' only (got {v!r})")
    mc = o["max_concurrency"]
    if not isinstance(mc, int) or isinstance(mc, bool) or not 1 <= mc <= 64:
        errors.append(f"{path}.max_concurrency: must be an integer in 1..64 (got {mc!r})")
    for key in ("request_timeout_seconds", "stop_timeout_seconds", "build_timeout_seconds"):
        v = o[key]
        if not _number(v) or v <= 0:
            errors.append(f"{path}.{key}: must be a number > 0 (got {v!r})")
    if not isinstance(o["pull"], bool):
        errors.append(f"{path}.pull: must be true or false (got {o['pull']!r})")
    return errors


@dataclass(frozen=True)
class Engine:
    url: str
    address_host: str  # where published ports of this engine are reached


@dataclass(frozen=True)
class Settings:
    group: str
    engines: tuple[Engine, ...]
    image: str
    command: tuple[str, ...] | None
    env: Mapping[str, str]
    labels: Mapping[str, str]
    ports: Mapping[str, Any]
    volumes: Mapping[str, str]
    network: str | None
    cpus: float | None
    memory: int | str | None
    metrics_port: int
    address: str
    publish_host: str
    instance: str
    name_prefix: str
    max_concurrency: int
    request_timeout: float
    stop_timeout: float
    build_timeout: float
    pull: bool

    @staticmethod
    def from_options(group: str, options: Mapping[str, Any]) -> Settings:
        o = {**DEFAULTS, **options}
        engines = []
        for e in o["engines"]:
            url = e["url"] if isinstance(e, Mapping) else e
            host = e.get("address_host") if isinstance(e, Mapping) else None
            engines.append(Engine(url, host or _default_address_host(url, o["publish_host"])))
        address = "host" if o["network"] == "host" else o["address"]
        return Settings(
            group=group,
            engines=tuple(engines),
            image=o["image"],
            command=tuple(o["command"]) if o["command"] else None,
            env={k: str(v) for k, v in o["env"].items()},
            labels={k: str(v) for k, v in o["labels"].items()},
            ports=dict(o["ports"]),
            volumes=dict(o["volumes"]),
            network=o["network"],
            cpus=float(o["cpus"]) if o["cpus"] is not None else None,
            memory=o["memory"],
            metrics_port=int(o["metrics_port"]),
            address=address,
            publish_host=o["publish_host"],
            instance=o["instance"],
            name_prefix=o["name_prefix"],
            max_concurrency=int(o["max_concurrency"]),
            request_timeout=float(o["request_timeout_seconds"]),
            stop_timeout=float(o["stop_timeout_seconds"]),
            build_timeout=float(o["build_timeout_seconds"]),
            pull=bool(o["pull"]),
        )


def _default_address_host(url: str, publish_host: str) -> str:
    """A published port is reached on the publish IP, or on the engine's host for 0.0.0.0."""
    if publish_host not in ("0.0.0.0", "::"):
        return publish_host
    parsed = urlparse(url)
    return parsed.hostname if parsed.scheme != "unix" and parsed.hostname else "127.0.0.1"


def build(group: GroupConfig, config: Config) -> DockerProvider:
    options = dict(group.provider.options or {})
    errors = check_options(options, f"groups.{group.name}.provider.options")
    if errors:
        raise ValueError("; ".join(errors))
    return DockerProvider(Settings.from_options(group.name, options))


# ------------------------------------------------------------------------- errors
def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300]


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def _uncertain(exc: BaseException) -> bool:
    """True when the engine may have made the container although the call failed."""
    status = _status(exc)
    return status is None or status >= 500 or status in (408, 409, 429)


# ----------------------------------------------------------------------- provider
class DockerProvider(ReplicaProvider):
    """list / create / delete containers of one group on one or several engines."""

    kind = "docker"

    def __init__(self, settings: Settings) -> None:
        import docker  # the optional extra: `pip install autoscaler[docker]`

        self._docker = docker
        self.s = settings
        self.group = settings.group
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()  # placement counts must see earlier creates
        self._pool = ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="docker")
        self._where: dict[str, str] = {}  # replica id -> engine url, from the last list
        self._deleting: set[str] = set()

    # -- plumbing ------------------------------------------------------------------
    def _client(self, url: str) -> Any:
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                try:
                    client = self._docker.DockerClient(
                        base_url=url, timeout=self.s.request_timeout, version="auto"
                    )
                except Exception as exc:
                    raise ProviderError(f"docker engine {url}: {_short(exc)}") from None
                self._clients[url] = client
            return client

    def _filters(self) -> dict[str, Any]:
        return {"label": [f"{LABEL_GROUP}={self.s.group}", f"{LABEL_INSTANCE}={self.s.instance}"]}

    def _containers(self, engine: Engine) -> list[Any]:
        try:
            return self._client(engine.url).containers.list(
                all=True, sparse=True, filters=self._filters()
            )
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError(f"docker list on {engine.url} failed: {_short(exc)}") from None

    def _ours(self, attrs: Mapping[str, Any]) -> bool:
        labels = attrs.get("Labels") or {}
        return (
            labels.get(LABEL_GROUP) == self.s.group
            and labels.get(LABEL_INSTANCE) == self.s.instance
        )

    # -- list ----------------------------------------------------------------------
    def list(self) -> list[Replica]:
        per_engine = list(self._pool.map(self._containers, self.s.engines))
        now = time.time()
        replicas: list[Replica] = []
        where: dict[str, str] = {}
        for engine, containers in zip(self.s.engines, per_engine, strict=True):
            for c in containers:
                if not self._ours(c.attrs):  # an engine that ignores the label filter
                    continue
                r = self._replica(engine, c.attrs, now)
                where[r.id] = engine.url
                replicas.append(r)
        self._where = where
        return replicas

    def _replica(self, engine: Engine, a: Mapping[str, Any], now: float) -> Replica:
        names = a.get("Names") or []
        name = (names[0] if names else a.get("Name") or a["Id"]).lstrip("/")
        labels = a.get("Labels") or {}
        try:
            created = float(labels.get(LABEL_CREATED) or a.get("Created") or now)
        except (TypeError, ValueError):
            created = now
        status = str(a.get("State") or "").lower()
        detail = str(a.get("Status") or "")
        if name in self._deleting or status == "removing":
            state = ReplicaState.DELETING
        elif status in ("created", "restarting"):
            stuck = now - created > self.s.build_timeout
            state = ReplicaState.FAILED if stuck else ReplicaState.BUILDING
        elif status == "running":
            if "(health: starting)" in detail or "(starting)" in detail:
                state = ReplicaState.BUILDING
            elif "(unhealthy)" in detail:
                state = ReplicaState.FAILED
            else:
                state = ReplicaState.ACTIVE
        else:  # exited, dead, paused, stopped, unknown: replaced
            state = ReplicaState.FAILED
        return Replica(
            id=name,
            group=self.s.group,
            state=state,
            created_at=created,
            address=self._address(engine, a) if state is not ReplicaState.FAILED else None,
            name=name,
            metadata={
                "engine": engine.url,
                "container_id": str(a.get("Id", ""))[:12],
                "status": status,
                "image": str(a.get("Image", "")),
            },
        )

    def _address(self, engine: Engine, a: Mapping[str, Any]) -> str | None:
        port = self.s.metrics_port
        if self.s.address == "host":
            return f"{engine.address_host}:{port}"
        if self.s.address == "container_ip":
            nets = (a.get("NetworkSettings") or {}).get("Networks") or {}
            if self.s.network and self.s.network in nets:
                nets = {self.s.network: nets[self.s.network]}
            for net in nets.values():
                ip = (net or {}).get("IPAddress")
                if ip:
                    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
            return None
        for p in a.get("Ports") or []:
            if p.get("PrivatePort") == port and p.get("PublicPort") and p.get("Type") == "tcp":
                return f"{engine.address_host}:{p['PublicPort']}"
        return None

    # -- create --------------------------------------------------------------------
    def create(self, count: int) -> ActionResult:
        result = ActionResult()
        if count <= 0:
            return result
        with self._create_lock:
            counts: dict[str, int] = {}
            for engine in self.s.engines:
                try:
                    cs = self._containers(engine)
                except ProviderError as exc:
                    log.warning("%s; no new containers placed there", exc)
                    continue
                counts[engine.url] = sum(
                    1 for c in cs if self._ours(c.attrs) and c.attrs.get("State") != "removing"
                )
            if not counts:
                msg = "docker create failed: no engine reachable"
                result.failed.extend(("", msg) for _ in range(count))
                return result
            placement: list[Engine] = []
            order = {e.url: i for i, e in enumerate(self.s.engines)}
            for _ in range(count):
                url = min(counts, key=lambda u: (counts[u], order[u]))
                counts[url] += 1
                placement.append(self.s.engines[order[url]])
            names = [self._new_name() for _ in placement]
            outcomes = list(self._pool.map(self._create_one, placement, names))
        for name, err in zip(names, outcomes, strict=True):
            if err is None:
                result.succeeded.append(name)
            else:
                result.failed.append((name, err))
        return result

    def _new_name(self) -> str:
        return f"{self.s.name_prefix}-{self.s.group}-{secrets.token_hex(4)}"

    def _run_kwargs(self, engine: Engine, name: str) -> dict[str, Any]:
        s = self.s
        token = name.rsplit("-", 1)[-1]
        labels = {
            **s.labels,
            LABEL_GROUP: s.group,
            LABEL_INSTANCE: s.instance,
            LABEL_TOKEN: token,
            LABEL_CREATED: f"{time.time():.3f}",
            LABEL_ENGINE: engine.url,
        }
        env = {
            **s.env,
            "AUTOSCALER_GROUP": s.group,
            "AUTOSCALER_REPLICA": name,
            "AUTOSCALER_METRICS_PORT": str(s.metrics_port),
        }
        ports: dict[str, Any] = {}
        for k, v in s.ports.items():
            key = str(k) if "/" in str(k) else f"{k}/tcp"
            if isinstance(v, str) and ":" in v:
                ip, _, hp = v.rpartition(":")
                ports[key] = (ip, int(hp) if hp else None)
            else:
                ports[key] = (s.publish_host, v)
        if s.address == "published":
            ports.setdefault(f"{s.metrics_port}/tcp", (s.publish_host, None))
        volumes: dict[str, dict[str, str]] = {}
        for src, dst in s.volumes.items():
            path, _, mode = dst.partition(":")
            volumes[src] = {"bind": path, "mode": mode or "rw"}
        kwargs: dict[str, Any] = {
            "image": s.image,
            "command": list(s.command) if s.command else None,
            "name": name,
            "labels": labels,
            "environment": env,
            "detach": True,
        }
        if ports and s.address != "host":
            kwargs["ports"] = ports
        if volumes:
            kwargs["volumes"] = volumes
        if s.network == "host":
            kwargs["network_mode"] = "host"
        elif s.network:
            kwargs["network"] = s.network
        if s.cpus is not None:
            kwargs["nano_cpus"] = int(s.cpus * 1e9)
        if s.memory is not None:
            kwargs["mem_limit"] = s.memory
        return kwargs

    def _create_one(self, engine: Engine, name: str) -> str | None:
        """None on success (made or adopted), else the error."""
        try:
            client = self._client(engine.url)
        except ProviderError as exc:
            return str(exc)
        kwargs = self._run_kwargs(engine, name)
        last = ""
        for _attempt in range(2):
            try:
                client.containers.create(**kwargs)
            except self._docker.errors.ImageNotFound as exc:
                if not self.s.pull or _attempt:
                    return f"docker create on {engine.url} failed: {_short(exc)}"
                last = self._pull(client, engine)
                if last:
                    return last
                continue
            except Exception as exc:
                last = f"docker create on {engine.url} failed: {_short(exc)}"
                if not _uncertain(exc):
                    return last
                # the engine may have made it anyway: adopt it rather than make a second
                if self._lookup(client, name) is None:
                    time.sleep(0.5)
                    continue
            return self._start(client, engine, name)
        return last

    def _pull(self, client: Any, engine: Engine) -> str:
        """Pull the missing image; "" on success, else the error."""
        try:
            client.images.pull(self.s.image)
            return ""
        except Exception as exc:
            return f"docker pull of {self.s.image} on {engine.url} failed: {_short(exc)}"

    def _lookup(self, client: Any, name: str) -> Any | None:
        try:
            c = client.containers.get(name)
        except Exception:  # noqa: BLE001 - not found, or no answer: not adoptable now
            return None
        return c if self._ours_inspect(c) else None

    def _ours_inspect(self, c: Any) -> bool:
        labels = ((c.attrs.get("Config") or {}).get("Labels")) or {}
        return self._ours({"Labels": labels})

    def _start(self, client: Any, engine: Engine, name: str) -> str | None:
        try:
            c = client.containers.get(name)
            if c.status in ("created", "exited"):
                c.start()
            return None
        except Exception as exc:
            err = f"docker start on {engine.url} failed: {_short(exc)}"
        # a container that cannot start (port taken, bad command) would sit in "created"
        try:
            client.containers.get(name).remove(force=True)
        except Exception:  # noqa: BLE001 - list reports it as failed; delete retries
            pass
        return err

    # -- delete --------------------------------------------------------------------
    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        return delete_each(replica_ids, self._delete_one, self._pool)

    def _delete_one(self, rid: str) -> str | None:
        known = self._where.get(rid)
        engines = sorted(self.s.engines, key=lambda e: e.url != known)  # the known one first
        self._deleting.add(rid)
        try:
            errors = []
            for engine in engines:
                err = self._delete_on(engine, rid)
                if err is None:
                    return None
                if err != "absent":
                    errors.append(err)
            return "; ".join(errors) if errors else None  # absent everywhere: already gone
        finally:
            self._deleting.discard(rid)

    def _delete_on(self, engine: Engine, rid: str) -> str | None:
        """None when deleted here, "absent" when not on this engine, else the error."""
        try:
            client = self._client(engine.url)
            c = client.containers.get(rid)
        except self._docker.errors.NotFound:
            return "absent"
        except Exception as exc:
            return f"docker delete on {engine.url} failed: {_short(exc)}"
        if not self._ours_inspect(c):
            return f"container {rid} on {engine.url} is not one of this group's"
        try:
            if c.status in ("running", "restarting", "paused"):
                c.stop(timeout=max(1, math.ceil(self.s.stop_timeout)))
            c.remove(force=True)
        except self._docker.errors.NotFound:
            return None  # removed meanwhile
        except Exception as exc:
            return f"docker delete on {engine.url} failed: {_short(exc)}"
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for client in self._clients.values():
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing must not fail
                    pass
            self._clients.clear()
