"""A restarted daemon decides exactly as one that never stopped (issue #9, defect 2).

Random signal sequences and damping settings; one run restarts every k cycles (its planner
memory saved and loaded through the real store, in a temporary state directory, with a new
monotonic origin each time), the other runs continuously. Every decision must be the same.

Cycle times are whole seconds, so converting them to wall-clock stamps and back is exact and
a comparison on a window's very edge cannot flip on a rounding error.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.core.spec import GroupConfig, ScalingBehavior
from tests.fake_daemon import daemon, group

# The store fsyncs every save; on tmpfs that costs nothing, so examples stay fast.
FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
SIGNALS = st.sampled_from([0.0, 0.1, 0.5, 0.85, 1.0, 1.05, 1.3, 2.0, 3.0])


@st.composite
def behaviors(draw: st.DrawFn) -> ScalingBehavior:
    return ScalingBehavior(
        cooldown_seconds=draw(st.sampled_from([0.0, 20.0, 60.0, 300.0])),
        stabilization_seconds=draw(st.sampled_from([0.0, 30.0, 120.0, 300.0])),
        max_step_replicas=draw(st.one_of(st.none(), st.integers(1, 4))),
        max_step_percent=draw(st.one_of(st.none(), st.sampled_from([50.0, 100.0]))),
    )


@st.composite
def groups(draw: st.DrawFn) -> GroupConfig:
    low = draw(st.integers(0, 3))
    return group(
        min=low,
        max=low + draw(st.integers(2, 15)),
        scale_up=draw(behaviors()),
        scale_down=draw(behaviors()),
    )


def _run(spec: GroupConfig, count: int, interval: float, signals: list[float], k: int | None):
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as state_dir:
        d = daemon(Path(state_dir), spec, count, interval)
        for i, signal in enumerate(signals):
            if k is not None and i > 0 and i % k == 0:
                d.restart()
            d.cycle(signal)
        d.controller.close()
    return d.decisions, sorted(d.provider.replicas)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=groups(),
    count=st.integers(0, 12),
    interval=st.sampled_from([5.0, 10.0, 30.0]),
    signals=st.lists(SIGNALS, min_size=2, max_size=30),
    k=st.integers(1, 5),
)
def test_restarting_every_k_cycles_decides_as_a_continuous_run(
    spec: GroupConfig, count: int, interval: float, signals: list[float], k: int
) -> None:
    continuous = _run(spec, count, interval, signals, None)
    restarted = _run(spec, count, interval, signals, k)
    assert restarted == continuous
