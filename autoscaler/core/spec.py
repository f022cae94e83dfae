"""What a configuration produces for the decision core: groups, policies, damping.

Plain frozen data, no parsing: `autoscaler.config` builds these from YAML and the
environment; the core reads them and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar


class SignalKind(StrEnum):
    """What a policy reads, so `observe` (and the replay) know what to fetch for it."""

    CAPACITY = "capacity"  # only the replicas' own capacity gauge
    INSTANT = "instant"  # the current value of its `query`, one series per group
    HISTORY = "history"  # the recent past of its `query` (range query, cached)


HEADROOM_SCALE_IN = ("idle", "spread")


@dataclass(frozen=True)
class HeadroomPolicyConfig:
    """Keep at least `min_available` free resource slots (SimpleScaleVM).

    `scale_in` says which replicas may go when there is surplus: `idle` (SimpleScaleVM's
    rule) removes only fully idle replicas, so no replica with work is ever stopped;
    `spread` removes replicas while the free capacity minus one replica's worth stays at
    least `min_available`, whatever their load: for replicas behind a load balancer that
    spreads work evenly, where no replica is ever fully idle and `idle` never scales in.
    """

    name: str
    min_available: float
    type: str = "headroom"
    scale_in: str = "idle"
    # Reads the replicas' capacity gauge: its group's silent replicas are missing data.
    reads_capacity: ClassVar[bool] = True
    signal: ClassVar[SignalKind] = SignalKind.CAPACITY
    query: ClassVar[str] = ""  # none: the replicas' capacity gauge is read for every group

    @property
    def removes_only_idle(self) -> bool:
        """Scale-in victims must be fully idle replicas (`scale_in: idle`)."""
        return self.scale_in == "idle"

    def setpoints(self) -> Mapping[str, float]:
        """What the exported gauges show of this policy's settings."""
        return {"min_available": self.min_available}

    def lookback_seconds(self) -> float:
        """How far back the policy reads its query's history (HISTORY policies only)."""
        return 0.0


@dataclass(frozen=True)
class TargetPolicyConfig:
    """desired = ceil(current * value / target) outside the tolerance band (ScaleIt, HPA).

    `query` is PromQL returning one series per group, identified by its `group` label.
    `tolerance_mode` says what the tolerances measure: `relative` (HPA) holds inside
    [target * (1 - down), target * (1 + up)]; `absolute` (ScaleIt) holds inside
    [target - down, target + up], in the signal's own units (0.8 +- 0.1 is [0.7, 0.9]).
    """

    name: str
    query: str
    target: float
    tolerance_up: float = 0.1
    tolerance_down: float = 0.1
    tolerance_mode: str = "relative"  # relative | absolute
    type: str = "target"
    reads_capacity: ClassVar[bool] = False
    signal: ClassVar[SignalKind] = SignalKind.INSTANT

    def setpoints(self) -> Mapping[str, float]:
        lower, upper = band_edges(self)
        return {"target": self.target, "lower": lower, "upper": upper}

    def lookback_seconds(self) -> float:
        return 0.0


