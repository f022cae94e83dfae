"""libvirt domains as replicas (PremiScale's hosts), through libvirt-python.

Each replica is one persistent domain on one of the configured hosts (libvirt URIs):
- its disk is a copy-on-write qcow2 volume whose backing store is a base volume of a
  storage pool on that host (`pool`, `base_volume`);
- its XML comes from a template with `{name}`, `{uuid}`, `{memory_mib}`, `{vcpus}`,
  `{pool}`, `{volume}`, `{disk_path}` and `{port}` placeholders;
- it carries an `<as:replica>` element in the autoscaler's own metadata namespace
  (`METADATA_NS`) with the group, the replica id, the creation time and the volume: only
  domains with that element and our group are listed.

Crash safety of `create`: the tagged domain is defined FIRST, then its volume is created,
then it is started. A crash at any point leaves a tagged domain (listed, shut off, so
FAILED and replaced), never an untracked volume or domain. A step that timed out is
retried once after looking the domain up by its (chosen, then fixed) name: a define that
did happen is adopted, not repeated.

Bounded calls: libvirt calls can block forever on a dead remote host (qemu+ssh://). Every
call on a host runs in a daemon worker thread with a deadline (`call_timeout_seconds`);
on a timeout the connection is dropped and reopened on the next call, and the stuck
thread is abandoned (it never keeps the daemon from exiting).
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from autoscaler.config import Config
from autoscaler.core.model import Replica, ReplicaState
from autoscaler.core.spec import GroupConfig
from autoscaler.providers.base import ActionResult, ProviderError, ReplicaProvider, delete_each

METADATA_NS = "urn:autoscaler:libvirt:1"
METADATA_KEY = "as"  # the XML prefix libvirt writes for our namespace

DEFAULT_TEMPLATE = """<domain type='kvm'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>{vcpus}</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='{pool}' volume='{volume}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'><source network='default'/><model type='virtio'/></interface>
    <console type='pty'/>
  </devices>
