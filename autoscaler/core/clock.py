"""Time for the decision core: monotonic inside a process, wall clock only across processes.

Cooldowns and stabilization windows are intervals, so the planner measures them on a
monotonic timeline, which no NTP step or operator can move. That timeline starts afresh
in every process, so the planner's memory is persisted as wall-clock stamps and brought
back onto the new process's timeline by `to_monotonic`, which distrusts what it cannot
check: a stamp in the future, or one too old to matter, is dropped.

Pure: reading a clock is the caller's business (autoscaler/runtime/clock.py for the daemon,
a fake in tests); the functions here only do arithmetic on one `Reading`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "FUTURE_TOLERANCE_SECONDS",
    "Clock",
    "Reading",
    "read",
    "to_monotonic",
    "to_wall",
]

# A persisted stamp at most this far ahead of the wall clock is taken as "now" (clocks of
# two HA peers, NTP slewing); further ahead, the wall clock went back and it is dropped.
FUTURE_TOLERANCE_SECONDS = 2.0


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a timeline that never jumps; its origin is arbitrary, per process."""
        ...

    def wall(self) -> float:
        """Unix seconds: comparable across processes and machines, but may jump."""
        ...


@dataclass(frozen=True)
class Reading:
    """Both clocks read at (nearly) the same instant: the bridge between the timelines."""

    monotonic: float
    wall: float


def read(clock: Clock) -> Reading:
    return Reading(monotonic=clock.monotonic(), wall=clock.wall())


def to_wall(t: float, at: Reading) -> float:
    """A monotonic time of this process as a wall-clock stamp, for persisting."""
    return at.wall - (at.monotonic - t)


def to_monotonic(stamp: float, at: Reading, horizon: float) -> float | None:
    """A persisted wall-clock stamp on this process's monotonic timeline, or None.

    None when the stamp is further in the future than the tolerance (the wall clock went
    back since it was written, or the data is bad) or at least `horizon` seconds old (no
    window or cooldown it could matter for is that long). A stamp slightly ahead becomes
    "now": the planner reads its memory as the past.
    """
    age = at.wall - stamp
    if age < -FUTURE_TOLERANCE_SECONDS or age >= horizon:
        return None
    return at.monotonic - max(0.0, age)
