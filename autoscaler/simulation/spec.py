"""What a simulation runs: the replica model and one policy configuration."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from autoscaler.core.spec import GroupConfig, PredictivePolicyConfig


@dataclass(frozen=True)
class ReplicaModel:
    """How simulated replicas behave.

    Each ACTIVE replica serves `per_replica` demand (e.g. requests/s); demand is spread
    evenly over the active replicas. A new replica is BUILDING for `boot_delay` seconds,
    then ACTIVE, or FAILED with probability `failure_rate` (drawn from a generator
    seeded with `seed`, so runs are repeatable).
    """

    per_replica: float
    boot_delay: float = 120.0
    failure_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.per_replica > 0:
            raise ValueError(f"per_replica must be > 0, got {self.per_replica}")
        if self.boot_delay < 0:
            raise ValueError(f"boot_delay must be >= 0, got {self.boot_delay}")
        if not 0 <= self.failure_rate < 1:
            raise ValueError(f"failure_rate must be in [0, 1), got {self.failure_rate}")


class Signal(StrEnum):
    """What the target policies' signal means in the simulation."""

    # demand / (active * per_replica): busy fraction of the replicas that serve (ScaleIt's cpu)
    UTILIZATION = "utilization"
    # demand / (healthy * per_replica): booting replicas count as 0 % busy, which is how
    # the Kubernetes HPA treats not-yet-ready pods when it scales up
    UTILIZATION_HEALTHY = "utilization_healthy"


@dataclass(frozen=True)
class PolicySpec:
    """One configuration to replay: a group (policies + damping) and how it is run."""

    name: str
    group: GroupConfig
    interval_seconds: float = 60.0  # evaluation period of the planner
    signal: Signal = Signal.UTILIZATION
    predictive: tuple[PredictivePolicyConfig, ...] = ()
    # The sensor this configuration is defined by, overriding the replay's window: None
    # keeps the replay's (60 s, like rate(x[1m])); 0 is one tick (an instantaneous sample).
    sensor_window_seconds: float | None = None
