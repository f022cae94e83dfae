"""Predictive scale-out: provision now for the demand expected when new replicas are ready.

Pure: history in, proposal out. The forecast of the demand signal at `now + horizon` is
the larger of two estimates:

- seasonal: the recent level times the median growth seen over the same stretch of the
  day in the previous `seasons` periods ("yesterday at this hour demand rose 40 % in the
  next 3 minutes"). The median ignores a one-off spike (a flash crowd) in one past day.
- trend: the least-squares line through the last `trend_seconds`, extended to the
  horizon, when it rises. It catches ramps no season foretold.

The proposal is ceil(forecast / (demand_per_replica * target)). It is meant to be
combined with the reactive policies (highest wins): it only ever adds capacity ahead of
time, and the reactive policies keep correcting to what is actually observed.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from autoscaler.config import TargetPolicyConfig
from autoscaler.model import Proposal

History = Sequence[tuple[float, float]]  # (unix seconds, demand), ascending time


@dataclass(frozen=True)
class PredictivePolicyConfig:
    """Scale out ahead of the demand forecast `horizon_seconds` ahead.

    `query` returns the group's demand (e.g. requests/s), not a utilization: the live
    daemon reads its history with a range query (see docs/simulation.md).
    """

    name: str
    query: str
    demand_per_replica: float  # demand one replica serves at 100 % utilization
    target: float = 0.8  # utilization to provision for, as in the target policy
    horizon_seconds: float = 180.0  # boot delay + one evaluation interval
    season_seconds: float = 86400.0
    seasons: int = 7  # past periods compared; the median of their growth is used
    level_seconds: float = 900.0  # window of the "recent level"
    trend_seconds: float = 600.0  # window of the rising-trend fit (0 disables it)
    max_growth: float = 4.0  # a past season can at most multiply the level by this
    type: str = "predictive"


@dataclass(frozen=True)
class Forecast:
    value: float  # demand expected within the horizon
    seasonal: float | None
    trend: float | None
    level: float


def _window(history: History, times: Sequence[float], start: float, end: float) -> list[float]:
    """Usable values with start < t <= end."""
    lo = bisect.bisect_right(times, start)
    hi = bisect.bisect_right(times, end)
    return [v for _, v in history[lo:hi] if math.isfinite(v) and v >= 0]


def _trend(
    history: History, times: Sequence[float], now: float, cfg: PredictivePolicyConfig
) -> float | None:
    if cfg.trend_seconds <= 0:
        return None
    lo = bisect.bisect_right(times, now - cfg.trend_seconds)
    hi = bisect.bisect_right(times, now)
    pts = [(t, v) for t, v in history[lo:hi] if math.isfinite(v) and v >= 0]
    if len(pts) < 3:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var <= 0:
        return None
    slope = sum((t - mt) * (v - mv) for t, v in pts) / var
    if slope <= 0:
        return None  # falling or flat: the reactive policies handle it
    return mv + slope * (now + cfg.horizon_seconds - mt)


def forecast(
    history: History, now: float, cfg: PredictivePolicyConfig, times: Sequence[float] | None = None
) -> Forecast | None:
    """The demand expected in (now, now + horizon], or None without recent data.

    `times` (the history's timestamps) may be passed to save rebuilding it on every call.
    """
    if times is None:
        times = [t for t, _ in history]
    recent = _window(history, times, now - cfg.level_seconds, now)
    if not recent:
        return None
    level = sum(recent) / len(recent)
    growths: list[float] = []
    for k in range(1, cfg.seasons + 1):
        past_now = now - k * cfg.season_seconds
        before = _window(history, times, past_now - cfg.level_seconds, past_now)
        ahead = _window(history, times, past_now, past_now + cfg.horizon_seconds)
        if not before or not ahead:
            continue
        base = sum(before) / len(before)
        if base > 0:
            growths.append(min(max(ahead) / base, cfg.max_growth))
    seasonal = level * statistics.median(growths) if growths else None
    trend = _trend(history, times, now, cfg)
    value = max(v for v in (level, seasonal, trend) if v is not None)
    return Forecast(value=value, seasonal=seasonal, trend=trend, level=level)


def desired_replicas(value: float, cfg: PredictivePolicyConfig) -> int:
    # Float noise must not add a replica (same rule as the other policies).
    return max(0, math.ceil(value / (cfg.demand_per_replica * cfg.target) - 1e-9))


def propose(history: History, now: float, cfg: PredictivePolicyConfig) -> Proposal:
    """The predictive recommendation; desired None when there is no recent history."""
    if not cfg.demand_per_replica > 0 or not cfg.target > 0:
        return Proposal(cfg.name, None, "demand_per_replica and target must be > 0", "no_data")
    f = forecast(history, now, cfg)
    if f is None:
        return Proposal(cfg.name, None, f"{cfg.name}: no recent history", "no_data")
    desired = desired_replicas(f.value, cfg)
    parts = [f"level {f.level:.4g}"]
    if f.seasonal is not None:
        parts.append(f"seasonal {f.seasonal:.4g}")
    if f.trend is not None:
        parts.append(f"trend {f.trend:.4g}")
    reason = (
        f"forecast {f.value:.4g} in {cfg.horizon_seconds:g}s ({', '.join(parts)}) / "
        f"({cfg.demand_per_replica:g} x {cfg.target:g}) -> {desired}"
    )
    return Proposal(cfg.name, desired, reason, "predictive")


def as_target(cfg: PredictivePolicyConfig) -> TargetPolicyConfig:
    """The same policy expressed as a target policy, for today's planner.

    With the signal `signal_value(...)` and zero tolerance, the target policy's
    ceil(current * value / target) equals `desired_replicas(forecast)` exactly.
    """
    return TargetPolicyConfig(
        name=cfg.name,
        query=cfg.query,
        target=cfg.target,
        tolerance_up=0.0,
        tolerance_down=0.0,
    )


def signal_value(forecast_value: float, current: int, cfg: PredictivePolicyConfig) -> float | None:
    """The utilization the forecast demand would put on the `current` healthy replicas."""
    if current <= 0 or not cfg.demand_per_replica > 0:
        return None
    return forecast_value / (current * cfg.demand_per_replica)
