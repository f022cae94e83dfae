"""Throughput against a slow cloud (emulator with latency on every call): the flavor,
image and network are looked up once, side by side, and cached; creates run
`max_concurrency` at once; a create refused for a stale id refreshes the cache once.

Asserted on which calls were made and which overlapped, never on wall time (the
numbers are in `bench/openstack.py`)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from autoscaler.providers.base import ProviderError
from autoscaler.providers.openstack import provider as openstack
from autoscaler.providers.openstack.lookups import Lookups
from tests.openstack.emulator import Fault, OpenStackEmulator

LATENCY = 0.4  # long enough that calls sent together surely overlap on a loaded machine


@pytest.fixture
def emu() -> Iterator[OpenStackEmulator]:
    e = OpenStackEmulator(build_seconds=0.1, delete_seconds=0.1, max_instances=100).start()
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture
def make(emu):
    made: list[openstack.OpenStackProvider] = []

    def factory(**overrides: Any) -> openstack.OpenStackProvider:
        options = emu.provider_options(**overrides)
        assert openstack.check_options(options, "p") == []
        p = openstack.OpenStackProvider(openstack.Settings.from_options("web", options))
        made.append(p)
        return p

    yield factory
    for p in made:
        p.close()


def lookup_calls(emu: OpenStackEmulator) -> list[str]:
    with emu.lock:
        return [
            path
            for _, path, *_ in emu.timings
            if "/flavors" in path or "/images" in path or "/networks" in path
        ]


def posts(emu: OpenStackEmulator) -> list[tuple[float, float]]:
    with emu.lock:
        return [
            (a, b) for m, path, a, b in emu.timings if m == "POST" and path.endswith("/servers")
        ]


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def test_default_concurrency_is_25() -> None:
    assert openstack.DEFAULTS["max_concurrency"] == 25
    s = openstack.Settings.from_options("g", {"flavor": "f", "image": "i", "network": "n"})
    assert s.max_concurrency == 25


def test_lookups_run_side_by_side_once_and_later_creates_only_post(emu, make) -> None:
    emu.latency = LATENCY
    p = make()
    assert p.list() == []
    assert len(p.create(3).succeeded) == 3
    first = lookup_calls(emu)
    # Each kind was looked up, and the look-ups (with the image service's version
    # discovery, which only they need) overlapped: one after another, they would span
    # at least the sum of their durations.
    with emu.lock:
        spans = {
            kind: [(a, b) for _, path, a, b in emu.timings if kind in path.split("?")[0]]
            for kind in ("/flavors", "/images", "/networks", "/image")
        }
    assert all(spans.values()), spans
    calls = {c for s in spans.values() for c in s}
    span = max(b for _, b in calls) - min(a for a, _ in calls)
    assert span < 0.75 * sum(b - a for a, b in calls), "look-ups ran one by one"
    mark = len(emu.timings)
    assert len(p.create(4).succeeded) == 4
    with emu.lock:
        later = [(m, path) for m, path, *_ in emu.timings[mark:]]
    assert later == [("POST", "/compute/v2.1/servers")] * 4  # nothing looked up again
    assert lookup_calls(emu) == first


def test_creates_run_max_concurrency_at_once(emu, make) -> None:
    emu.latency = LATENCY
    p = make(max_concurrency=6)
    p.list()
    p.create(1)  # authenticated, discovered, looked up
    mark = len(posts(emu))
    assert len(p.create(12).succeeded) == 12
    assert peak_overlap(posts(emu)[mark:]) == 6


def test_parallel_creates_reuse_their_connections(emu, make, caplog) -> None:
    # requests keeps 10 connections per host; 25 in flight would log "pool is full".
    emu.latency = 0.2
    p = make()
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        assert len(p.create(30).succeeded) == 30
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_image_replaced_under_the_same_name_is_looked_up_again_once(emu, make) -> None:
    p = make(max_concurrency=5)
    assert len(p.create(2).succeeded) == 2
    old = emu.images[0]["id"]
    new = str(uuid.uuid4())
    with emu.lock:  # the cloud uploads a new "cirros" and removes the old one
        emu.images[0] = {"id": new, "name": "cirros"}
    before = len(lookup_calls(emu))
    res = p.create(5)
    assert len(res.succeeded) == 5 and res.failed == []
    assert {s.image_id for s in emu.live_servers()} == {old, new}
    # One refresh for five refused creates (single flight), not five.
    again = lookup_calls(emu)[before:]
    assert sum("/images" in c for c in again) == sum(
        "/images" in c for c in lookup_calls(emu)[:before]
    )
    assert len(p.create(1).succeeded) == 1 and len(lookup_calls(emu)) == before + len(again)


def test_a_refusal_naming_an_unchanged_id_is_not_resent(emu, make) -> None:
    p = make()
    p.create(1)
    image = emu.images[0]["id"]
    emu.add_fault(Fault("POST", r"/servers$", status=400, message=f"Image {image} is not active."))
    res = p.create(1)
    assert res.succeeded == [] and "not active" in res.failed[0][1]
    assert len(posts(emu)) == 2  # the look-up found the same id: the POST is not repeated


def test_a_refusal_not_about_the_ids_does_not_look_up_again(emu, make) -> None:
    p = make(key_name="no-such-key")
    p.list()
    p.create(1)
    before = len(lookup_calls(emu))
    res = p.create(1)
    assert res.succeeded == [] and "key_name" in res.failed[0][1]
    assert len(lookup_calls(emu)) == before


def test_a_failed_lookup_is_not_cached(emu, make) -> None:
    p = make(network="backend")
    with pytest.raises(ProviderError, match="backend"):
        p.create(1)
    with emu.lock:
        emu.networks[0]["name"] = "backend"  # the network now exists
    assert len(p.create(1).succeeded) == 1


def test_listing_waits_for_the_network_look_up_only(emu, make) -> None:
    # A wrong flavor must not break the listing: only create needs it.
    p = make(flavor="no-such-flavor")
    assert p.list() == []
    with pytest.raises(ProviderError, match="no-such-flavor"):
        p.create(1)


# ------------------------------------------------------------- Lookups, on their own
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def counting(values: dict[str, list[Any]]) -> tuple[dict[str, Any], dict[str, int]]:
    calls = {k: 0 for k in values}
    lock = threading.Lock()

    def resolver(key: str) -> Any:
        def run() -> Any:
            with lock:
                i = calls[key]
                calls[key] += 1
            v = values[key][min(i, len(values[key]) - 1)]
            if isinstance(v, Exception):
                raise v
            return v

        return run

    return {k: resolver(k) for k in values}, calls


NET = {"network_id": "n1", "network_name": "private"}


def test_lookups_renew_in_the_background_after_max_age() -> None:
    clock = Clock()
    resolvers, calls = counting(
        {"flavor": ["f1", "f2"], "image": ["i1", "i2"], "network": [NET, NET]}
    )
    lk = Lookups(resolvers, timeout=5, max_age=100, clock=clock)
    try:
        r1 = lk.resolved()
        assert (r1.flavor, r1.image) == ("f1", "i1")
        clock.now = 50
        lk.start()
        assert calls == {"flavor": 1, "image": 1, "network": 1}
        clock.now = 101
        lk.start()  # old ids keep serving while the new ones are looked up
        for _ in range(200):
            r2 = lk.resolved()
            if r2.flavor == "f2":
                break
            threading.Event().wait(0.01)
        assert (r2.flavor, r2.image) == ("f2", "i2") and r2.generation > r1.generation
    finally:
        lk.close()


def test_lookups_refresh_is_single_flight() -> None:
    resolvers, calls = counting({"flavor": ["f1", "f2"], "image": ["i1"], "network": [NET]})
    lk = Lookups(resolvers, timeout=5)
    try:
        stale = lk.resolved()
        fresh = [lk.refresh(stale) for _ in range(5)]
        assert {r.flavor for r in fresh} == {"f2"}
        assert calls == {"flavor": 2, "image": 2, "network": 2}
    finally:
        lk.close()


def test_lookups_errors_are_raised_and_retried() -> None:
    resolvers, calls = counting(
        {"flavor": [RuntimeError("boom"), "f1"], "image": ["i1"], "network": [NET]}
    )
    lk = Lookups(resolvers, timeout=5)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            lk.resolved()
        assert lk.resolved().flavor == "f1"
        assert calls["flavor"] == 2 and calls["image"] == 1
    finally:
        lk.close()


# ------------------------------------------------------------- one call a look-up
def test_each_lookup_is_one_call_by_name(emu, make) -> None:
    p = make()
    p.list()
    assert len(p.create(1).succeeded) == 1
    calls = lookup_calls(emu)
    assert sorted(c.split("?")[0].rsplit("/", 1)[-1] for c in calls) == [
        "detail",  # flavors/detail
        "images",
        "networks",
    ], calls


def test_flavor_by_id_and_ambiguous_image_name(emu, make) -> None:
    p = make(flavor="2")  # an id, not a name
    assert len(p.create(1).succeeded) == 1
    assert [s.flavor["name"] for s in emu.live_servers()] == ["m1.small"]
    with emu.lock:
        emu.images.append({"id": str(uuid.uuid4()), "name": "cirros"})
    with pytest.raises(ProviderError, match="2 images are named 'cirros': give the id"):
        make().create(1)