</domain>
"""
TEMPLATE_PLACEHOLDERS = (
    "{name}", "{uuid}", "{memory_mib}", "{vcpus}", "{pool}", "{volume}", "{disk_path}", "{port}",
)  # fmt: skip
ADDRESS_PLACEHOLDERS = ("{ip}", "{name}", "{uuid}", "{port}", "{host}")
INTERFACE_SOURCES = ("lease", "agent", "arp")
PLACEMENTS = ("fewest", "free_memory")
UNREACHABLE = ("hold", "skip")

DEFAULTS: dict[str, Any] = {
    "hosts": None,  # required: list of libvirt URIs (or one string)
    "pool": "default",
    "base_volume": None,  # required
    "domain_template": None,  # a file; default DEFAULT_TEMPLATE
    "memory_mib": 1024,
    "vcpus": 1,
    "name_prefix": "autoscaler-",
    "volume_format": "qcow2",
    "address_template": "{ip}:9100",
    "interface_source": "lease",
    "port_range": None,  # [first, last], for {port}
    "placement": "fewest",
    "unreachable_hosts": "hold",
    "pause_grace_seconds": 300.0,
    "call_timeout_seconds": 30.0,
    "start": True,
}
KNOWN_OPTIONS = frozenset(DEFAULTS) | {"type"}

T = TypeVar("T")


# --------------------------------------------------------------------------- options


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _hosts(v: Any) -> list[str] | None:
    if isinstance(v, str):
        v = [v]
    if isinstance(v, list) and v and all(isinstance(h, str) and h.strip() for h in v):
        return list(v)
    return None


def check_options(options: Mapping[str, Any], path: str) -> list[str]:
    """Every problem in the `libvirt` provider options, each naming key, value, allowed."""
    if not isinstance(options, Mapping):
        return [f"{path}: got {options!r}, expected a mapping of options"]
    errors = [
        f"{path}.{key}: unknown option for the libvirt provider; "
        f"allowed: {', '.join(sorted(set(DEFAULTS)))}"
        for key in sorted(set(options) - KNOWN_OPTIONS)
    ]
    hosts = _hosts(options.get("hosts"))
    if hosts is None:
        errors.append(
            f"{path}.hosts: got {options.get('hosts')!r}, expected a libvirt URI or a list of"
            " them, e.g. [qemu:///system, qemu+ssh://root@node2/system]"
        )
    elif len(set(hosts)) != len(hosts):
        errors.append(f"{path}.hosts: a URI is listed twice")
    for key in ("pool", "base_volume", "name_prefix", "volume_format"):
        v = options.get(key, DEFAULTS[key])
        if not isinstance(v, str) or not v.strip():
            errors.append(f"{path}.{key}: got {v!r}, expected a non-empty string")
    template = options.get("domain_template")
    if template is not None:
        if not isinstance(template, str) or not template.strip():
            errors.append(f"{path}.domain_template: got {template!r}, expected a file path")
    for key in ("memory_mib", "vcpus"):
        v = options.get(key, DEFAULTS[key])
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            errors.append(f"{path}.{key}: got {v!r}, expected an integer >= 1")
    for key in ("pause_grace_seconds", "call_timeout_seconds"):
        v = options.get(key, DEFAULTS[key])
        if not _is_number(v) or v <= 0:
            errors.append(f"{path}.{key}: got {v!r}, expected a number > 0")
    addr = options.get("address_template", DEFAULTS["address_template"])
    if not isinstance(addr, str) or not addr.strip():
        errors.append(
            f"{path}.address_template: got {addr!r}, expected e.g. '{{ip}}:9100' "
            f"(placeholders: {' '.join(ADDRESS_PLACEHOLDERS)})"
        )
    elif "{port}" in addr and options.get("port_range") is None:
        errors.append(f"{path}.port_range: required when address_template uses {{port}}")
    pr = options.get("port_range")
    if pr is not None and not (
        isinstance(pr, list)
        and len(pr) == 2
        and all(isinstance(p, int) and not isinstance(p, bool) for p in pr)
        and 1 <= pr[0] <= pr[1] <= 65535
    ):
        errors.append(f"{path}.port_range: got {pr!r}, expected [first, last] ports, first<=last")
    for key, allowed in (
        ("interface_source", INTERFACE_SOURCES),
        ("placement", PLACEMENTS),
        ("unreachable_hosts", UNREACHABLE),
    ):
        v = options.get(key, DEFAULTS[key])
        if v not in allowed:
            errors.append(f"{path}.{key}: got {v!r}, expected one of: {', '.join(allowed)}")
    if not isinstance(options.get("start", True), bool):
        errors.append(f"{path}.start: got {options.get('start')!r}, expected true or false")
    return errors


# --------------------------------------------------------------------------- bounded calls


class CallTimeout(ProviderError):
    """A libvirt call did not answer within call_timeout_seconds."""


def bounded(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run `fn` in a daemon thread; raise CallTimeout if it has not returned in time."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=f"libvirt {what}", daemon=True).start()
    if not done.wait(timeout):
        raise CallTimeout(f"libvirt: {what} did not answer within {timeout:g}s")
    if "error" in box:
        raise box["error"]
    return box["value"]


# --------------------------------------------------------------------------- the provider


@dataclass(frozen=True)
class LibvirtOptions:
    hosts: tuple[str, ...]
    pool: str
    base_volume: str
    template: str
    memory_mib: int
    vcpus: int
    name_prefix: str
    volume_format: str
    address_template: str
    interface_source: str
    port_range: tuple[int, int] | None
    placement: str
    unreachable_hosts: str
    pause_grace_seconds: float
    call_timeout_seconds: float
    start: bool


@dataclass
class _Ours:
    """One of our domains as read from a host."""

    name: str
    uuid: str
    host: int
    state: int
    created_at: float
    volume: str
    port: int | None
    dom: Any


def _lv() -> Any:
    import libvirt  # optional dependency, imported when the provider is built

    return libvirt


def _host_label(uri: str) -> str:
    """The host part of a URI for addresses and messages (never user or password)."""
    parts = urlsplit(uri)
    return parts.hostname or "localhost"


def _safe_uri(uri: str) -> str:
    """A URI for messages: the user:password part dropped."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


