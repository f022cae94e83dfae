"""What keeps one cycle's memory small at 100,000 replicas (issue #13, scale), held exactly.

- A listing's replicas take the previous listing's equal strings and metadata (the
  provider makes new ones every time), so two consecutive listings share them; anything
  that changed is the new listing's, whatever the order of the listing.
- The last cycle's assessment (every replica again) is freed before the next listing;
  /status shows the decision without it.
- The replica answers are decoded one series at a time: the peak of decoding is a
  fraction of what decoding the whole document at once costs, and what is read is the
  same (mixed two-label and several-label series, a value per distinct text with the
  sign of a zero kept, an invalid series failing the whole answer).

Memory is counted with tracemalloc (allocations, not time): deterministic on any machine.
"""

from __future__ import annotations

import json
import math
import tracemalloc
import weakref
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from autoscaler.core.clock import Reading
from autoscaler.core.model import Replica, ReplicaState
from autoscaler.observe.answer import parse_result, replica_vector
from autoscaler.runtime.replica_ages import ReplicaAges
from tests.fake_daemon import INTERVAL, daemon, group


def _fresh(text: str) -> str:
    """An equal string that is a new object (as a provider's parsed answer makes)."""
    return "".join(list(text))


def _listing(n: int, address: str = "10.0.0.1", **kw: Any) -> list[Replica]:
    return [
        Replica(
            _fresh(f"r{i}"),
            _fresh("g"),
            ReplicaState.ACTIVE,
            1000.0,
            _fresh(f"{address}:{i}"),
            metadata={"zone": _fresh("a")},
            **kw,
        )
        for i in range(n)
    ]


def test_a_listing_shares_the_previous_listings_equal_strings() -> None:
    ages = ReplicaAges()
    first = ages.rebase(_listing(5), Reading(monotonic=10.0, wall=2000.0))
    again = _listing(5)
    second = ages.rebase(reversed(again), Reading(monotonic=15.0, wall=2005.0))
    by_id = {r.id: r for r in first}
    for r, new in zip(second, reversed(again), strict=True):
        old = by_id[r.id]
        assert r.id is old.id and r.group is old.group and r.address is old.address
        assert r.metadata is old.metadata
        assert r == Replica(new.id, new.group, new.state, 1000.0, new.address, "", new.metadata)
    # The new listing's copies are not kept: nothing of `again` is referenced.
    assert all(r.id is not n.id for r, n in zip(second, reversed(again), strict=True))


def test_what_changed_is_the_new_listings() -> None:
    ages = ReplicaAges()
    ages.rebase(_listing(3), Reading(monotonic=10.0, wall=2000.0))
    moved = _listing(3, address="10.0.0.2")
    moved[1] = Replica("r1", "g", ReplicaState.BUILDING, 1000.0, None, "web-1", {"zone": "b"})
    moved[2] = Replica(
        "r2", "g", ReplicaState.ACTIVE, 1000.0, "10.0.0.1:2", metadata=MappingProxyType({})
    )
    out = ages.rebase(moved, Reading(monotonic=11.0, wall=2001.0))
    assert out[0].address is moved[0].address == "10.0.0.2:0"
    assert (out[1].state, out[1].address, out[1].name) == (ReplicaState.BUILDING, None, "web-1")
    assert out[1].metadata is moved[1].metadata
    # An equal mapping of another type is not swapped for the previous dict.
    assert type(out[2].metadata) is MappingProxyType
    assert [r.created_at for r in out] == [1000.0, 1000.0, 1000.0]


def test_a_replica_gone_and_back_is_new_and_shares_nothing_stale() -> None:
    ages = ReplicaAges()
    ages.rebase(_listing(2), Reading(monotonic=10.0, wall=2000.0))
    ages.rebase([], Reading(monotonic=11.0, wall=2001.0))
    back = _listing(1)
    out = ages.rebase(back, Reading(monotonic=12.0, wall=2002.0))
    assert out[0].address is back[0].address  # nothing left from the forgotten listing
    assert out[0].metadata is back[0].metadata
    assert out[0].created_at == 1000.0


# --- the replica answer, decoded one series at a time -----------------------------------------


