"""Regressions for issue #9, defects 2, 3 and 6: the planner's memory and its clock.

2. A restart must not skip scale-down stabilization and cooldown.
3. Intervals use monotonic time: a wall-clock jump must not freeze or erase damping.
6. A cooldown starts only when the provider accepted the action.

The real Controller runs here, cycle by cycle, on a hand-moved clock (tests/fake_daemon.py):
its reader answers one target signal (no Prometheus needed), and the provider keeps its
replicas in memory across "restarts" (a new Controller), like a cloud does.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pytest

from autoscaler.core.spec import ScalingBehavior
from tests.fake_daemon import INTERVAL, daemon, group

# --- 2. a restart keeps the planner's memory ------------------------------------------


def _low_signal_run(tmp_path: Path, restart_every: float | None) -> int:
    """Default damping; 8 replicas in band for 100 s, then 280 s of a signal asking for 1."""
    d = daemon(tmp_path, group(), 8)
    t = 0.0
    for signal in [1.0] * 10 + [0.1] * 28:
        if restart_every is not None and t > 0 and t % restart_every == 0:
            d.restart()
        d.cycle(signal)
        t += INTERVAL
    d.controller.close()
    return d.count


def test_restarts_every_70s_do_not_turn_stabilization_into_a_fast_scale_in(
    tmp_path: Path,
) -> None:
    # The 300 s scale-down window still holds the in-band 8: no restart, no scale-in.
    assert _low_signal_run(tmp_path / "continuous", None) == 8
    # A crash loop must decide the same (measured on main: 8 -> 1).
    assert _low_signal_run(tmp_path / "restarts", 70.0) == 8


# --- 3. monotonic time -----------------------------------------------------------------


def test_wall_clock_back_one_hour_does_not_freeze_scale_up(tmp_path: Path) -> None:
    up = ScalingBehavior(cooldown_seconds=60, max_step_replicas=2)
    d = daemon(tmp_path, group(scale_up=up), 2)
    d.cycle(2.0)  # 2 -> 4
    assert d.count == 4
    d.clock.jump_wall(-3600)
    for _ in range(8):  # 80 s: the 60 s cooldown is over
        d.cycle(2.0)
    d.controller.close()
    assert d.count > 4, "scale-up frozen by a wall clock set back"


def test_wall_clock_back_400s_does_not_erase_the_stabilization_window(tmp_path: Path) -> None:
    down = ScalingBehavior(stabilization_seconds=300)  # no cooldown, no step limit
    d = daemon(tmp_path, group(scale_down=down), 4)
    for _ in range(6):
        d.cycle(1.0)  # in band: recommendation 4
    d.cycle(0.5)  # wants 2: held by the window
    assert d.count == 4
    d.clock.jump_wall(-400)
    d.cycle(0.5)
    d.controller.close()
    assert d.count == 4, "a wall clock set back erased the stabilization window"


# --- 6. cooldowns start when the provider accepted the action --------------------------


@pytest.mark.parametrize("failure", ["raise", "quota", "failed", "busy"])
def test_scale_up_that_never_ran_starts_no_cooldown(tmp_path: Path, failure: str) -> None:
    up = ScalingBehavior(cooldown_seconds=300, max_step_replicas=2)
    d = daemon(tmp_path, group(scale_up=up), 2)
    busy: Future[None] = Future()
    if failure == "busy":
        d.controller.groups["g"].acting = busy  # an earlier action still running
    else:
        d.provider.create_mode = failure
    d.cycle(2.0)  # wants 4; nothing is created
    assert d.count == 2
    d.provider.create_mode = "ok"
    busy.set_result(None)
    d.cycle(2.0)
    assert d.count == 4, f"a scale-up that never ran ({failure}) started the cooldown"
    d.cycle(3.0)  # the accepted scale-up did start it
    d.controller.close()
    assert d.count == 4


def test_scale_down_that_never_ran_starts_no_cooldown(tmp_path: Path) -> None:
    down = ScalingBehavior(cooldown_seconds=300)  # no window, no step limit
    d = daemon(tmp_path, group(scale_down=down), 4)
    d.provider.delete_mode = "raise"
    d.cycle(0.5)  # wants 2; nothing is deleted
    assert d.count == 4
    d.provider.delete_mode = "ok"
    d.cycle(0.5)
    d.controller.close()
    assert d.count == 2, "a scale-down that never ran started the cooldown"
