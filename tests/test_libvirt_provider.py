"""The libvirt provider against real libvirt: the test driver (in-process hypervisor).

Connections to test:///default share one state while any is open, so a "host" here is a
connection to the test driver with a custom node file (`test:///path/node.xml`, with a
storage pool holding a base volume): each such connection is a fresh hypervisor. The
fixture opens one per host and hands it to the provider through its connection factory,
so the checks read the same state. Two connections are two hosts.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

libvirt = pytest.importorskip("libvirt")

from autoscaler.core.model import ReplicaState  # noqa: E402
from autoscaler.providers import libvirt as lvp  # noqa: E402
from autoscaler.providers.base import ProviderError, ReplicaProvider  # noqa: E402
from tests.provider_conformance import (  # noqa: E402
    BlackHole,
    Failure,
    Hung,
    ReplicaProviderContract,
)

pytestmark = pytest.mark.timeout(60)

POOL = "default"
TEMPLATE = lvp.DEFAULT_TEMPLATE.replace("type='kvm'", "type='test'")
NODE_XML = """<node>
  <cpu><mhz>2000</mhz><model>i686</model><active>2</active><max>2</max></cpu>
  <memory>4194304</memory>
  <pool type='dir'>
    <name>default</name>
    <uuid>35bb2ad9-388a-cdfe-461a-b8907f6e53fe</uuid>
    <capacity unit='G'>100</capacity><allocation>0</allocation>
    <available unit='G'>100</available>
    <source/>
    <target><path>/var/lib/autoscaler-test/pool</path></target>
    <volume type='file'>
      <name>base.qcow2</name>
      <capacity unit='G'>2</capacity>
      <target><path>/var/lib/autoscaler-test/pool/base.qcow2</path><format type='qcow2'/></target>
    </volume>
  </pool>
