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

from autoscaler.core.capacity import Assessment, ceil_count, total
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
    # Demand expected within the horizon: finite and >= 0, or inf when the history's
    # numbers overflow float arithmetic (the policies then say "not computable").
    value: float
    seasonal: float | None
    trend: float | None
    level: float


def _window(history: History, times: Sequence[float], start: float, end: float) -> list[float]:
    """Usable values with start < t <= end."""
    lo = bisect.bisect_right(times, start)
    hi = bisect.bisect_right(times, end)
    return [v for _, v in history[lo:hi] if math.isfinite(v) and v >= 0]


def _mean(values: Sequence[float]) -> float:
    """Mean of finite non-negative values that never overflows.

    When the sum itself would overflow, each term is divided first, so that no partial
    sum exceeds the largest value (slightly less exact, only ever needed near 1e308).
    """
    n = len(values)
    whole = total(values)
    return whole / n if math.isfinite(whole) else total(v / n for v in values)


def _finite_or_inf(x: float) -> float:
    return x if math.isfinite(x) else math.inf


def _trend(
    history: History, times: Sequence[float], now: float, cfg: PredictivePolicyConfig
) -> float | None:
    """The rising least-squares line at now + horizon; inf when it overflows.

    Fitted in scaled units (values over their largest, time over the window's span) so
    that no intermediate overflows, whatever the magnitudes: only the extrapolated
    result itself can be too large for a float.
    """
    if not cfg.trend_seconds > 0:
        return None
    lo = bisect.bisect_right(times, now - cfg.trend_seconds)
    hi = bisect.bisect_right(times, now)
    pts = [(t, v) for t, v in history[lo:hi] if math.isfinite(v) and v >= 0 and math.isfinite(t)]
    if len(pts) < 3:
        return None
    top = max(v for _, v in pts)
    if top <= 0:
        return None  # all zero: flat
    ages = [t - now for t, _ in pts]  # <= 0; finite unless the timestamps are absurd
    span = max(abs(x) for x in ages)
    if not (math.isfinite(span) and span > 0):
        return None
    xs = [x / span for x in ages]
    us = [v / top for _, v in pts]
    mx, mu = _mean_signed(xs), _mean(us)
    var = math.fsum((x - mx) ** 2 for x in xs)
    if var <= 0:
        return None
    slope = math.fsum((x - mx) * (u - mu) for x, u in zip(xs, us, strict=True)) / var
    if not slope > 0:
        return None  # falling or flat: the reactive policies handle it
    ahead = cfg.horizon_seconds / span - mx
    return _finite_or_inf(top * (mu + slope * ahead))


def _mean_signed(values: Sequence[float]) -> float:
    """Mean of values in [-1, 1] (no overflow possible)."""
    return math.fsum(values) / len(values)


def forecast(
    history: History, now: float, cfg: PredictivePolicyConfig, times: Sequence[float] | None = None
) -> Forecast | None:
    """The demand expected in (now, now + horizon], or None without recent data.

    `times` (the history's timestamps) may be passed to save rebuilding it on every call.
    Never raises; `value` is inf when the numbers overflow (see `Forecast`).
    """
    if times is None:
        times = [t for t, _ in history]
    recent = _window(history, times, now - cfg.level_seconds, now)
    if not recent:
        return None
    level = _mean(recent)
    growths: list[float] = []
    for k in range(1, cfg.seasons + 1):
        past_now = now - k * cfg.season_seconds
        before = _window(history, times, past_now - cfg.level_seconds, past_now)
        ahead = _window(history, times, past_now, past_now + cfg.horizon_seconds)
        if not before or not ahead:
            continue
        base = _mean(before)
        if base > 0:
            growth = min(max(ahead) / base, cfg.max_growth)  # inf / nan caught below
            if not math.isnan(growth):
                growths.append(growth)
    seasonal = None
    if growths:
        seasonal = level * statistics.median(growths)
        seasonal = 0.0 if level == 0 else _finite_or_inf(seasonal)  # 0 x inf is no growth
    trend = _trend(history, times, now, cfg)
    value = max(v for v in (level, seasonal, trend) if v is not None)
    return Forecast(value=_finite_or_inf(value), seasonal=seasonal, trend=trend, level=level)


