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

from autoscaler.core.capacity import Assessment, ceil_tolerant
from autoscaler.core.model import Code, Observation, Proposal, usable
from autoscaler.core.spec import GroupConfig, PredictivePolicyConfig, TargetPolicyConfig

__all__ = [
    "PredictivePolicyConfig",
    "Forecast",
    "forecast",
    "history_seconds",
    "desired_replicas",
    "propose",
    "propose_observed",
    "as_target",
    "signal_value",
]

History = Sequence[tuple[float, float]]  # (unix seconds, demand), ascending time


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


def history_seconds(cfg: PredictivePolicyConfig) -> float:
    """How far back `forecast` looks from now: older points never change its result."""
    seasonal = cfg.seasons * cfg.season_seconds + cfg.level_seconds if cfg.seasons else 0.0
    return max(cfg.level_seconds, cfg.trend_seconds, seasonal)


def desired_replicas(value: float, cfg: PredictivePolicyConfig) -> int:
    # Float noise must not add a replica (same rule as the other policies).
    return max(0, ceil_tolerant(value / (cfg.demand_per_replica * cfg.target)))


def propose(history: History, now: float, cfg: PredictivePolicyConfig) -> Proposal:
    """The predictive recommendation; desired None when there is no recent history."""
    if not cfg.demand_per_replica > 0 or not cfg.target > 0:
        return Proposal(cfg.name, None, "demand_per_replica and target must be > 0", Code.NO_DATA)
    f = forecast(history, now, cfg)
    if f is None:
        return Proposal(cfg.name, None, f"{cfg.name}: no recent history", Code.NO_DATA)
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
    return Proposal(cfg.name, desired, reason, Code.PREDICTIVE)


def propose_observed(
    cfg: PredictivePolicyConfig, obs: Observation, group: GroupConfig, a: Assessment
) -> Proposal:
    """The proposal of the live daemon (and the replay), from a forecast already made.

    `obs.signals[cfg.name]` is the forecast demand (in the query's units) that `observe`
    computed from the query's history; None when the history was missing or failed.
    The count equals the target-policy form's (`as_target` fed `signal_value` of the
    healthy count), and it also works with no healthy replica, where a utilization has
    no meaning and the target form says nothing.
    """
    name = cfg.name
    if not obs.prometheus_ok:
        return Proposal(name, None, "prometheus query failed", Code.NO_DATA)
    value = obs.signals.get(name)
    if value is None or not usable(value):
        return Proposal(name, None, f"{name}: no usable forecast ({value})", Code.NO_DATA)
    if not cfg.demand_per_replica > 0 or not cfg.target > 0:
        return Proposal(name, None, "demand_per_replica and target must be > 0", Code.NO_DATA)
    desired = desired_replicas(value, cfg)
    reason = (
        f"{name} forecast {value:.4g} in {cfg.horizon_seconds:g}s / "
        f"({cfg.demand_per_replica:g} x {cfg.target:g}) -> {desired}"
    )
    return Proposal(name, desired, reason, Code.PREDICTIVE)


def as_target(cfg: PredictivePolicyConfig) -> TargetPolicyConfig:
    """The same policy expressed as a target policy: the reference `propose_observed` is
    tested against.

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
