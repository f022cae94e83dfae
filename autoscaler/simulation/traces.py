"""Demand traces: the one reader of trace CSVs, and load curves for the load generator.

A trace is a CSV `t_seconds,demand` (see ../shared/traces/README.md): evenly spaced
rows, each the mean requests per second over `[t_seconds, t_seconds + step)`.
`load_trace` reads one for the load generator, the demo and `autoscaler simulate`
(autoscaler/simulation/trace.py). `trace_curve` turns one into a `demand(t)` function
for live load: time-compressed by `speedup` and rescaled so that the trace's peak
becomes `peak_rps`.
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Callable, Sequence
from pathlib import Path


def load_trace(path: str | Path) -> list[tuple[float, float]]:
    """The (t_seconds, demand) rows of a trace CSV; ValueError names file, line and problem."""
    path = Path(path)
    rows: list[tuple[float, float]] = []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["t_seconds", "demand"]:
            raise ValueError(f"{path}:1: expected the header 't_seconds,demand', got {header}")
        for lineno, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            try:
                t, d = float(row[0]), float(row[1])
            except (ValueError, IndexError):
                raise ValueError(f"{path}:{lineno}: expected two numbers, got {row}") from None
            if not (math.isfinite(t) and math.isfinite(d)) or d < 0:
                raise ValueError(f"{path}:{lineno}: expected finite t and demand >= 0, got {row}")
            if rows and t <= rows[-1][0]:
                raise ValueError(f"{path}:{lineno}: t_seconds must increase, got {t}")
            rows.append((t, d))
    if not rows:
        raise ValueError(f"{path}: no data rows")
    return rows


def trace_curve(
    rows: Sequence[tuple[float, float]],
    speedup: float,
    peak_rps: float,
    *,
    offset_seconds: float = 0.0,
) -> Callable[[float], float]:
    """demand(t) replaying `rows` `speedup` times faster, scaled so the peak is `peak_rps`.

    Wall time t maps to trace time `first + offset_seconds + t * speedup`; each row's
    value holds for its step. Past the end the trace starts over, so a long run never
    falls silent.
    """
    if not rows:
        raise ValueError("a trace needs at least one row")
    if speedup <= 0 or not math.isfinite(speedup):
        raise ValueError(f"speedup must be > 0, got {speedup}")
    if peak_rps < 0 or not math.isfinite(peak_rps):
        raise ValueError(f"peak_rps must be >= 0, got {peak_rps}")
    times = [t for t, _ in rows]
    step = times[1] - times[0] if len(times) > 1 else 1.0
    first, span = times[0], times[-1] - times[0] + step
    peak = max(d for _, d in rows)
    scale = peak_rps / peak if peak > 0 else 0.0
    values = [d * scale for _, d in rows]

    def demand(t: float) -> float:
        at = first + (offset_seconds + max(0.0, t) * speedup) % span
        return values[max(0, bisect.bisect_right(times, at) - 1)]

    return demand


def trace_span_seconds(rows: Sequence[tuple[float, float]]) -> float:
    """How long the trace lasts, including its last step."""
    if len(rows) < 2:
        return 1.0
    return rows[-1][0] - rows[0][0] + (rows[1][0] - rows[0][0])
