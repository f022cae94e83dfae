"""The process's real clocks, for the Clock protocol of autoscaler/core/clock.py."""

from __future__ import annotations

import time
from collections.abc import Callable

from autoscaler.core.clock import Clock


class SystemClock:
    """time.monotonic for intervals, time.time for stamps that leave the process."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class FunctionClock:
    """One function for both timelines (a test's or a replay's hand-set time)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now()

    def wall(self) -> float:
        return self.now()


def as_clock(clock: Clock | Callable[[], float] | None) -> Clock:
    """A Clock from what a caller passed: a Clock, a plain `() -> seconds`, or None."""
    if clock is None:
        return SystemClock()
    if hasattr(clock, "monotonic") and hasattr(clock, "wall"):
        return clock
    return FunctionClock(clock)