def _answer(n: int, several: int = 0) -> bytes:
    rows: list[dict[str, Any]] = [
        {"metric": {"group": f"g{i // 100}", "replica": f"g{i // 100}-r{i}"}, "value": [1.5, "1"]}
        for i in range(n)
    ]
    for job in ("a", "b")[: 2 if several else 0]:
        for i in range(several):
            labels = {"group": "g0", "replica": f"x{i}", "job": job}
            rows.append({"metric": labels, "value": [1.5, "2" if job == "a" else "3"]})
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": rows}})


def _peak(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        kept = fn()
        peak = tracemalloc.get_traced_memory()[1]
        del kept
    finally:
        tracemalloc.stop()
    return peak


def test_decoding_peaks_far_below_the_whole_documents_objects() -> None:
    body = _answer(20_000).encode()
    peak = _peak(lambda: replica_vector(body, 200, "group", "replica"))
    whole = _peak(lambda: json.loads(body))  # every series as objects at once
    # About 0.23 of it; the whole document decoded at once (msgspec), as before, 0.55.
    assert peak < 0.35 * whole, (peak, whole)


def test_one_value_object_per_distinct_text_and_zero_signs_kept() -> None:
    rows = [
        {"metric": {"group": "g", "replica": f"r{i}"}, "value": [1.0, text]}
        for i, text in enumerate(["1", "1", "-0", "0", "NaN", "NaN", "+Inf", "1.0"])
    ]
    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": rows}})
    got = replica_vector(body.encode(), 200, "group", "replica")
    assert got is not None
    v = got.values["g"]
    assert v["r0"] is v["r1"] and v["r0"] == v["r7"] == 1.0
    assert math.copysign(1, v["r2"]) == -1 and math.copysign(1, v["r3"]) == 1
    assert math.isnan(v["r4"]) and math.isnan(v["r5"]) and v["r6"] == math.inf


def test_mixed_series_read_as_the_full_validator_reads_them() -> None:
    body = _answer(300, several=3).encode()
    fast = replica_vector(body, 200, "group", "replica")
    assert fast is not None
    _, series = parse_result(body, 200, ("vector",))
    full: dict[tuple[str, str], list[float]] = {}
    for s in series:
        full.setdefault((s.labels["group"], s.labels["replica"]), []).append(s.samples[-1][1])
    assert {(g, r): fast.get(g, r) for g, by in fast.values.items() for r in by} == full
    assert fast.several == {("g0", f"x{i}"): [2.0, 3.0] for i in range(3)}


def test_one_invalid_series_fails_the_whole_answer() -> None:
    doc = json.loads(_answer(50))
    doc["data"]["result"][49]["value"] = [1.5, 1]  # a number, not a string
    assert replica_vector(json.dumps(doc).encode(), 200, "group", "replica") is None
    doc["data"]["result"][49] = ["not", "a", "series"]
    assert replica_vector(json.dumps(doc).encode(), 200, "group", "replica") is None


# --- the last cycle's working data is gone before the next listing --------------------------


def test_the_last_assessment_is_freed_before_the_next_listing(tmp_path: Path) -> None:
    """/status keeps showing the last decision, but not the assessment behind it (every
    replica again): that is freed before the next cycle lists, and the decision read
    between cycles keeps it."""
    d = daemon(tmp_path, group(), 3)
    controller = d.controller
    controller.cycle()
    decision = controller.groups["g"].decision
    assert decision is not None and decision.assessment is not None
    gone = weakref.ref(decision.assessment)
    shown = controller.shared.status["groups"]["g"]
    del decision
    alive_at_listing: list[bool] = []
    listing = d.provider.list

    def list_() -> list[Replica]:
        alive_at_listing.append(gone() is not None)
        return listing()

    d.provider.list = list_  # type: ignore[method-assign]
    d.clock.advance(INTERVAL)
    controller.cycle()
    assert alive_at_listing == [False]
    again = controller.groups["g"].decision
    assert again is not None and again.assessment is not None
    now = controller.shared.status["groups"]["g"]["decision"]
    assert {**shown["decision"], "at": 0} == {**now, "at": 0}  # the same hold, one cycle on
    controller.close()
