"""The process's real clocks, for the Clock protocol of autoscaler/core/clock.py."""

from __future__ import annotations

import time


class SystemClock:
    """time.monotonic for intervals, time.time for stamps that leave the process."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()
