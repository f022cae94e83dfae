"""Size to demand, provisioned to an upper quantile of the recent forecast error.

Pure: the history of the demand signal in, a proposal out. The forecast is a plain one,
"demand stays at its recent level" (the mean over `level_seconds`), and what makes it
safe is how wrong it has recently been. Every past point t made such a forecast; once
`horizon_seconds` (boot delay + one interval: when replicas started at t serve) have
passed its error is known: the demand at t + horizon minus the level at t. The errors of
the last `window_seconds`, weighted by age with a half-life (a decaying histogram, as
Google's Autopilot keeps), give the `quantile` the capacity must cover:

    ceil(max(level + headroom, level / max_utilization) / (demand_per_replica x target))
    headroom = max(quantile of the errors,
                   min(tail_factor x the largest error, tail_headroom x level))

The headroom is what the signal's own noise and ramps needed recently, not a fixed
1/target: a steady signal gets little, a ramp its slope times the horizon, a noisy one
its noise. The quantile alone misses 1 - q of the horizons by construction, even where
covering all of them is cheap; so where a margin over the largest recent error costs no
more than the HPA's own headroom (1/0.8: 25 % of the level), that margin is taken, and
a smooth, high-volume load is then as rarely short as under the HPA, for less.
`max_utilization` keeps a floor for the noise a history sampled once a minute cannot
show (a queue at 95 % busy waits long). With fewer than `min_errors` known errors (a new
group) it scales out to max(level, newest point) / `initial_target` and never in: a cold
start on a ramp would otherwise be sized to a mean minutes behind it.

The level lags a jump by half its window: a flash crowd at 8x is still sized at 2.4x
two minutes in. With `follow_jumps`, a newest point above the level one step before
plus the largest error known before the level's window began (a change no recent noise
explains) is the level itself, until the window holds only points from after the jump.
The jump's first point is a mean over a step that saw the change only in part (half of
it, when it fell mid-step), so there the rise is counted twice: newest + (newest - the
level before).
docs/simulation.md measures it, and says where it loses to the HPA.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import NamedTuple

from autoscaler.core.capacity import Assessment, ceil_count, total
from autoscaler.core.model import Code, Observation, Proposal, usable
from autoscaler.core.spec import GroupConfig, QuantilePolicyConfig

__all__ = [
    "QuantilePolicyConfig",
    "Headroom",
    "weighted_quantile",
    "level_and_headroom",
    "propose",
]

History = Sequence[tuple[float, float]]  # (unix seconds, demand), ascending time


def _usable_points(
    history: History, times: Sequence[float], start: float, now: float
) -> list[tuple[float, float]]:
    lo = bisect.bisect_right(times, start)
    hi = bisect.bisect_right(times, now)
    return [(t, v) for t, v in history[lo:hi] if math.isfinite(t) and usable(v) and v >= 0]


def _levels(pts: Sequence[tuple[float, float]], span: float) -> list[float]:
    """The forecast at every point t: the mean of the points in (t - span, t]."""
    out: list[float] = []
    prefix = [0.0]
    for _, v in pts:
        prefix.append(prefix[-1] + v)
    lo = 0
    for i, (t, _) in enumerate(pts):
        while lo < i and not pts[lo][0] > t - span:
            lo += 1
        n = i + 1 - lo
        mean = (prefix[i + 1] - prefix[lo]) / n
        if not math.isfinite(mean):  # the sum overflowed: divide each term first
            mean = total(w / n for _, w in pts[lo : i + 1])
        out.append(mean)
    return out


class _Fit(NamedTuple):
    points: list[tuple[float, float]]  # the usable history looked at
    levels: list[float]  # the forecast made at each point
    pairs: list[tuple[float, float]]  # (age weight, error) of each forecast whose horizon is over
    ahead: list[int]  # for each pair, the index of the point that is its outcome


def _fit(
    history: History, times: Sequence[float], now: float, cfg: QuantilePolicyConfig
) -> _Fit | None:
    """The levels and the errors of every past forecast whose horizon is over."""
    start = now - cfg.window_seconds - cfg.horizon_seconds - cfg.level_seconds
    pts = _usable_points(history, times, start, now)
    if not pts:
        return None
    levels = _levels(pts, cfg.level_seconds)
    first = now - cfg.window_seconds - cfg.horizon_seconds  # forecasts made from here on
    half = cfg.half_life_seconds
    out: list[tuple[float, float]] = []
    ahead_at: list[int] = []
    j = 0
    for i, (t, _) in enumerate(pts):
        if t + cfg.horizon_seconds > now:
            break  # its horizon is not over yet
        j = max(j, i + 1)
        while j < len(pts) and pts[j][0] <= t + cfg.horizon_seconds:
            j += 1
        if t <= first or j == i + 1:
            continue  # too old, or a gap: nothing known about that horizon
        ahead = pts[j - 1][1]  # the demand a horizon later: when replicas started at t serve
        weight = 0.5 ** ((now - t) / half) if half > 0 and math.isfinite(half) else 1.0
        out.append((weight, ahead - levels[i]))
        ahead_at.append(j - 1)
    return _Fit(pts, levels, out, ahead_at)


def weighted_quantile(pairs: Sequence[tuple[float, float]], q: float) -> float:
    """The smallest value whose share of the total weight at or below it is >= q."""
    ordered = sorted(pairs, key=lambda p: p[1])
    whole = math.fsum(w for w, _ in ordered)
    if not whole > 0:  # every weight underflowed: the largest error
        return ordered[-1][1]
    acc = 0.0
    for w, e in ordered:
        acc += w
        if acc >= q * whole * (1 - 1e-12):
            return e
    return ordered[-1][1]


class Headroom(NamedTuple):
    level: float | None  # None: no usable history
    extra: float | None  # None: too few known errors to size a headroom
    how: str = ""  # how the two were found, for the decision's reason


def _jumped(fit: _Fit, now: float, cfg: QuantilePolicyConfig) -> tuple[float, float] | None:
    """(the level before, the largest error known then) when the newest point jumped
    above both, else None."""
    pts, levels = fit.points, fit.levels
    # the first point of the level's window: errors known before it are what the
    # newest points are judged against, so a jump is followed for a whole window
    w0 = bisect.bisect_right([t for t, _ in pts], now - cfg.level_seconds)
    known = [e for (_, e), a in zip(fit.pairs, fit.ahead, strict=True) if a < w0]
    if len(pts) < 2 or not known:
        return None
    before, top = levels[-2], max(known)
    return (before, top) if pts[-1][1] > before + top else None


def level_and_headroom(
    history: History, times: Sequence[float], now: float, cfg: QuantilePolicyConfig
) -> Headroom:
    """The level and the headroom to add to it (None with too few known errors)."""
    fit = _fit(history, times, now, cfg)
    if fit is None:
        return Headroom(None, None)
    level, pairs = fit.levels[-1], fit.pairs
    if len(pairs) < max(1, cfg.min_errors):
        return Headroom(level, None)
    q = cfg.quantile
    extra = weighted_quantile(pairs, min(1.0, max(0.0, q)))
    how = f"+ q{q:g} error {extra:.4g}"
    largest = max(e for _, e in pairs)
    tail = min(cfg.tail_factor * largest, cfg.tail_headroom * level)
    if tail > extra:  # NaN settings compare False: the quantile stands
        extra, how = tail, f"+ {cfg.tail_factor:g} x largest error {largest:.4g} ({tail:.4g})"
    if cfg.follow_jumps:
        jump = _jumped(fit, now, cfg)
        newest = fit.points[-1][1]
        if jump is not None and newest > level:
            before, top = jump
            level, note = newest, ""
            if fit.points[-2][1] <= before + top:
                # The jump's first point: a mean over the last step, which saw a change
                # inside that step only in part (half, when it fell mid-step).
                level, note = newest + (newest - before), "; its first step, the rise twice"
            how = f"(jumped above {before:.4g} + largest error {top:.4g}{note}) {how}"
    return Headroom(level, extra, how)


def propose(
    cfg: QuantilePolicyConfig, obs: Observation, group: GroupConfig, a: Assessment
) -> Proposal:
    """The proposal of the daemon and the replay, from `obs.histories[cfg.name]`.

    No history, one that ended (newest point older than one step plus the group's
    `stale_after_seconds`) or a newest value that is not a demand is no data: the planner
    then holds, it never scales in on it.
    """
    name = cfg.name
    if not obs.prometheus_ok:
        return Proposal(name, None, "prometheus query failed", Code.NO_DATA)
    h = obs.histories.get(name)
    if h is None or not h.times:
        return Proposal(name, None, f"{name}: no history", Code.NO_DATA)
    age = obs.at - h.times[-1]
    if not age <= h.step + group.stale_after_seconds:
        return Proposal(name, None, f"{name}: the history ended {age:.0f}s ago", Code.NO_DATA)
    latest = h.points[-1][1]
    if not (usable(latest) and latest >= 0):
        return Proposal(name, None, f"{name}: no usable demand ({latest})", Code.NO_DATA)
    dpr, target = cfg.demand_per_replica, cfg.target
    settings = (dpr, target, cfg.initial_target, cfg.max_utilization)
    if not all(x > 0 and math.isfinite(x) for x in settings):
        reason = (
            f"demand_per_replica {dpr:g}, target {target:g}, initial_target "
            f"{cfg.initial_target:g} and max_utilization {cfg.max_utilization:g} must be "
            "finite and > 0"
        )
        return Proposal(name, None, reason, Code.NOT_COMPUTABLE)
    level, extra, how = level_and_headroom(h.points, h.times, obs.at, cfg)
    if level is None:
        return Proposal(name, None, f"{name}: no usable history", Code.NO_DATA)
    if extra is None:
        # Nothing known yet about how wrong the level is: scale out to it, or to the
        # newest point where a cold start on a ramp has left the mean behind, never in.
        value = max(level, latest)
        up = ceil_count(value / dpr / cfg.initial_target) if math.isfinite(value) else None
        if up is not None and up <= a.current:
            reason = f"{name} level {level:.4g}: too few known errors to scale in -> {a.current}"
            return Proposal(name, a.current, reason, Code.PREDICTIVE, signal=value)
        target = cfg.initial_target
        how = "(too few known errors yet" + (", the newest point)" if latest > level else ")")
    else:
        # the level's own noise below a minute is invisible here: never plan it busier
        value = max(0.0, level + extra, level / cfg.max_utilization)
    desired = ceil_count(value / dpr / target) if math.isfinite(value) else None
    if desired is None:
        reason = f"{name} demand {value:.4g} / ({dpr:g} x {target:g}) has no finite count"
        return Proposal(name, None, reason, Code.NOT_COMPUTABLE)
    reason = f"{name} level {level:.4g} {how} = {value:.4g} / ({dpr:g} x {target:g}) -> {desired}"
    return Proposal(name, desired, reason, Code.PREDICTIVE, signal=value)
