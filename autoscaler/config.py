"""Configuration: the typed schema. (Loading and validation are added below it.)

Every value the daemon uses comes from here, frozen, so a running cycle never sees a
half-applied configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class PrometheusConfig:
    url: str = "http://127.0.0.1:9090"
    timeout_seconds: float = 5.0
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # secret: never logged
    bearer_token_file: str | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class HeadroomPolicyConfig:
    """Keep at least `min_available` free resource slots (SimpleScaleVM)."""

    name: str
    min_available: float
    type: str = "headroom"


@dataclass(frozen=True)
class TargetPolicyConfig:
    """desired = ceil(current * value / target) outside the tolerance band (ScaleIt, HPA).

    `query` is PromQL returning one series per group, identified by its `group` label.
    """

    name: str
    query: str
    target: float
    tolerance_up: float = 0.1
    tolerance_down: float = 0.1
    type: str = "target"


PolicyConfig = HeadroomPolicyConfig | TargetPolicyConfig


@dataclass(frozen=True)
class ScalingBehavior:
    """Damping for one direction.

    The per-cycle step limit is the larger of `max_step_replicas` and
    ceil(current * max_step_percent / 100) among those set (at least 1); none set means
    unlimited. Scale-up cooldown counts from the last scale-up; scale-down cooldown from
    the last scaling action of either direction.
    """

    cooldown_seconds: float = 0.0
    stabilization_seconds: float = 0.0
    max_step_replicas: int | None = None
    max_step_percent: float | None = None


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
    via_bridge: bool = False  # replicas speak JSON: /sd points Prometheus at the bridge


@dataclass(frozen=True)
class Config:
    prometheus: PrometheusConfig
    groups: tuple[GroupConfig, ...]
    interval_seconds: float = 10.0
    listen: str = "127.0.0.1:9100"  # /metrics /status /healthz /sd
    capacity_metric: str = "replica_capacity"
    termination_metric: str = "replica_termination"
    bridge_address: str | None = None  # "host:port" of `autoscaler bridge`, for via_bridge groups
    log_level: str = "info"