class LibvirtProvider(ReplicaProvider):
    """Replicas of one group as libvirt domains on one or several hosts."""

    kind = "libvirt"

    def __init__(
        self,
        group: str,
        options: LibvirtOptions,
        connect: Callable[[str], Any] | None = None,
    ) -> None:
        self.group = group
        self.o = options
        self._connect = connect or self._open
        self._owns_connections = connect is None  # injected ones belong to the caller
        self._conns: dict[int, Any] = {}
        self._connecting: set[int] = set()  # hosts with a connect in progress
        self._lock = threading.Lock()
        self._paused_since: dict[str, float] = {}
        self._hosts_of: dict[str, int] = {}  # replica id -> host index, from the last reads
        self._deleting: set[str] = set()
        _lv().registerErrorHandler(lambda *_: None, None)  # errors are raised, not printed

    # ----- connections

    @staticmethod
    def _open(uri: str) -> Any:
        return _lv().open(uri)

    def _call(self, host: int, what: str, fn: Callable[[Any], T]) -> T:
        """`fn(connection)` bounded by call_timeout; connects first when needed."""
        uri = self.o.hosts[host]
        timeout = self.o.call_timeout_seconds

        def run() -> T:
            with self._lock:
                conn = self._conns.get(host)
                if conn is None:
                    if host in self._connecting:
                        # one stuck connect per host at most, not one more every cycle
                        raise ProviderError(
                            f"libvirt: still connecting to {_safe_uri(uri)} "
                            "(an earlier attempt has not returned)"
                        )
                    self._connecting.add(host)
            if conn is None:
                try:
                    conn = self._connect(uri)
                finally:
                    with self._lock:
                        self._connecting.discard(host)
                with self._lock:
                    self._conns[host] = conn
            return fn(conn)

        try:
            return bounded(run, timeout, f"{what} on {_safe_uri(uri)}")
        except CallTimeout:
            with self._lock:
                self._conns.pop(host, None)  # reconnect next time; the stuck call is left
            raise
        except ProviderError:
            raise
        except Exception as exc:
            if _is_lv_error(exc) and _lv_code(exc) in _CONNECTION_ERRORS:
                with self._lock:
                    self._conns.pop(host, None)
            raise ProviderError(
                f"libvirt: {what} on {_safe_uri(uri)} failed: {_message(exc)}"
            ) from None

    # ----- reading

    def _read_host(self, host: int) -> list[_Ours]:
        lv = _lv()
        prefix = f"{self.o.name_prefix}{self.group}-"

        def read(conn: Any) -> list[_Ours]:
            out = []
            for dom in conn.listAllDomains(0):
                name = dom.name()
                if not name.startswith(prefix):
                    continue  # cheap filter; the metadata decides
                try:
                    raw = dom.metadata(lv.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, 0)
                except lv.libvirtError as exc:
                    if exc.get_error_code() in (
                        lv.VIR_ERR_NO_DOMAIN,
                        lv.VIR_ERR_NO_DOMAIN_METADATA,
                    ):
                        continue  # not ours, or gone meanwhile
                    raise
                tag = _parse_tag(raw)
                if tag is None or tag.get("group") != self.group:
                    continue
                try:
                    state = dom.state(0)[0]
                except lv.libvirtError as exc:
                    if exc.get_error_code() == lv.VIR_ERR_NO_DOMAIN:
                        continue
                    raise
                port = tag.get("port")
                out.append(
                    _Ours(
                        name=name,
                        uuid=dom.UUIDString(),
                        host=host,
                        state=state,
                        created_at=float(tag.get("created", 0) or 0),
                        volume=tag.get("volume", f"{name}.qcow2"),
                        port=int(port) if port else None,
                        dom=dom,
                    )
                )
            return out

        return self._call(host, "listing domains", read)

    def _read_all(self) -> tuple[list[_Ours], dict[int, str]]:
        """Our domains on every host, and the errors of the hosts that could not be read."""
        ours: list[_Ours] = []
        errors: dict[int, str] = {}
        results: dict[int, list[_Ours] | Exception] = {}

        def one(host: int) -> None:
            try:
                results[host] = self._read_host(host)
            except ProviderError as exc:
                results[host] = exc

        threads = [threading.Thread(target=one, args=(h,)) for h in range(len(self.o.hosts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()  # each read is bounded by call_timeout
        for host in range(len(self.o.hosts)):
            r = results[host]
            if isinstance(r, Exception):
                errors[host] = str(r)
            else:
                ours.extend(r)
        for d in ours:
            self._hosts_of[d.name] = d.host
        return ours, errors

    def list(self) -> list[Replica]:
        ours, errors = self._read_all()
        if errors and (self.o.unreachable_hosts == "hold" or len(errors) == len(self.o.hosts)):
            # hold: the group waits (no create, no delete) rather than replace replicas
            # that may be running fine behind a network blip, and scale in after it
            raise ProviderError("; ".join(errors.values()))
        # skip: a host that cannot be read is left out for this cycle; its replicas are
        # not reported, so the controller replaces them on the other hosts.
        now = time.time()
        return [self._replica(d, now) for d in ours]

    def _state(self, d: _Ours, now: float) -> ReplicaState:
        lv = _lv()
        if d.name in self._deleting:
            return ReplicaState.DELETING
        s = d.state
        if s in (lv.VIR_DOMAIN_PAUSED, lv.VIR_DOMAIN_PMSUSPENDED):
            # paused (by an admin, a migration, a full disk): give it a grace, then replace
            since = self._paused_since.setdefault(d.name, now)
            return (
                ReplicaState.FAILED
                if now - since > self.o.pause_grace_seconds
                else ReplicaState.BUILDING
            )
        self._paused_since.pop(d.name, None)
        if s in (lv.VIR_DOMAIN_RUNNING, lv.VIR_DOMAIN_BLOCKED):
            return ReplicaState.ACTIVE  # blocked = running, waiting on I/O (Xen's idle)
        if s == lv.VIR_DOMAIN_NOSTATE:
            return ReplicaState.BUILDING
        return ReplicaState.FAILED  # shutoff, shutdown (in progress), crashed, unknown

    def _replica(self, d: _Ours, now: float) -> Replica:
        state = self._state(d, now)
        address = None
        if state is ReplicaState.ACTIVE:
            address = self._address(d)
            if address is None:
                state = ReplicaState.BUILDING  # running, no address yet: not serving
        meta = {
            "host": _host_label(self.o.hosts[d.host]),
            "uri": _safe_uri(self.o.hosts[d.host]),
            "uuid": d.uuid,
            "volume": d.volume,
            "libvirt_state": _STATE_NAMES.get(d.state, str(d.state)),
        }
        return Replica(
            id=d.name,
            group=self.group,
            state=state,
            created_at=d.created_at,
            address=address,
            name=d.name,
            metadata=meta,
        )

    def _address(self, d: _Ours) -> str | None:
        t = self.o.address_template
        values = {
            "{name}": d.name,
            "{uuid}": d.uuid,
            "{host}": _host_label(self.o.hosts[d.host]),
            "{port}": str(d.port) if d.port is not None else "",
        }
        if "{ip}" in t:
            ip = self._ip(d)
            if ip is None:
                return None
            values["{ip}"] = f"[{ip}]" if ":" in ip else ip
        for k, v in values.items():
            t = t.replace(k, v)
        return t

    def _ip(self, d: _Ours) -> str | None:
        lv = _lv()
        source = {
            "lease": lv.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
            "agent": lv.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
            "arp": lv.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
        }[self.o.interface_source]
        try:
            ifaces = self._call(
                d.host, f"addresses of {d.name}", lambda _c: d.dom.interfaceAddresses(source, 0)
            )
        except ProviderError:
            return None  # no agent, no lease yet: BUILDING until it has one
        for iface in (ifaces or {}).values():
            for a in iface.get("addrs") or []:
                if a.get("type") == lv.VIR_IP_ADDR_TYPE_IPV4 and a.get("addr"):
                    return str(a["addr"])
        return None

    # ----- create

    def create(self, count: int) -> ActionResult:
        result = ActionResult()
        if count <= 0:
            return result
        ours, errors = self._read_all()
        usable = [h for h in range(len(self.o.hosts)) if h not in errors]
        if not usable:
            raise ProviderError("; ".join(errors.values()))
        load = {h: sum(1 for d in ours if d.host == h) for h in usable}
        ports = {d.port for d in ours if d.port is not None}
        free = self._free_memory(usable) if self.o.placement == "free_memory" else {}
        for _ in range(count):
            host = self._place(usable, load, free)
            name = f"{self.o.name_prefix}{self.group}-{secrets.token_hex(4)}"
            try:
                port = self._pick_port(ports)
            except ProviderError as exc:
                result.failed.append(("", str(exc)))
                continue
            err = self._create_one(host, name, port)
            if err is None:
                result.succeeded.append(name)
                load[host] += 1
                if host in free:
                    free[host] -= self.o.memory_mib * 1024 * 1024
                if port is not None:
                    ports.add(port)
            else:
                result.failed.append((name, err))
        return result

    def _place(self, usable: Sequence[int], load: dict[int, int], free: dict[int, int]) -> int:
        if free:
            return max(usable, key=lambda h: (free.get(h, 0), -load[h], -h))
        return min(usable, key=lambda h: (load[h], h))

    def _free_memory(self, hosts: Sequence[int]) -> dict[int, int]:
        out = {}
        for h in hosts:
            try:
                out[h] = int(self._call(h, "reading free memory", lambda c: c.getFreeMemory()))
            except ProviderError:
                out[h] = 0
        return out

    def _pick_port(self, used: set[int]) -> int | None:
        if self.o.port_range is None:
            return None
        first, last = self.o.port_range
        for p in range(first, last + 1):
            if p not in used:
                return p
        raise ProviderError(f"libvirt: no free port left in port_range [{first}, {last}]")

    def _create_one(self, host: int, name: str, port: int | None) -> str | None:
        lv = _lv()
        volume = f"{name}.{self.o.volume_format}"
        domain_uuid = str(uuidlib.uuid4())
        try:
            disk_path = self._call(host, "reading the pool", lambda c: self._disk_path(c, volume))
            xml = self._domain_xml(name, domain_uuid, volume, disk_path, port)
        except ProviderError as exc:
            return str(exc)
        except (ValueError, ET.ParseError) as exc:
            return f"libvirt: the domain template is not valid XML after substitution: {exc}"

        def define(conn: Any) -> Any:
            return conn.defineXML(xml)

        def adopt(conn: Any) -> Any:
            try:
                dom = conn.lookupByName(name)
            except lv.libvirtError:
                return None
            return dom if dom.UUIDString() == domain_uuid else None

        # Step 1: the tagged domain. Retried once; a define that happened is adopted.
        dom = self._retrying(host, f"defining {name}", define, adopt)
        if isinstance(dom, str):
            return dom

        # Step 2: the copy-on-write volume. A volume that exists already is ours (the name
        # is unique to this domain): a retry after a timeout finds it and goes on.
        def make_volume(conn: Any) -> Any:
            pool = conn.storagePoolLookupByName(self.o.pool)
            try:
                return pool.storageVolLookupByName(volume)
            except lv.libvirtError as exc:
                if exc.get_error_code() != lv.VIR_ERR_NO_STORAGE_VOL:
                    raise
            base, capacity = self.o.base_volume, 0
            if not base.startswith("/"):  # a volume of the pool; else a path on the host
                vol = pool.storageVolLookupByName(base)
                base, capacity = vol.path(), int(vol.info()[1])  # the clone is as large
            return pool.createXML(self._volume_xml(volume, base, capacity), 0)

        err = self._retrying(host, f"creating volume {volume}", make_volume, None)
        if isinstance(err, str):
            self._remove(host, name, volume)  # best effort; else list reports it FAILED
            return err
        if not self.o.start:
            return None

        # Step 3: start. A start that timed out but happened leaves it running: adopt.
        def start(_conn: Any) -> Any:
            if dom.isActive():
                return True
            return dom.create()

        def running(_conn: Any) -> Any:
            return True if dom.isActive() else None

        err = self._retrying(host, f"starting {name}", start, running)
        if isinstance(err, str):
            return err  # defined but not running: list reports FAILED, replaced
        self._hosts_of[name] = host
        return None

    def _retrying(
        self,
        host: int,
        what: str,
        fn: Callable[[Any], Any],
        adopt: Callable[[Any], Any] | None,
    ) -> Any:
        """fn once, and once more if it failed; before the retry, `adopt` may find that
        the first attempt did happen. Returns fn's value, or an error message (str)."""
        last = ""
        for attempt in range(2):
            try:
                return self._call(host, what, fn)
            except ProviderError as exc:
                last = str(exc)
            if adopt is not None:
                try:
                    found = self._call(host, f"looking up after {what}", adopt)
                except ProviderError as exc:
                    last = f"{last}; {exc}"
                    continue
                if found is not None:
                    return found
            if attempt == 0:
                time.sleep(min(1.0, self.o.call_timeout_seconds / 10))
        return last

    def _disk_path(self, conn: Any, volume: str) -> str:
        pool = conn.storagePoolLookupByName(self.o.pool)
        target = ET.fromstring(pool.XMLDesc(0)).findtext("target/path") or ""
        return f"{target.rstrip('/')}/{volume}" if target else volume

    def _volume_xml(self, volume: str, base_path: str, capacity: int) -> str:
        return (
            f"<volume><name>{_esc(volume)}</name>"
            f"<capacity unit='bytes'>{capacity}</capacity>"
            f"<target><format type='{_esc(self.o.volume_format)}'/></target>"
            f"<backingStore><path>{_esc(base_path)}</path>"
            f"<format type='qcow2'/></backingStore></volume>"
        )

    def _domain_xml(
        self, name: str, domain_uuid: str, volume: str, disk_path: str, port: int | None
    ) -> str:
        values = {
            "{name}": name,
            "{uuid}": domain_uuid,
            "{memory_mib}": str(self.o.memory_mib),
            "{vcpus}": str(self.o.vcpus),
            "{pool}": self.o.pool,
            "{volume}": volume,
            "{disk_path}": disk_path,
            "{port}": "" if port is None else str(port),
        }
        text = self.o.template
        for k, v in values.items():
            text = text.replace(k, _esc(v))
        root = ET.fromstring(text)
        if root.tag != "domain":
            raise ValueError(f"the root element is <{root.tag}>, expected <domain>")
        meta = root.find("metadata")
        if meta is None:
            meta = ET.SubElement(root, "metadata")
        tag = ET.SubElement(meta, f"{{{METADATA_NS}}}replica")
        tag.set("group", self.group)
        tag.set("id", name)
        tag.set("created", f"{time.time():.3f}")
        tag.set("volume", volume)
        if port is not None:
            tag.set("port", str(port))
        ET.register_namespace(METADATA_KEY, METADATA_NS)
        return ET.tostring(root, encoding="unicode")

    # ----- delete

    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        # in parallel: each delete is bounded, but a few on a slow host must not add up
        return delete_each(replica_ids, self._delete_one)

    def _delete_one(self, rid: str) -> str | None:
        prefix = f"{self.o.name_prefix}{self.group}-"
        if not rid.startswith(prefix):
            return f"{rid!r} is not a replica of group {self.group!r}"
        known = self._hosts_of.get(rid)
        order = list(range(len(self.o.hosts)))
        if known is not None:  # its host first; the others too (it may have migrated)
            order.remove(known)
            order.insert(0, known)
        self._deleting.add(rid)
        try:
            errors = []
            for h in order:
                try:
                    found = self._call(h, f"deleting {rid}", lambda c: self._remove_on(c, rid))
                except ProviderError as exc:
                    errors.append(str(exc))
                    continue
                if found:
                    break
            else:
                if errors:  # not found where we could look: it may be on a host we could not
                    return "; ".join(errors)
            self._hosts_of.pop(rid, None)
            self._paused_since.pop(rid, None)
            return None
        finally:
            self._deleting.discard(rid)

    def _remove(self, host: int, name: str, volume: str) -> None:
        try:
            self._call(host, f"removing {name}", lambda c: self._remove_on(c, name, volume))
        except ProviderError:
            pass

    def _remove_on(self, conn: Any, name: str, volume: str | None = None) -> bool:
        """destroy, undefine, remove the volume; each already-gone part is success.
        True when the domain was there."""
        lv = _lv()
        gone = (lv.VIR_ERR_NO_DOMAIN, lv.VIR_ERR_NO_STORAGE_VOL)
        try:
            dom = conn.lookupByName(name)
        except lv.libvirtError as exc:
            if exc.get_error_code() != lv.VIR_ERR_NO_DOMAIN:
                raise
            dom = None
        if dom is not None:
            try:
                raw = dom.metadata(lv.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, 0)
                tag = _parse_tag(raw) or {}
            except lv.libvirtError:
                tag = {}
            if tag.get("group") != self.group:
                raise ProviderError(
                    f"libvirt: domain {name!r} is not tagged for group {self.group!r}: left alone"
                )
            volume = tag.get("volume") or volume
            try:
                if dom.isActive():
                    dom.destroy()
            except lv.libvirtError as exc:
                if exc.get_error_code() not in (*gone, lv.VIR_ERR_OPERATION_INVALID):
                    raise
            full = lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            for flags in (full | lv.VIR_DOMAIN_UNDEFINE_NVRAM, full, 0):
                try:
                    dom.undefineFlags(flags)
                    break
                except lv.libvirtError as exc:
                    code = exc.get_error_code()
                    if code in gone:
                        break
                    if flags == 0 or code not in (lv.VIR_ERR_NO_SUPPORT, lv.VIR_ERR_INVALID_ARG):
                        raise  # a driver without NVRAM or managed save: fewer flags
        volume = volume or f"{name}.{self.o.volume_format}"
        try:
            pool = conn.storagePoolLookupByName(self.o.pool)
            pool.storageVolLookupByName(volume).delete(0)
        except lv.libvirtError as exc:
            if exc.get_error_code() not in (*gone, lv.VIR_ERR_NO_STORAGE_POOL):
                raise
        return dom is not None

    def close(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        if not self._owns_connections:
            return
        for c in conns:
            try:
                bounded(c.close, 5.0, "closing")
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


# --------------------------------------------------------------------------- helpers


def _esc(v: str) -> str:
    return v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")


def _parse_tag(raw: str | None) -> dict[str, str] | None:
    if not raw:
        return None
    try:
        el = ET.fromstring(raw)
    except ET.ParseError:
        return None
    return dict(el.attrib) if el.tag.endswith("replica") else None


def _is_lv_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "libvirtError"


def _lv_code(exc: BaseException) -> int | None:
    get = getattr(exc, "get_error_code", None)
    return get() if callable(get) else None


def _message(exc: BaseException) -> str:
    if _is_lv_error(exc):
        msg = exc.get_error_message() if hasattr(exc, "get_error_message") else None
        return str(msg or exc)
    return f"{type(exc).__name__}: {exc}"


_CONNECTION_ERRORS = (38, 39, 86)  # VIR_ERR_SYSTEM_ERROR, VIR_ERR_RPC, VIR_ERR_AUTH_CANCELLED
_STATE_NAMES = {
    0: "nostate", 1: "running", 2: "blocked", 3: "paused",
    4: "shutdown", 5: "shutoff", 6: "crashed", 7: "pmsuspended",
}  # fmt: skip


def _template(value: str | None, config: Config) -> str:
    if value is None:
        return DEFAULT_TEMPLATE
    path = Path(value).expanduser()
    if not path.is_absolute() and config.base_dir is not None:
        path = config.base_dir / path
    try:
        return path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read domain_template {str(path)!r}: {exc.strerror}") from None


def options_from(raw: Mapping[str, Any], template: str) -> LibvirtOptions:
    o = {**DEFAULTS, **{k: v for k, v in raw.items() if k != "type"}}
    pr = o["port_range"]
    return LibvirtOptions(
        hosts=tuple(_hosts(o["hosts"]) or ()),
        pool=str(o["pool"]),
        base_volume=str(o["base_volume"]),
        template=template,
        memory_mib=int(o["memory_mib"]),
        vcpus=int(o["vcpus"]),
        name_prefix=str(o["name_prefix"]),
        volume_format=str(o["volume_format"]),
        address_template=str(o["address_template"]),
        interface_source=str(o["interface_source"]),
        port_range=(int(pr[0]), int(pr[1])) if pr else None,
        placement=str(o["placement"]),
        unreachable_hosts=str(o["unreachable_hosts"]),
        pause_grace_seconds=float(o["pause_grace_seconds"]),
        call_timeout_seconds=float(o["call_timeout_seconds"]),
        start=bool(o["start"]),
    )


def build(
    group: GroupConfig, config: Config, connect: Callable[[str], Any] | None = None
) -> LibvirtProvider:
    """The provider for `group`; raises ValueError listing every bad option."""
    options = dict(group.provider.options or {})
    errors = check_options(options, f"groups.{group.name}.provider")
    if errors:
        raise ValueError("; ".join(errors))
    _lv()  # fail at start-up, not on the first cycle, when libvirt-python is missing
    template = _template(options.get("domain_template"), config)
    return LibvirtProvider(group.name, options_from(options, template), connect)
