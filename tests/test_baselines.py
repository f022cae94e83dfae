"""The baselines behave like the autoscalers they stand for."""

from __future__ import annotations

import math

from autoscaler.simulation import baselines
from autoscaler.simulation.replay import replay
from autoscaler.simulation.spec import ReplicaModel
from autoscaler.simulation.trace import Trace

MODEL = ReplicaModel(per_replica=1.0, boot_delay=120)


def seconds_trace(step: float, demand: list[float]) -> Trace:
    return Trace("t", 0.0, step, tuple(demand))


def healthy(run) -> list[int]:
    return [a + b for a, b in zip(run.timeline.active, run.timeline.building, strict=True)]


def test_simplescalevm_scales_out_on_headroom_and_never_scales_in():
    tr = seconds_trace(60, [2.0] * 5 + [12.0] * 10 + [0.0] * 20)
    spec = baselines.simple_scale_vm(MODEL)
    assert spec.group.scale_down.enabled is False  # the planner's own switch, as in the daemon
    run = replay(tr, spec, MODEL, initial=3)
    counts = healthy(run)
    # overloaded replicas report 0 free slots: short of 1 slot -> +1 replica per cycle
    assert counts[5] == 3 and counts[6] == 4 and max(counts) > 6
    assert all(b >= a for a, b in zip(counts, counts[1:], strict=False))  # never down
    assert run.summary.scale_downs == 0 and run.summary.deleted == 0


def test_simplescalevm_still_replaces_failed_replicas():
    model = ReplicaModel(per_replica=1.0, boot_delay=60, failure_rate=0.5, seed=1)
    tr = seconds_trace(60, [10.0] * 40)
    run = replay(tr, baselines.simple_scale_vm(model), model, initial=1)
    assert run.summary.deleted > 0  # failed ones removed (and so replaced)
    assert run.summary.scale_downs == 0
    assert run.timeline.active[-1] * model.per_replica >= 10


def test_scaleit_jumps_straight_to_ceil_r_cpu_over_target_without_damping():
    # 10 replicas at 100 % -> ceil(10 * 1.0 / 0.8) = 13 at once; a minute later the 3 new
    # ones still boot, cpu is still 1.0 -> ceil(13 / 0.8) = 17: nothing damps the overshoot
    # (ScaleIt's rule at a 60 s period; its default 5 s overshoots further still)
    tr = seconds_trace(60, [10.0] * 4 + [2.0] * 4)
    run = replay(tr, baselines.scaleit(MODEL, interval=60.0), MODEL, initial=10)
    counts = healthy(run)
    assert counts[:2] == [13, 17]
    # demand falls to 2 in minute 4, seen at minute 5: straight to ceil(R * cpu / 0.8)
    cpu = 2.0 / run.timeline.active[4]  # the replicas serving when it decides
    assert counts[5] == math.ceil(counts[4] * cpu / 0.8)
    assert counts[5] == 3


def test_scaleit_holds_inside_its_tolerance():
    # cpu 0.85: within 0.8 +- 0.1, holds
    tr = seconds_trace(60, [8.5] * 10)
    run = replay(tr, baselines.scaleit(MODEL, interval=60.0), MODEL, initial=10)
    assert healthy(run) == [10] * 10 and run.summary.created == 0


def test_scaleit_band_is_absolute_and_its_period_5_s():
    spec = baselines.scaleit(MODEL)
    assert spec.interval_seconds == 5.0
    # cpu 0.71: |0.71 - 0.8| = 0.09 <= 0.1 holds (a relative band, 0.71 / 0.8 = 0.89 < 0.9,
    # would scale down); cpu 0.69 is outside and goes straight to ceil(10 * 0.69 / 0.8) = 9
    tr = seconds_trace(5, [7.1] * 12)
    assert healthy(replay(tr, spec, MODEL, initial=10)) == [10] * 12
    tr = seconds_trace(5, [6.9] * 2)
    assert healthy(replay(tr, spec, MODEL, initial=10))[0] == 9


def test_hpa_waits_300_s_before_scaling_down_and_limits_scale_up_per_15_s():
    model = ReplicaModel(per_replica=1.0, boot_delay=60)
    # demand 2 -> 40 (scale-up capped at max(+100 %, +4) per 15 s sync) -> 2 again
    tr = seconds_trace(15, [2.0] * 8 + [40.0] * 40 + [2.0] * 40)
    run = replay(tr, baselines.hpa(model), model, initial=3)
    counts = healthy(run)
    for a, b in zip(counts, counts[1:], strict=False):
        if b > a:
            assert b - a <= max(a, 4)
    assert max(counts) >= 50
    fall = 48  # first tick of the low demand
    high = counts[fall]
    # the 60 s rate window sees the drop within a minute; the highest recommendation of
    # the last 300 s keeps the count up until then
    stable_until = fall + 300 // 15
    assert all(c == high for c in counts[fall:stable_until])
    assert counts[-1] <= 4
    assert run.timeline.dt == 15


def test_scaleit_replays_at_5_s_but_never_finer_than_the_trace():
    assert baselines.period("scaleit", 1.0, 60.0) == 5.0
    assert baselines.period("scaleit", 60.0, 60.0) == 60.0
    assert baselines.period("hpa", 60.0, 60.0) == 15.0
    assert baselines.period("reactive", 60.0, 30.0) == 30.0
