"""Small builders shared by the tests: for the decision core, one group "g" at a fixed time;
for the Prometheus reader, groups, listed replicas and its configuration."""

from __future__ import annotations

from typing import Any

from autoscaler.config import Config, PrometheusConfig
from autoscaler.core.capacity import assess
from autoscaler.core.model import Observation, Replica, ReplicaMetrics, ReplicaState, SignalHistory
from autoscaler.core.spec import (
    GroupConfig,
    HeadroomPolicyConfig,
    ProviderConfig,
    TargetPolicyConfig,
)

NOW = 10_000.0
OLD = NOW - 3600  # created long ago: past warm-up


def group(**kw: Any) -> GroupConfig:
    base: dict[str, Any] = dict(
        name="g",
        provider=ProviderConfig("local"),
        min=0,
        max=100,
        replica_capacity=4.0,
        policies=(),
        warmup_seconds=60.0,
    )
    base.update(kw)
    return GroupConfig(**base)


def rep(rid: str, state: ReplicaState = ReplicaState.ACTIVE, created_at: float = OLD) -> Replica:
    return Replica(id=rid, group="g", state=state, created_at=created_at)


def obs(
    replicas: list[Replica],
    metrics: dict[str, ReplicaMetrics] | None = None,
    signals: dict[str, float | None] | None = None,
    prometheus_ok: bool = True,
    at: float = NOW,
    histories: dict[str, SignalHistory] | None = None,
) -> Observation:
    return Observation(
        group="g",
        at=at,
        replicas=tuple(replicas),
        metrics=metrics or {},
        signals=signals or {},
        prometheus_ok=prometheus_ok,
        histories=histories or {},
    )


def history(*values: float, at: float = NOW, step: float = 60.0) -> SignalHistory:
    """A query's history ending at `at`, one point per `step`. One value alone is its own
    forecast exactly: the recent level, no trend (three points needed), no season."""
    times = [at - step * (len(values) - 1 - i) for i in range(len(values))]
    return SignalHistory(times, list(zip(times, values, strict=True)), step)


def _call(propose_fn, policy, observation, grp):
    """Call a policy's propose with the group's assessment, as the planner does."""
    return propose_fn(policy, observation, grp, assess(observation, grp))


# --- what a PrometheusReader reads: groups, their listed replicas, its configuration -------


def reader_group(name: str = "a", query: str | None = None, stale: float = 30.0) -> GroupConfig:
    """A local group with headroom 1 and, given `query`, a target policy on it."""
    policies: tuple[Any, ...] = (HeadroomPolicyConfig(name="headroom", min_available=1),)
    if query:
        policies += (TargetPolicyConfig(name="load", query=query, target=0.7),)
    return GroupConfig(
        name=name,
        provider=ProviderConfig(type="local"),
        min=0,
        max=5,
        replica_capacity=4,
        policies=policies,
        stale_after_seconds=stale,
    )


def listed(group: str, *ids: str) -> list[Replica]:
    """ACTIVE replicas of `group`, as a provider lists them."""
    return [Replica(id=i, group=group, state=ReplicaState.ACTIVE, created_at=0) for i in ids]


def reader_config(url: str, groups: tuple[GroupConfig, ...], timeout: float = 2.0) -> Config:
    return Config(prometheus=PrometheusConfig(url=url, timeout_seconds=timeout), groups=groups)
