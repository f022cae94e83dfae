"""The rules of the autoscalers our users come from, as configurations of our planner.

Each function returns a `PolicySpec` for the simulator. Every rule is nothing but a
GroupConfig of our planner, run by the same code as the daemon; SimpleScaleVM's "never
scale in" is `scale_down: {enabled: false}` (failed replicas are still replaced).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from autoscaler.core.spec import (
    GroupConfig,
    HeadroomPolicyConfig,
    PredictivePolicyConfig,
    ProviderConfig,
    QuantilePolicyConfig,
    ScalingBehavior,
    TargetPolicyConfig,
)
from autoscaler.simulation.spec import PolicySpec, ReplicaModel, Signal

SIM_PROVIDER = ProviderConfig(type="simulated")
UTILIZATION_QUERY = "sum(rate(requests_total[1m])) / (count(up) * per_replica)"  # documentation
DEMAND_QUERY = "sum(rate(requests_total[1m]))"
NO_DAMPING = ScalingBehavior()
# Their own evaluation periods: HPA's sync period, ScaleIt's SCALE_RESOLUTION_TIME default.
PERIODS = {"hpa": 15.0, "hpa-instant": 15.0, "scaleit": 5.0}


def period(name: str, trace_step: float, default: float) -> float:
    """The evaluation period a baseline is replayed at over a trace of `trace_step`.

    ScaleIt runs at its 5 s, but not finer than the trace: over a 1-minute trace a 5 s
    cycle sees the same demand 12 times and its replay costs ~800x more (27.5 days of
    NASA: about an hour instead of 5 s), so it then decides once per trace step.
    """
    if name == "scaleit":
        return max(PERIODS[name], trace_step)
    return PERIODS.get(name, default)  # no cooldown, no stabilization, no step limit


def _group(model: ReplicaModel, policies: tuple, max_replicas: int, **kw: object) -> GroupConfig:
    return GroupConfig(
        name="sim",
        provider=SIM_PROVIDER,
        min=1,
        max=max_replicas,
        replica_capacity=model.per_replica,
        policies=policies,
        # A booting replica counts as fully free (headroom) until it reports, as in
        # SimpleScaleVM, which counts pending servers.
        warmup_seconds=model.boot_delay,
        **kw,  # type: ignore[arg-type]
    )


def simple_scale_vm(
    model: ReplicaModel,
    min_available: float | None = None,
    *,
    interval: float = 60.0,
    max_replicas: int = 10_000,
) -> PolicySpec:
    """SimpleScaleVM: keep `min_available` free slots (default: one replica's worth).

    Short of it, add ceil(shortfall / capacity) at once; never remove a replica unless it
    asks for termination (the simulated replicas never do).
    """
    free = model.per_replica if min_available is None else min_available
    headroom = HeadroomPolicyConfig(name="headroom", min_available=free)
    never_in = ScalingBehavior(enabled=False)
    group = _group(model, (headroom,), max_replicas, scale_up=NO_DAMPING, scale_down=never_in)
    return PolicySpec("simplescalevm", group, interval_seconds=interval)


def scaleit(
    model: ReplicaModel,
    target: float = 0.8,
    *,
    tolerance: float = 0.1,
    interval: float = 5.0,
    max_replicas: int = 10_000,
) -> PolicySpec:
    """ScaleIt: every 5 s (SCALE_RESOLUTION_TIME), ceil(R * cpu / target) when
    |cpu - target| > tolerance (an absolute band: 0.8 +- 0.1 is [0.7, 0.9]), at least 1;
    no damping at all.

    cpu is the mean utilization of the replicas that serve (booting ones report none).
    """
    policy = TargetPolicyConfig(
        name="cpu",
        query=UTILIZATION_QUERY,
        target=target,
        tolerance_up=tolerance,
        tolerance_down=tolerance,
        tolerance_mode="absolute",
    )
    group = _group(model, (policy,), max_replicas, scale_up=NO_DAMPING, scale_down=NO_DAMPING)
    return PolicySpec("scaleit", group, interval_seconds=interval, signal=Signal.UTILIZATION)


def hpa(
    model: ReplicaModel,
    target: float = 0.8,
    *,
    interval: float = 15.0,
    max_replicas: int = 10_000,
) -> PolicySpec:
    """Kubernetes HPA with its default behaviour.

    Tolerance 0.1, 15 s sync period, scale-up by at most max(+100 %, +4 pods) per period
    with no stabilization, scale-down by at most 100 % per period after a 300 s
    stabilization window (the highest recommendation of the last 5 minutes). Pods not yet
    ready count as 0 % busy, as the HPA assumes on scale-up.
    """
    policy = TargetPolicyConfig(name="cpu", query=UTILIZATION_QUERY, target=target)
    group = _group(
        model,
        (policy,),
        max_replicas,
        scale_up=ScalingBehavior(max_step_replicas=4, max_step_percent=100),
        scale_down=ScalingBehavior(stabilization_seconds=300, max_step_percent=100),
    )
    return PolicySpec("hpa", group, interval_seconds=interval, signal=Signal.UTILIZATION_HEALTHY)


def hpa_instant(
    model: ReplicaModel,
    target: float = 0.8,
    *,
    interval: float = 15.0,
    max_replicas: int = 10_000,
) -> PolicySpec:
    """`hpa` reading an instantaneous sample (the last tick) instead of a one-minute mean.

    The HPA's metric source decides which one it sees (a resource metric is averaged
    over its scrape window, a custom gauge may be a raw sample); both are baselines.
    """
    base = hpa(model, target, interval=interval, max_replicas=max_replicas)
    return dataclasses.replace(base, name="hpa-instant", sensor_window_seconds=0.0)


def reactive(
    model: ReplicaModel,
    target: float = 0.8,
    *,
    interval: float = 60.0,
    max_replicas: int = 10_000,
) -> PolicySpec:
    """Our target tracking with the project's default damping (docs/decisions.md)."""
    policy = TargetPolicyConfig(name="utilization", query=UTILIZATION_QUERY, target=target)
    group = _group(model, (policy,), max_replicas)
    return PolicySpec(
        "reactive", group, interval_seconds=interval, signal=Signal.UTILIZATION_HEALTHY
    )


