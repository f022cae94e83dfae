"""Policies: pure functions from an observation to a proposed replica count."""

from __future__ import annotations

from autoscaler.core.model import Observation, Proposal
from autoscaler.core.policies import headroom, predictive, target
from autoscaler.core.spec import GroupConfig, PolicyConfig

__all__ = ["propose", "headroom", "predictive", "target"]


def propose(policy: PolicyConfig, obs: Observation, group: GroupConfig) -> Proposal:
    """The recommendation of one policy, dispatched on its `type`."""
    if policy.type == "headroom":
        return headroom.propose(policy, obs, group)  # type: ignore[arg-type]
    if policy.type == "target":
        return target.propose(policy, obs, group)  # type: ignore[arg-type]
    if policy.type == "predictive":
        # obs.signals holds the forecast `observe` (or the replay) made from the history.
        return predictive.propose_observed(policy, obs, group)  # type: ignore[arg-type]
    raise ValueError(f"unknown policy type {policy.type!r} for policy {policy.name!r}")
