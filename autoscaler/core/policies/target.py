"""Target tracking (ScaleIt, Kubernetes HPA): desired = ceil(current * value / target).

Inside the band [target * (1 - tolerance_down), target * (1 + tolerance_up)] the count
holds, edges included, up to float noise (0.72 / 0.8 is 0.8999999999999999: on the edge).
With `tolerance_mode: absolute` (ScaleIt) the band is [target - tolerance_down,
target + tolerance_up] in the signal's units, compared with the same noise margin
(0.8 - 0.1 is 0.7000000000000001, and 0.7 is on the edge).
"""

from __future__ import annotations

import math

from autoscaler.core.capacity import Assessment, above, below, ceil_count
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
    up, down = policy.tolerance_up, policy.tolerance_down
    if not (math.isfinite(policy.target) and math.isfinite(up) and math.isfinite(down)):
        reason = f"target {policy.target:g}, tolerances {up:g}/{down:g}: not all finite"
        return Proposal(name, None, reason, Code.NOT_COMPUTABLE)
    if up < 0 or down < 0:
        reason = f"tolerances {up:g}/{down:g}: a negative band has no meaning"
        return Proposal(name, None, reason, Code.NOT_COMPUTABLE)
    current = a.current
    if current == 0:
        # value/target scales the current count: with nothing running it says nothing.
        return Proposal(name, None, f"{name} {value:g} with 0 replicas: no ratio", Code.NO_DATA)

    ratio = value / policy.target  # may overflow to inf (1e308 / 0.5): no count then
    if policy.tolerance_mode == "absolute":
        band = f"{name} {value:g}, target {policy.target:g}"
        scale = max(abs(value), abs(policy.target))
        high, low = (
            above(value, policy.target + up, scale),
            below(value, policy.target - down, scale),
        )
        verdicts = (f"> {policy.target:g}+{up:g}", f"< {policy.target:g}-{down:g}")
    else:
        band = f"{name} {value:g} / target {policy.target:g} = {ratio:.3g}"
        high, low = above(ratio, 1 + up), below(ratio, 1 - down)
        verdicts = (f"> 1+{up:g}", f"< 1-{down:g}")
    if high:
        verdict, code = verdicts[0], Code.TARGET_ABOVE
    elif low:
        verdict, code = verdicts[1], Code.TARGET_BELOW
    else:
        reason = f"{band} within tolerance -> {current}"
        return Proposal(name, current, reason, Code.IN_BAND, signal=value)
    desired = ceil_count(current * ratio)
    if desired is None:
        reason = f"{band} {verdict}: {current} x {ratio:g} has no finite count"
        return Proposal(name, None, reason, Code.NOT_COMPUTABLE)
    return Proposal(name, desired, f"{band} {verdict} -> {desired}", code, signal=value)