def predictive_config(
    model: ReplicaModel, target: float = 0.8, interval: float = 60.0
) -> PredictivePolicyConfig:
    return PredictivePolicyConfig(
        name="forecast",
        query=DEMAND_QUERY,
        demand_per_replica=model.per_replica,
        target=target,
        horizon_seconds=model.boot_delay + interval,
    )


def predictive(
    model: ReplicaModel,
    target: float = 0.8,
    *,
    interval: float = 60.0,
    max_replicas: int = 10_000,
) -> PolicySpec:
    """Our reactive target tracking plus predictive scale-out; the highest wins."""
    base = reactive(model, target, interval=interval, max_replicas=max_replicas)
    return PolicySpec(
        "predictive",
        base.group,
        interval_seconds=interval,
        signal=base.signal,
        predictive=(predictive_config(model, target, interval),),
    )


# The damping shipped with the quantile policy: scale out at once, scale in one cycle
# after the last action; the policy's error quantile is the stabilization.
QUANTILE_SCALE_UP = ScalingBehavior()
QUANTILE_SCALE_DOWN = ScalingBehavior(cooldown_seconds=0)


def quantile_config(
    model: ReplicaModel, interval: float = 60.0, **kw: object
) -> QuantilePolicyConfig:
    return QuantilePolicyConfig(
        name="demand",
        query=DEMAND_QUERY,
        demand_per_replica=model.per_replica,
        horizon_seconds=model.boot_delay + interval,
        **kw,  # type: ignore[arg-type]
    )


def quantile(
    model: ReplicaModel,
    target: float = 0.8,
    *,
    interval: float = 60.0,
    max_replicas: int = 10_000,
    scale_up: ScalingBehavior = QUANTILE_SCALE_UP,
    scale_down: ScalingBehavior = QUANTILE_SCALE_DOWN,
    **kw: object,
) -> PolicySpec:
    """Ours: size to demand plus the recent forecast error's quantile (`type: quantile`).

    Benchmarked against both HPA variants, not a default (docs/simulation.md says why).

    `target` (the other rules' utilization) does not apply: the quantile is the headroom.
    """
    policy = quantile_config(model, interval, **kw)
    group = _group(model, (policy,), max_replicas, scale_up=scale_up, scale_down=scale_down)
    return PolicySpec("quantile", group, interval_seconds=interval)


BUILTIN: dict[str, Callable[..., PolicySpec]] = {
    "simplescalevm": simple_scale_vm,
    "scaleit": scaleit,
    "hpa": hpa,
    "hpa-instant": hpa_instant,
    "reactive": reactive,
    "predictive": predictive,
    "quantile": quantile,
}
