"""Floating IP failover (emulator's Neutron): every address of the pool stays on a
healthy replica; it moves before a removal, off a failed one, and off a hung one."""

from __future__ import annotations

import pytest

from autoscaler.providers.openstack import provider as openstack
from autoscaler.providers.openstack.floating_ips import plan_moves
from tests.openstack.contract import active
from tests.openstack.emulator import OpenStackEmulator


@pytest.fixture
def emu():
    e = OpenStackEmulator(build_seconds=0.1, delete_seconds=0.1).start()
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture
def pool(emu):
    """Two addresses in the pool, one that is not (another description)."""
    return [emu.add_floating_ip("server"), emu.add_floating_ip("server")], emu.add_floating_ip(
        "bastion"
    )


@pytest.fixture
def provider(emu):
    options = emu.provider_options(floating_ips={"enabled": True, "description": "server"})
    assert openstack.check_options(options, "p") == []
    p = openstack.OpenStackProvider(openstack.Settings.from_options("web", options))
    yield p
    p.close()


def holders(emu: OpenStackEmulator, fips: list[dict]) -> dict[str, str | None]:
    return {f["id"]: emu.fip_server(f["id"]) for f in fips}


def test_pool_is_spread_over_healthy_replicas(emu, pool, provider):
    fips, other = pool
    provider.create(3)
    reps = active(provider, 3, 10)
    ids = frozenset(r.id for r in reps)
    provider.reconcile(ids, frozenset())
    held = holders(emu, fips)
    assert None not in held.values() and len(set(held.values())) == 2
    assert set(held.values()) <= ids
    assert emu.fip_server(other["id"]) is None  # not in the pool: never touched
    listed = {r.id: r for r in provider.list()}
    addrs = {f["floating_ip_address"] for f in fips}
    assert {listed[s].metadata.get("external_address") for s in held.values()} == addrs
    # Stable: a second cycle with the same health moves nothing.
    puts = sum(1 for m, _ in emu.requests if m == "PUT")
    provider.reconcile(ids, frozenset())
    assert sum(1 for m, _ in emu.requests if m == "PUT") == puts


@pytest.mark.parametrize("why", ["removed", "failed", "hung"])
def test_address_moves_off_a_replica_that_goes(emu, pool, provider, why):
    fips, _ = pool
    provider.create(3)
    ids = frozenset(r.id for r in active(provider, 3, 10))
    provider.reconcile(ids, frozenset())
    before = holders(emu, fips)
    victim = next(iter(before.values()))
    spare = next(iter(ids - set(before.values())))
    if why == "removed":
        provider.reconcile(ids - {victim}, frozenset({victim}))
    elif why == "failed":
        emu.set_server_status(victim, "ERROR")
        provider.reconcile(ids - {victim}, frozenset())
    else:  # still ACTIVE in Nova, but no fresh metrics: the controller drops it from healthy
        provider.reconcile(ids - {victim}, frozenset())
    after = holders(emu, fips)
    assert victim not in after.values()
    assert spare in after.values()
    assert None not in after.values()
    if why == "removed":
        provider.delete([victim])
        after_delete = holders(emu, fips)
        assert after_delete == after  # moved before the delete, kept after it


def test_no_healthy_target_leaves_the_address_in_place(emu, pool, provider):
    fips, _ = pool
    provider.create(2)
    ids = frozenset(r.id for r in active(provider, 2, 10))
    provider.reconcile(ids, frozenset())
    before = holders(emu, fips)
    a, b = sorted(ids)
    provider.reconcile(frozenset({a}), frozenset())  # b hangs, a already holds one
    assert holders(emu, fips) == before


def test_free_address_is_attached_when_a_replica_appears(emu, pool, provider):
    fips, _ = pool
    provider.create(1)
    (rep,) = active(provider, 1, 10)
    provider.reconcile(frozenset({rep.id}), frozenset())
    assert sorted(v or "" for v in holders(emu, fips).values()) == ["", rep.id]
    provider.create(1)
    ids = frozenset(r.id for r in active(provider, 2, 10))
    provider.reconcile(ids, frozenset())
    assert set(holders(emu, fips).values()) == ids


def test_disabled_makes_no_neutron_calls(emu, pool):
    p = openstack.OpenStackProvider(openstack.Settings.from_options("web", emu.provider_options()))
    try:
        p.reconcile(frozenset({"x"}), frozenset())
        assert not any("floatingips" in path for _, path in emu.requests)
    finally:
        p.close()


# ----------------------------------------------------------------- pure planning
def test_plan_leaves_addresses_of_other_groups_alone():
    fips = [
        {"id": "f1", "floating_ip_address": "203.0.113.1", "port_id": "p-other"},
        {"id": "f2", "floating_ip_address": "203.0.113.2", "port_id": "p-dead"},
    ]
    port_owner = {"p-other": "other-group-server", "p-dead": "dead"}
    server_ports = {"a": "pa", "b": "pb"}
    moves = plan_moves(
        fips,
        port_owner,
        server_ports,
        frozenset({"a", "b", "dead"}),
        frozenset({"a", "b"}),
        frozenset(),
    )
    assert [(m.fip_id, m.from_server, m.to_server, m.to_port) for m in moves] == [
        ("f2", "dead", "a", "pa")
    ]


def test_plan_moves_addresses_of_removed_replicas_first():
    fips = [
        {"id": "f1", "floating_ip_address": "x", "port_id": None},
        {"id": "f2", "floating_ip_address": "y", "port_id": "p-r"},
    ]
    moves = plan_moves(
        fips,
        {"p-r": "r"},
        {"a": "pa", "r": "p-r"},
        frozenset({"a", "r"}),
        frozenset({"a", "r"}),
        frozenset({"r"}),
    )
    assert [(m.fip_id, m.to_server) for m in moves] == [("f2", "a")]
