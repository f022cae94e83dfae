"""Issue 11, clock: replica ages, warm-up and /healthz do not follow wall-clock steps.

Seen before: with the clock set back 1 h every replica was "created in the future", in
warm-up (counted fully free) for an hour, so a loaded group never scaled up, and /healthz
kept answering 200 for that hour after cycles stopped. The real Controller runs on a
hand-moved clock (tests/fake_daemon.py); the reader answers each replica's free capacity.
"""

from __future__ import annotations

from pathlib import Path

from autoscaler.core.clock import Reading
from autoscaler.core.model import Replica, ReplicaState
from autoscaler.core.spec import HeadroomPolicyConfig, ScalingBehavior
from autoscaler.runtime.exporter import SharedState
from autoscaler.runtime.replica_ages import ReplicaAges
from tests.fake_daemon import Daemon, FakeClock, MemoryProvider, SignalReader, config, group

WARMUP = 60.0


def _headroom_daemon(tmp_path: Path, count: int, **kw: object) -> Daemon:
    spec = group(
        policies=(HeadroomPolicyConfig("headroom", min_available=2.0),),
        warmup_seconds=WARMUP,
        expect_capacity=True,
        **kw,
    )
    clock = FakeClock()
    # Every replica reports `free` slots (0: fully busy, the group is under load).
    reader = SignalReader(1.0, free=0.0)
    return Daemon(config(spec, tmp_path), MemoryProvider(clock, count), clock, reader)


def _warming(d: Daemon) -> frozenset[str]:
    decision = d.controller.groups["g"].decision
    assert decision is not None and decision.assessment is not None
    return decision.assessment.warming


def test_wall_clock_back_one_hour_under_load_still_scales_up(tmp_path: Path) -> None:
    d = _headroom_daemon(tmp_path, 2, scale_up=ScalingBehavior(cooldown_seconds=0))
    d.clock.jump_wall(-7200)  # before the daemon first sees them: stamped 1 h "in the future"
    d.cycle(0.0)
    # Age 0 at first sight: one warm-up, not an hour of it (measured before the fix: both
    # replicas in warm-up, counted fully free, for 3600 s; no scale-up at all).
    assert _warming(d) == {"g-1", "g-2"} and d.count == 2
    for _ in range(int(WARMUP // d.config.interval_seconds) + 1):
        d.cycle(0.0)
    assert not ({"g-1", "g-2"} & _warming(d))
    assert d.count > 2, "no scale-up under load with the wall clock set back"
    d.controller.close()


def test_wall_clock_back_after_first_sight_changes_no_age(tmp_path: Path) -> None:
    d = _headroom_daemon(tmp_path, 2, scale_up=ScalingBehavior(cooldown_seconds=0))
    d.reader.free = 1.5
    d.cycle(0.0)  # seen, old, 3 slots free of the 2 wanted: holds
    assert d.count == 2
    d.clock.jump_wall(-3600)
    d.reader.free = 0.0
    d.cycle(0.0)
    assert _warming(d) == frozenset() and d.count > 2
    d.controller.close()


def test_wall_clock_forward_one_hour_keeps_a_new_replica_in_warm_up(tmp_path: Path) -> None:
    d = _headroom_daemon(tmp_path, 1, scale_up=ScalingBehavior(cooldown_seconds=0))
    d.cycle(0.0)  # under load: creates, and lists the new replicas at once
    new = set(d.provider.replicas) - {"g-1"}
    assert new
    d.reader.free = 4.0  # no further scale-up needed
    d.clock.advance(5 - d.config.interval_seconds)  # the new replicas are 5 s old
    d.clock.jump_wall(3600)
    d.cycle(0.0)
    assert new <= _warming(d), "a 5 s old replica left warm-up on a wall-clock jump"
    # ...and leaves it on time: WARMUP seconds of monotonic time after its creation.
    for _ in range(int(WARMUP // d.config.interval_seconds) + 1):
        d.cycle(0.0)
    assert not (new & _warming(d))
    d.controller.close()


def test_first_sight_with_a_future_stamp_is_age_zero_and_ages_monotonically() -> None:
    ages = ReplicaAges()
    r = Replica("a", "g", ReplicaState.ACTIVE, created_at=10_000.0)
    assert ages.age(r, Reading(monotonic=50.0, wall=6_400.0)) == 0.0  # 1 h "in the future"
    assert ages.age(r, Reading(monotonic=80.0, wall=99_999.0)) == 30.0  # wall jumped: ignored
    rebased = ages.rebase([r], Reading(monotonic=90.0, wall=1_000.0))
    assert rebased[0].created_at == 1_000.0 - 40.0
    ages.rebase([], Reading(monotonic=91.0, wall=1_000.0))  # gone: forgotten
    assert ages.age(r, Reading(monotonic=100.0, wall=10_005.0)) == 5.0  # read afresh


def test_healthz_staleness_is_monotonic() -> None:
    clock = FakeClock()
    shared = SharedState(10.0, clock)
    shared.mark_success(clock.wall())
    clock.jump_wall(-3600)  # back: must not keep /healthz 200 once cycles stop
    clock.mono_time += 31
    assert not shared.healthy()
    shared.mark_success(clock.wall())
    assert shared.healthy()
    clock.jump_wall(7200)  # forward: must not fail a daemon whose cycles succeed
    assert shared.healthy()