</node>
"""


def node_uri(directory: Path) -> str:
    """A test-driver URI whose every connection is a fresh host with pool `default`."""
    path = directory / "node.xml"
    path.write_text(NODE_XML)
    return f"test://{path}"


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[Any]]:
    uri = node_uri(tmp_path)
    conns = [libvirt.open(uri), libvirt.open(uri)]
    yield conns
    for c in conns:
        c.close()  # the in-process hypervisor and all its domains go with it


def _provider(conns: list[Any], group: str = "web", **opts: Any) -> lvp.LibvirtProvider:
    uris = [f"test:///host{i}.xml" for i in range(len(conns))]  # keys of the factory
    raw = {"hosts": uris, "pool": POOL, "base_volume": "base.qcow2", **opts}
    assert lvp.check_options(raw, "p") == []
    by_uri = dict(zip(uris, conns, strict=True))
    return lvp.LibvirtProvider(group, lvp.options_from(raw, TEMPLATE), by_uri.__getitem__)


def _ours(conn: Any) -> list[str]:
    return sorted(d.name() for d in conn.listAllDomains() if d.name().startswith("autoscaler-"))


def _volumes(conn: Any) -> list[str]:
    return sorted(v for v in conn.storagePoolLookupByName(POOL).listVolumes() if v != "base.qcow2")


def test_create_n_lists_them_active_with_cow_volumes(hosts: list[Any]) -> None:
    p = _provider(hosts[:1], address_template="127.0.0.1:{port}", port_range=[21000, 21009])
    res = p.create(3)
    assert len(res.succeeded) == 3 and res.failed == []
    reps = {r.id: r for r in p.list()}
    assert set(reps) == set(res.succeeded) == set(_ours(hosts[0]))
    assert {r.state for r in reps.values()} == {ReplicaState.ACTIVE}
    assert sorted(r.address or "" for r in reps.values()) == [
        "127.0.0.1:21000", "127.0.0.1:21001", "127.0.0.1:21002",
    ]  # fmt: skip
    pool = hosts[0].storagePoolLookupByName(POOL)
    base = pool.storageVolLookupByName("base.qcow2").path()
    for rid in res.succeeded:
        vol = pool.storageVolLookupByName(f"{rid}.qcow2")
        assert base in vol.XMLDesc(0), "the disk must be a copy-on-write clone of the base"
        dom_xml = hosts[0].lookupByName(rid).XMLDesc(0)
        assert f"volume='{rid}.qcow2'" in dom_xml and lvp.METADATA_NS in dom_xml


def test_lists_only_our_group_and_tagged_domains(hosts: list[Any]) -> None:
    conn = hosts[0]
    mine = _provider(hosts[:1], group="web")
    other = _provider(hosts[:1], group="web-b")  # a prefix of ours must not leak in
    assert mine.create(1).succeeded and other.create(1).succeeded
    # an untagged domain carrying our name prefix, and somebody else's domain
    conn.defineXML(_plain("autoscaler-web-untagged"))
    conn.defineXML(_plain("db-1"))
    ids = [r.id for r in mine.list()]
    assert len(ids) == 1 and ids[0].startswith("autoscaler-web-")
    assert ids[0] not in [r.id for r in other.list()]
    # and delete refuses a domain that is not tagged as ours
    assert mine.delete(["autoscaler-web-untagged"]).failed
    assert "autoscaler-web-untagged" in _ours(conn)


def _plain(name: str) -> str:
    return (
        f"<domain type='test'><name>{name}</name><memory>65536</memory>"
        "<os><type>hvm</type></os></domain>"
    )


def test_restarted_provider_adopts_existing_domains(hosts: list[Any]) -> None:
    ids = sorted(_provider(hosts[:1]).create(2).succeeded)
    assert sorted(r.id for r in _provider(hosts[:1]).list()) == ids


class _SlowDefine:
    """A connection whose first defineXML happens but answers after the deadline."""

    def __init__(self, conn: Any, delay: float) -> None:
        self._conn, self._delay, self.calls = conn, delay, 0

    def defineXML(self, xml: str) -> Any:  # noqa: N802 - libvirt's name
        self.calls += 1
        dom = self._conn.defineXML(xml)
        if self.calls == 1:
            time.sleep(self._delay)
        return dom

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_retried_create_adopts_the_define_that_timed_out(hosts: list[Any]) -> None:
    slow = _SlowDefine(hosts[0], delay=1.5)
    p = lvp.LibvirtProvider(
        "web",
        lvp.options_from(
            {"hosts": ["test:///host0.xml"], "pool": POOL, "base_volume": "base.qcow2",
             "call_timeout_seconds": 0.5},
            TEMPLATE,
        ),
        lambda _uri: slow,
    )  # fmt: skip
    res = p.create(1)
    assert len(res.succeeded) == 1, res
    assert slow.calls == 1, "the define that timed out was repeated instead of adopted"
    assert _ours(hosts[0]) == res.succeeded
    assert [r.metadata["libvirt_state"] for r in p.list()] == ["running"]


def test_delete_destroys_undefines_and_removes_the_volume(hosts: list[Any]) -> None:
    p = _provider(hosts[:1])
    a, b = p.create(2).succeeded
    res = p.delete([a])
    assert res.succeeded == [a] and res.failed == []
    assert _ours(hosts[0]) == [b]
    assert _volumes(hosts[0]) == [f"{b}.qcow2"]
    # already gone (here, and from a fresh provider that never saw it): success
    assert p.delete([a]).succeeded == [a]
    assert _provider(hosts).delete([a]).succeeded == [a]


def test_delete_of_a_gone_domain_still_removes_a_leftover_volume(hosts: list[Any]) -> None:
    p = _provider(hosts[:1])
    (a,) = p.create(1).succeeded
    dom = hosts[0].lookupByName(a)
    dom.destroy()
    dom.undefine()  # e.g. a crash between undefine and the volume removal
    assert _volumes(hosts[0]) == [f"{a}.qcow2"]
    assert p.delete([a]).succeeded == [a]
    assert _volumes(hosts[0]) == []


def test_shut_off_is_failed_paused_is_building_then_failed(hosts: list[Any]) -> None:
    p = _provider(hosts[:1], pause_grace_seconds=0.3)
    a, b = sorted(p.create(2).succeeded)
    hosts[0].lookupByName(a).destroy()
    hosts[0].lookupByName(b).suspend()
    states = {r.id: r.state for r in p.list()}
    assert states == {a: ReplicaState.FAILED, b: ReplicaState.BUILDING}
    time.sleep(0.4)
    assert {r.id: r.state for r in p.list()}[b] is ReplicaState.FAILED
    assert p.delete([a, b]).succeeded == [a, b]
    assert _ours(hosts[0]) == [] and _volumes(hosts[0]) == []


def test_no_address_yet_is_building(hosts: list[Any]) -> None:
    p = _provider(hosts[:1])  # default {ip}:9100: the test driver reports no interface
    p.create(1)
    assert [r.state for r in p.list()] == [ReplicaState.BUILDING]


def test_two_hosts_placement_on_the_least_loaded(hosts: list[Any]) -> None:
    p = _provider(hosts)
    assert len(p.create(3).succeeded) == 3
    assert sorted([len(_ours(hosts[0])), len(_ours(hosts[1]))]) == [1, 2]
    p.create(1)
    assert [len(_ours(h)) for h in hosts] == [2, 2]
    # delete finds each replica on its own host, also from a provider that never listed
    ids = [r.id for r in p.list()]
    assert {r.metadata["uri"] for r in p.list()} == {"test:///host0.xml", "test:///host1.xml"}
    assert sorted(_provider(hosts).delete(ids).succeeded) == sorted(ids)
    assert [_ours(h) for h in hosts] == [[], []]


def test_delete_finds_a_domain_migrated_to_another_host(hosts: list[Any]) -> None:
    p = _provider(hosts)
    (rid,) = p.create(1).succeeded
    (rep,) = p.list()  # the provider now knows its host
    src, dst = (hosts[0], hosts[1]) if _ours(hosts[0]) else (hosts[1], hosts[0])
    dom = src.lookupByName(rid)
    dst.defineXML(dom.XMLDesc(0))  # what a migration leaves: the domain on the other host
    dom.destroy()
    dom.undefine()
    assert p.delete([rid]).succeeded == [rid]
    assert _ours(hosts[0]) == _ours(hosts[1]) == []


@pytest.mark.parametrize("mode", ["hold", "skip"])
def test_unreachable_host_holds_the_list_or_is_skipped(hosts: list[Any], mode: str) -> None:
    def connect(uri: str) -> Any:
        if uri.endswith("host1.xml"):
            raise libvirt.libvirtError("Cannot recv data: Connection reset by peer")
        return hosts[0]

    raw = {"hosts": ["test:///host0.xml", "test:///host1.xml"], "pool": POOL,
           "base_volume": "base.qcow2", "unreachable_hosts": mode}  # fmt: skip
    assert lvp.check_options(raw, "p") == []
    p = lvp.LibvirtProvider("web", lvp.options_from(raw, TEMPLATE), connect)
    assert len(p.create(2).succeeded) == 2, "placement uses the hosts it can reach"
    assert len(_ours(hosts[0])) == 2
    if mode == "skip":
        assert len(p.list()) == 2
    else:  # the group holds: its replicas on host1 may be running fine
        with pytest.raises(ProviderError, match="host1.xml.*Connection reset"):
            p.list()


def test_hung_connection_is_bounded_and_secret_free() -> None:
    release = threading.Event()

    def hang(_uri: str) -> Any:
        release.wait(10)
        raise libvirt.libvirtError("never")

    uri = "qemu+ssh://admin:s3cret@node1/system"
    p = lvp.LibvirtProvider(
        "web",
        lvp.options_from(
            {"hosts": [uri], "base_volume": "b.qcow2", "call_timeout_seconds": 0.3}, TEMPLATE
        ),
        hang,
    )
    t0 = time.monotonic()
    with pytest.raises(ProviderError) as err:
        p.list()
    assert time.monotonic() - t0 < 2
    assert "libvirt" in str(err.value) and "0.3s" in str(err.value)
    assert "s3cret" not in str(err.value) and "node1" in str(err.value)
    release.set()


def test_failed_call_carries_libvirts_message(hosts: list[Any]) -> None:
    p = _provider(hosts[:1], pool="no-such-pool")
    res = p.create(1)
    assert res.succeeded == [] and "no-such-pool" in res.failed[0][1]
    assert _ours(hosts[0]) == [], "a failed create must not leave its domain behind"


def test_check_options_names_every_problem() -> None:
    errs = lvp.check_options(
        {"hosts": [], "base_volume": "", "vcpus": 0, "placement": "random",
         "address_template": "127.0.0.1:{port}", "frobnicate": 1},
        "groups.g.provider",
    )  # fmt: skip
    text = "\n".join(errs)
    for key in ("hosts", "base_volume", "vcpus", "placement", "port_range", "frobnicate"):
        assert f"groups.g.provider.{key}" in text


# --------------------------------------------------------------------------- conformance

SECRET = "S3cret-Pw-4"


class _Flaky:
    """The backend's connection, able to perform a define and lose its answer."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.lose_next_define = False

    def defineXML(self, xml: str) -> Any:  # noqa: N802 - libvirt's name
        dom = self._conn.defineXML(xml)
        if self.lose_next_define:
            self.lose_next_define = False
            raise libvirt.libvirtError("Cannot recv data: Connection reset by peer")
        return dom

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestLibvirtConformance(ReplicaProviderContract):
    """The shared provider contract on real libvirt (the test driver, one host)."""

    settle_seconds = 10.0

    @pytest.fixture
    def contract_backend(self, tmp_path: Path) -> Iterator[_Flaky]:
        conn = libvirt.open(node_uri(tmp_path))
        yield _Flaky(conn)
        conn.close()  # the hypervisor and whatever a test left in it go with it

    def options(self, **opts: Any) -> lvp.LibvirtOptions:
        raw = {
            "hosts": ["test:///contract.xml"], "pool": POOL, "base_volume": "base.qcow2",
            "address_template": "127.0.0.1:{port}", "port_range": [22000, 22099], **opts,
        }  # fmt: skip
        assert lvp.check_options(raw, "p") == []
        return lvp.options_from(raw, TEMPLATE)

    def make_provider(self, group: str) -> lvp.LibvirtProvider:
        return lvp.LibvirtProvider(group, self.options(), lambda _uri: self.backend)

    def custom(self, group: str, connect: Any, **opts: Any) -> lvp.LibvirtProvider:
        return self.kept(lvp.LibvirtProvider(group, self.options(**opts), connect))

    def secrets(self) -> list[str]:
        return [SECRET]

    def add_foreign_replicas(self, group: str) -> None:
        conn = self.backend
        conn.defineXML(_plain(f"autoscaler-{group}-untagged"))  # our name, no tag
        assert len(self.provider(f"{group}x").create(1).succeeded) == 1  # a look-alike group
        # our name prefix, tagged for another group
        other = lvp.LibvirtProvider("other", self.options(), lambda _u: conn)
        xml = other._domain_xml(f"autoscaler-{group}-imposter", str(uuid.uuid4()), "v", "", None)
        conn.defineXML(xml)

    def lose_next_create_answer(self, provider: ReplicaProvider) -> None:
        self.backend.lose_next_define = True

    def kill_externally(self, group: str, replica_id: str) -> None:
        dom = self.backend.lookupByName(replica_id)  # an operator: virsh destroy + undefine
        dom.destroy()
        dom.undefine()

    def hung_calls(self, group: str) -> list[Hung]:
        hole = BlackHole()  # a libvirtd that accepts and never answers (real remote driver)
        self.on_cleanup(hole.close)
        uri = f"qemu+tcp://127.0.0.1:{hole.port}/system"
        t = 0.5
        p = lvp.LibvirtProvider(
            group,
            lvp.options_from(
                {"hosts": [uri], "base_volume": "b", "call_timeout_seconds": t}, TEMPLATE
            ),
        )
        self.on_cleanup(p.close)
        return [
            Hung("list on a host that never answers", p.list, t),
            Hung("create on a host that never answers", lambda: p.create(1), t),
            Hung(
                "delete on a host that never answers",
                lambda: p.delete([f"autoscaler-{group}-x"]),
                t,
            ),
        ]

    def failing_calls(self, group: str) -> list[Failure]:
        refused = f"qemu+tcp://admin:{SECRET}@127.0.0.1:{_closed_port()}/system"
        down = lvp.LibvirtProvider(
            group,
            lvp.options_from({"hosts": [refused], "base_volume": "b"}, TEMPLATE),
        )
        self.on_cleanup(down.close)
        no_pool = self.custom(group, lambda _u: self.backend, pool="no-such-pool")
        return [
            Failure("list on a host refusing connections", down.list, "libvirt"),
            Failure("create in a missing pool", lambda: no_pool.create(1), "no-such-pool"),
            Failure(
                "delete of another group's id", lambda: no_pool.delete(["db-1"]), "not a replica"
            ),
        ]
