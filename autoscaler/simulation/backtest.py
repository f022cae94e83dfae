"""Backtests: read a demand signal's history from Prometheus as a trace."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from prometheus_api_client import PrometheusConnect

from autoscaler.simulation.trace import Trace, from_points


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """RFC 3339 / ISO 8601, unix seconds, or `now`, `now-2d`, `now-6h`, `now-30m`."""
    now = now or datetime.now(UTC)
    text = text.strip()
    if text.startswith("now"):
        rest = text[3:]
        if not rest:
            return now
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
        if rest[0] != "-" or rest[-1] not in units:
            raise ValueError(f"bad relative time {text!r}: use now-<N><s|m|h|d|w>")
        return datetime.fromtimestamp(now.timestamp() - float(rest[1:-1]) * units[rest[-1]], UTC)
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def range_trace(
    url: str,
    query: str,
    start: datetime,
    end: datetime,
    step: float,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> Trace:
    """The query's values from start to end every `step` seconds, summed over series.

    A query returning several series (e.g. one per instance) is summed: the replay
    needs the group's total demand. Steps with no sample count as zero demand.
    """
    client = PrometheusConnect(url=url.rstrip("/"), headers=headers, timeout=timeout)
    result = client.custom_query_range(
        query=query,
        start_time=start,
        end_time=end,
        step=f"{step:g}s",
        params={"timeout": f"{timeout:g}s"},
        timeout=timeout,
    )
    totals: dict[float, float] = {}
    for series in result:
        for t, v in series.get("values", []):
            value = float(v)
            if math.isfinite(value) and value >= 0:
                totals[float(t)] = totals.get(float(t), 0.0) + value
    if not totals:
        raise ValueError(f"the query returned no samples between {start} and {end}")
    first, last = min(totals), max(totals)
    points = [(t, totals.get(t, 0.0)) for t in _grid(first, last, step)]
    return from_points(f"prometheus: {query}", points)


def _grid(first: float, last: float, step: float) -> list[float]:
    n = int(round((last - first) / step))
    return [first + i * step for i in range(n + 1)]