@dataclass(frozen=True)
class PredictivePolicyConfig:
    """Scale out ahead of the demand forecast `horizon_seconds` ahead.

    `query` returns the group's demand (e.g. requests/s), not a utilization, one series
    per group identified by its `group` label. The daemon reads its history with one
    range query per cycle (docs/simulation.md); the policy, forecast included, is
    autoscaler/core/policies/predictive.py.
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
    reads_capacity: ClassVar[bool] = False
    signal: ClassVar[SignalKind] = SignalKind.HISTORY

    def setpoints(self) -> Mapping[str, float]:
        return {"target": self.target}

    def lookback_seconds(self) -> float:
        """How far back the forecast looks from now: older points never change it."""
        seasonal = self.seasons * self.season_seconds + self.level_seconds if self.seasons else 0.0
        return max(self.level_seconds, self.trend_seconds, seasonal)


@dataclass(frozen=True)
class QuantilePolicyConfig:
    """Size to demand: its recent level plus an upper quantile of its recent forecast error.

    `query` returns the group's demand (e.g. requests/s), one series per group identified
    by its `group` label, read as a history like the predictive policy's. Each past point
    is a forecast ("demand stays at its mean over `level_seconds`") whose error is known
    once `horizon_seconds` have passed: the demand then minus the forecast. The proposal
    is ceil(max(level + headroom, level / max_utilization) / (demand_per_replica x
    target)); the headroom is the larger of the `quantile` of those errors (weighted by
    age with a half-life of `half_life_seconds`, over `window_seconds`) and `tail_factor`
    x the largest of them capped at `tail_headroom` x level. With `follow_jumps`, a newest
    point above the level one step before plus the largest error known before the
    level's window began is the level itself (at the jump's first point, which saw it in
    part, newest + its rise). Until `min_errors` errors are known it scales out to
    max(level, newest point) / `initial_target` and never in.
    The policy is autoscaler/core/policies/quantile.py; docs/simulation.md measures it.
    """

    name: str
    query: str
    demand_per_replica: float  # demand one replica serves at 100 % utilization
    quantile: float = 0.95  # share of the recent horizons the capacity would have covered
    target: float = 1.0  # utilization at that quantile: the quantile is the headroom
    horizon_seconds: float = 180.0  # boot delay + one evaluation interval
    level_seconds: float = 300.0  # the forecast: the mean over this long
    window_seconds: float = 14400.0  # errors looked at
    half_life_seconds: float = 3600.0  # an error this old weighs half
    min_errors: int = 3  # fewer: out to max(level, newest) / initial_target, never in
    initial_target: float = 0.8  # the utilization sized for until errors are known
    max_utilization: float = 0.9  # never plan the level above this busy share
    tail_factor: float = 1.5  # cover this multiple of the largest recent error...
    tail_headroom: float = 0.25  # ...where that costs at most this share of the level
    follow_jumps: bool = True  # a jump above every recent error: the newest point is the level
    type: str = "quantile"
    reads_capacity: ClassVar[bool] = False
    signal: ClassVar[SignalKind] = SignalKind.HISTORY

    def setpoints(self) -> Mapping[str, float]:
        return {"target": self.target, "quantile": self.quantile}

    def lookback_seconds(self) -> float:
        """How far back the policy reads: older points never change its proposal."""
        return self.window_seconds + self.horizon_seconds + self.level_seconds


TOLERANCE_MODES = ("relative", "absolute")


def band_edges(policy: TargetPolicyConfig) -> tuple[float, float]:
    """(lower, upper) signal values of a target policy's tolerance band."""
    t, up, down = policy.target, policy.tolerance_up, policy.tolerance_down
    if policy.tolerance_mode == "absolute":
        return t - down, t + up
    return t * (1 - down), t * (1 + up)


PolicyConfig = (
    HeadroomPolicyConfig | TargetPolicyConfig | PredictivePolicyConfig | QuantilePolicyConfig
)


@dataclass(frozen=True)
class ScalingBehavior:
    """Damping for one direction.

    The per-cycle step limit is the larger of `max_step_replicas` and the percent share of
    the group (ceil going up, floor going down) among those set (at least 1); none set
    means unlimited. Replacing terminating or failed replicas is not part of a step.
    Scale-up cooldown counts from the last scale-up; scale-down cooldown from the last
    scaling action of either direction. `enabled: false` holds the count in this direction
    (min/max still apply; terminating and failed replicas are still replaced).
    """

    cooldown_seconds: float = 0.0
    stabilization_seconds: float = 0.0
    max_step_replicas: int | None = None
    max_step_percent: float | None = None
    enabled: bool = True  # False: never scale in this direction (HPA selectPolicy: Disabled)


@dataclass(frozen=True)
class ProviderConfig:
    type: str  # "local", "openstack", ...
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupConfig:
    name: str
    provider: ProviderConfig
    min: int
    max: int
    replica_capacity: float  # resource slots one replica offers when idle
    policies: tuple[PolicyConfig, ...]
    scale_up: ScalingBehavior = ScalingBehavior(max_step_replicas=4, max_step_percent=100)
    scale_down: ScalingBehavior = ScalingBehavior(
        cooldown_seconds=60, stabilization_seconds=300, max_step_replicas=1
    )
    warmup_seconds: float = 60.0  # new replicas count as fully free for this long
    dry_run: bool = False  # decide and export, never act
    stale_after_seconds: float = 30.0  # older samples are missing data, not values
    fallback_replicas: int | None = None  # desired count when no policy has data
    scale_in_order: str = "oldest"  # tie-break among equally idle victims: oldest | newest
    max_replacements_per_cycle: int = 1  # failed replicas deleted (and so replaced) per cycle
    # Replicas asking for termination deleted (and so replaced) per cycle: one bad exporter
    # must not empty a group.
    max_terminations_per_cycle: int = 1
    termination_below_min: bool = False  # True: a termination may leave fewer than min running
    via_bridge: bool = False  # replicas speak JSON: /sd points Prometheus at the bridge
    # How the bridge reads these replicas' JSON API (protocol, port, path, capacity_key,
    # termination_key); unset keys fall back to REPLICA_API_* and SimpleScaleVM's defaults.
    replica_api: Mapping[str, Any] = field(default_factory=dict)
    # Do the replicas export the capacity gauge? True (default): a replica past warm-up
    # without a valid sample is missing data, even when none reports (an outage of every
    # exporter must not read as "complete"). False: they export none (target-only groups
    # on application metrics), so silence does not block scale-in.
    expect_capacity: bool = True
