"""The daemon's short memory for the operator console: replicas over the last hour and the
last decisions that changed something, per group.

Bounded twice: points older than `window_seconds` are dropped, and no group keeps more
than `max_points` (a 0.1 s interval must not grow it to 36 000 points). Kept in memory
only: a restart starts an empty chart, which is what "the daemon's own memory" means;
Prometheus holds the long history.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from autoscaler.core.model import Decision

WINDOW_SECONDS = 3600.0
MAX_POINTS = 3600  # one a second for an hour; slower intervals keep fewer
MAX_DECISIONS = 20  # per group


@dataclass
class _Entry:
    """One decision, and how many cycles in a row decided the same (`last_at` the latest);
    `reason` is the first one's: why it started."""

    at: float
    last_at: float
    current: int
    desired: int
    direction: str
    code: str
    reason: str
    dry_run: bool
    cycles: int = 1

    def same(self, d: Decision) -> bool:
        # Not the reason: it quotes the signal ("free 17.2 >= ..."), which moves every
        # cycle, and a log of 20 identical holds would hide the last real change.
        return (self.current, self.desired, self.direction, self.code) == (
            d.current,
            d.desired,
            str(d.direction),
            str(d.code),
        )


class History:
    def __init__(
        self,
        window_seconds: float = WINDOW_SECONDS,
        max_points: int = MAX_POINTS,
        max_decisions: int = MAX_DECISIONS,
    ) -> None:
        self.window = window_seconds
        self.max_points = max_points
        self.max_decisions = max_decisions
        self._lock = threading.Lock()
        self._points: dict[str, deque[tuple[float, int, int]]] = {}
        self._decisions: dict[str, deque[_Entry]] = {}

    def record(self, d: Decision) -> None:
        """One cycle's decision: a chart point, and a log entry when something changed."""
        with self._lock:
            points = self._points.setdefault(d.group, deque(maxlen=self.max_points))
            if points and d.at < points[-1][0]:
                points.clear()  # the wall clock went back: a chart cannot go backwards
            points.append((d.at, d.current, d.desired))
            while points and points[0][0] < d.at - self.window:
                points.popleft()
            log = self._decisions.setdefault(d.group, deque(maxlen=self.max_decisions))
            if log and log[-1].same(d):
                log[-1].last_at = d.at
                log[-1].cycles += 1
            else:
                log.append(
                    _Entry(
                        d.at,
                        d.at,
                        d.current,
                        d.desired,
                        str(d.direction),
                        str(d.code),
                        d.reason,
                        d.dry_run,
                    )
                )

    def forget_others(self, groups: set[str]) -> None:
        """Drop groups no longer configured (after a reload)."""
        with self._lock:
            for store in (self._points, self._decisions):
                for name in set(store) - groups:
                    del store[name]

    def snapshot(self, since: float | None = None) -> dict[str, Any]:
        """JSON-able: per group, points newer than `since` (all in the window if None), and
        the decision log, newest last."""
        with self._lock:
            groups: dict[str, Any] = {}
            for name in sorted(set(self._points) | set(self._decisions)):
                pts = self._points.get(name, ())
                groups[name] = {
                    "points": [list(p) for p in pts if since is None or p[0] > since],
                    "decisions": [vars(e).copy() for e in self._decisions.get(name, ())],
                }
            return {"window_seconds": self.window, "groups": groups}
