"""Target tracking (ScaleIt, Kubernetes HPA): desired = ceil(current * value / target).

Inside the band [target * (1 - tolerance_down), target * (1 + tolerance_up)] the count holds.
"""

from __future__ import annotations

from autoscaler.core.capacity import Assessment, ceil_tolerant
from autoscaler.core.model import Code, Observation, Proposal, usable
from autoscaler.core.spec import GroupConfig, TargetPolicyConfig


def propose(
    policy: TargetPolicyConfig, obs: Observation, group: GroupConfig, a: Assessment
) -> Proposal:
    name = policy.name
    if not obs.prometheus_ok:
        return Proposal(name, None, "prometheus query failed", Code.NO_DATA)
    value = obs.signals.get(name)
    if value is None or not usable(value):
        return Proposal(name, None, f"{name}: no usable value ({value})", Code.NO_DATA)
    if not policy.target > 0:
        return Proposal(name, None, f"target {policy.target} is not positive", Code.NO_DATA)
    current = a.current
    if current == 0:
        # value/target scales the current count: with nothing running it says nothing.
        return Proposal(name, None, f"{name} {value:g} with 0 replicas: no ratio", Code.NO_DATA)

    ratio = value / policy.target
    band = f"{name} {value:g} / target {policy.target:g} = {ratio:.3g}"
    if ratio > 1 + policy.tolerance_up:
        desired = ceil_tolerant(current * ratio)
        return Proposal(
            name, desired, f"{band} > 1+{policy.tolerance_up:g} -> {desired}", Code.TARGET_ABOVE
        )
    if ratio < 1 - policy.tolerance_down:
        desired = ceil_tolerant(current * ratio)
        return Proposal(
            name, desired, f"{band} < 1-{policy.tolerance_down:g} -> {desired}", Code.TARGET_BELOW
        )
    return Proposal(name, current, f"{band} within tolerance -> {current}", Code.IN_BAND)
