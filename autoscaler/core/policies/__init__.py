"""Policies: pure functions from one group's observation and assessment to a proposal.

One interface and one registry: a new policy is one module (its spec class in
`core/spec.py`, its `propose`) plus one line in `REGISTRY`. Nothing else dispatches on
policy types: configuration reads the spec classes from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autoscaler.core.capacity import Assessment
from autoscaler.core.model import Observation, Proposal
from autoscaler.core.policies import headroom, predictive, quantile, target
from autoscaler.core.spec import (
    GroupConfig,
    HeadroomPolicyConfig,
    PolicyConfig,
    PredictivePolicyConfig,
    QuantilePolicyConfig,
    TargetPolicyConfig,
)

__all__ = ["REGISTRY", "PolicyType", "propose"]

ProposeFn = Callable[[Any, Observation, GroupConfig, Assessment], Proposal]


@dataclass(frozen=True)
class PolicyType:
    spec: type  # the frozen dataclass a configuration produces for this policy
    propose: ProposeFn


REGISTRY: dict[str, PolicyType] = {
    "headroom": PolicyType(HeadroomPolicyConfig, headroom.propose),
    "target": PolicyType(TargetPolicyConfig, target.propose),
    # obs.signals holds the forecast `observe` (or the replay) made from the history.
    "predictive": PolicyType(PredictivePolicyConfig, predictive.propose_observed),
    # Sizes to the demand history plus an upper quantile of its recent forecast error.
    "quantile": PolicyType(QuantilePolicyConfig, quantile.propose),
}


def propose(policy: PolicyConfig, obs: Observation, group: GroupConfig, a: Assessment) -> Proposal:
    """The recommendation of one policy, dispatched on its `type`."""
    entry = REGISTRY.get(policy.type)
    if entry is None:
        raise ValueError(f"unknown policy type {policy.type!r} for policy {policy.name!r}")
    return entry.propose(policy, obs, group, a)
