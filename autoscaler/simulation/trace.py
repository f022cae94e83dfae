"""Demand traces: evenly spaced samples of a demand signal, each held for one step."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autoscaler.simulation.traces import load_trace


@dataclass(frozen=True)
class Trace:
    """demand[i] is the mean demand over [start + i*step, start + (i+1)*step)."""

    name: str
    start: float
    step: float
    demand: tuple[float, ...]

    @property
    def duration(self) -> float:
        return self.step * len(self.demand)

    @property
    def peak(self) -> float:
        return max(self.demand, default=0.0)

    def scaled(self, factor: float) -> Trace:
        return Trace(self.name, self.start, self.step, tuple(d * factor for d in self.demand))

    def head(self, seconds: float) -> Trace:
        n = max(1, int(seconds // self.step))
        return Trace(self.name, self.start, self.step, self.demand[:n])


def from_points(name: str, points: Sequence[tuple[float, float]]) -> Trace:
    """A trace from (t, demand) pairs: evenly spaced; a missing or unusable value is 0.

    Gaps (a missing step, as in a range query over an outage) are filled with 0 demand:
    nothing was asked then, so nothing had to be served.
    """
    if len(points) < 2:
        raise ValueError(f"{name}: a trace needs at least 2 samples, got {len(points)}")
    pts = sorted(points)
    steps = [b[0] - a[0] for a, b in zip(pts, pts[1:], strict=False)]
    step = min(s for s in steps if s > 0) if any(s > 0 for s in steps) else 0
    if step <= 0:
        raise ValueError(f"{name}: timestamps must increase")
    start = pts[0][0]
    n = int(round((pts[-1][0] - start) / step)) + 1
    demand = [0.0] * n
    for t, v in pts:
        i = int(round((t - start) / step))
        demand[i] = v if math.isfinite(v) and v >= 0 else 0.0
    return Trace(name, start, step, tuple(demand))


def load_csv(path: str | Path) -> Trace:
    """Read a `t_seconds,demand` CSV (the format of ../shared/traces) as a Trace.

    The file is read by `autoscaler.simulation.traces.load_trace`, the loader the load generator
    and the demo use: errors name the file and line.
    """
    return from_points(Path(path).stem, load_trace(path))