def history_seconds(cfg: PredictivePolicyConfig) -> float:
    """How far back `forecast` looks from now: older points never change its result."""
    return cfg.lookback_seconds()


def _settings_problem(cfg: PredictivePolicyConfig) -> Proposal | None:
    """A proposal without a count when the settings cannot give one, else None."""
    dpr, target = cfg.demand_per_replica, cfg.target
    if not dpr > 0 or not target > 0:
        return Proposal(cfg.name, None, "demand_per_replica and target must be > 0", Code.NO_DATA)
    if not (math.isfinite(dpr) and math.isfinite(target)):
        reason = f"demand_per_replica {dpr:g} and target {target:g} must be finite"
        return Proposal(cfg.name, None, reason, Code.NOT_COMPUTABLE)
    return None


def desired_replicas(value: float, cfg: PredictivePolicyConfig) -> int | None:
    """ceil(value / (demand_per_replica x target)); None when that has no finite answer.

    Divided one factor at a time: the product of two tiny settings underflows to 0.
    Float noise must not add a replica (same rule as the other policies).
    """
    return ceil_count(value / cfg.demand_per_replica / cfg.target)


def _not_computable(cfg: PredictivePolicyConfig, value: float) -> Proposal:
    reason = (
        f"{cfg.name} forecast {value:.4g} / ({cfg.demand_per_replica:g} x {cfg.target:g}) "
        "has no finite count"
    )
    return Proposal(cfg.name, None, reason, Code.NOT_COMPUTABLE)


def propose(history: History, now: float, cfg: PredictivePolicyConfig) -> Proposal:
    """The predictive recommendation; desired None when there is no recent history."""
    problem = _settings_problem(cfg)
    if problem is not None:
        return problem
    f = forecast(history, now, cfg)
    if f is None:
        return Proposal(cfg.name, None, f"{cfg.name}: no recent history", Code.NO_DATA)
    desired = desired_replicas(f.value, cfg)
    if desired is None:
        return _not_computable(cfg, f.value)
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
    """The proposal of the live daemon (and the replay): forecast the history of the
    policy's query that `observe` read (`obs.histories[cfg.name]`), then size for it.

    No history, or one that ended (its newest point older than one step plus the group's
    `stale_after_seconds`), is no data. The count equals the target-policy form's
    (`as_target` fed `signal_value` of the healthy count), and it also works with no
    healthy replica, where a utilization has no meaning and the target form says nothing.
    """
    name = cfg.name
    if not obs.prometheus_ok:
        return Proposal(name, None, "prometheus query failed", Code.NO_DATA)
    h = obs.histories.get(name)
    if h is None or not h.times:
        return Proposal(name, None, f"{name}: no history", Code.NO_DATA)
    age = obs.at - h.times[-1]
    if age > h.step + group.stale_after_seconds:
        return Proposal(name, None, f"{name}: the history ended {age:.0f}s ago", Code.NO_DATA)
    f = forecast(h.points, obs.at, cfg, h.times)
    value = None if f is None else f.value
    if value == math.inf:
        reason = f"{name}: the forecast overflows (the history's numbers are too large)"
        return Proposal(name, None, reason, Code.NOT_COMPUTABLE)
    if value is None or not usable(value):
        return Proposal(name, None, f"{name}: no usable forecast ({value})", Code.NO_DATA)
    problem = _settings_problem(cfg)
    if problem is not None:
        return problem
    desired = desired_replicas(value, cfg)
    if desired is None:
        return _not_computable(cfg, value)
    reason = (
        f"{name} forecast {value:.4g} in {cfg.horizon_seconds:g}s / "
        f"({cfg.demand_per_replica:g} x {cfg.target:g}) -> {desired}"
    )
    return Proposal(name, desired, reason, Code.PREDICTIVE, signal=value)


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
