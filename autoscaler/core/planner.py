"""The planner: combine policy proposals into one decision, with every step explained.

Pure: no I/O, no clock. Same (group, observation, state, now) in, same decision out.
Order of steps (docs/decisions.md has the operator's version):
combine -> clamp -> stabilize -> partial-data guard -> disabled direction -> cooldown ->
step limit -> hard clamp -> victims -> state update.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from autoscaler.core.model import (
    Decision,
    Observation,
    PlannerState,
    Proposal,
    Replica,
    ReplicaState,
)
from autoscaler.core.policies import propose
from autoscaler.core.policies.headroom import capacity_sample, healthy_replicas
from autoscaler.core.spec import GroupConfig, ScalingBehavior

__all__ = ["plan", "initial_state", "missing_capacity_ids", "step_limit"]


def initial_state(replicas: Sequence[Replica]) -> PlannerState:
    """State after a restart: the newest replica marks the last scale-up.

    So a restart right after a scale-up still honours the scale-up cooldown (and, since
    scale-down cooldown counts from either direction, the scale-down one too).
    """
    if not replicas:
        return PlannerState()
    return PlannerState(last_scale_up=max(r.created_at for r in replicas))


def missing_capacity_ids(obs: Observation, group: GroupConfig) -> list[str]:
    """Healthy replicas past warm-up without a usable capacity sample, when that matters.

    Only when the group's replicas export capacity at all (some replica has a sample,
    usable or not): a target-only group whose replicas expose no capacity gauge is not
    "partial" forever.
    """
    if not any(m.capacity is not None for m in obs.metrics.values()):
        return []
    return [
        r.id
        for r in healthy_replicas(obs)
        if not r.in_warmup(obs.at, group.warmup_seconds) and capacity_sample(obs, r.id) is None
    ]


def step_limit(behavior: ScalingBehavior, current: int) -> int | None:
    """Largest change allowed in one cycle in this direction; None = unlimited."""
    limits: list[int] = []
    if behavior.max_step_replicas is not None:
        limits.append(behavior.max_step_replicas)
    if behavior.max_step_percent is not None:
        limits.append(math.ceil(current * behavior.max_step_percent / 100))
    if not limits:
        return None
    return max(1, max(limits))


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _clamp_noted(
    desired: int, low: int, high: int, label: str, details: list[str], notes: list[str]
) -> tuple[int, str | None]:
    """Clamp to [low, high]; when that changes the count, explain it and return the code."""
    clamped = _clamp(desired, low, high)
    if clamped == desired:
        return desired, None
    code = "min" if desired < low else "max"
    note = f"{label} {desired} -> {clamped} ({code} {low if code == 'min' else high})"
    details.append(note)
    notes.append(note)
    return clamped, code


def _remaining(cooldown: float, since: float | None, now: float) -> float:
    """Seconds of cooldown left; a timestamp in the future counts as 'just now'."""
    if since is None or cooldown <= 0:
        return 0.0
    return max(0.0, min(cooldown, cooldown - (now - since)))


def _combine(
    group: GroupConfig, proposals: Sequence[Proposal], current: int, details: list[str]
) -> tuple[int, str, str, bool]:
    """Highest proposal with data wins. Returns (desired, code, summary, partial)."""
    with_data = [p for p in proposals if p.desired is not None]
    if not with_data:
        if group.fallback_replicas is not None:
            details.append(f"no policy has data: fallback_replicas {group.fallback_replicas}")
            return group.fallback_replicas, "fallback", "no data -> fallback", False
        details.append(f"no policy has data: hold at {current}")
        return current, "no_data", "no data -> hold", True
    winner = max(with_data, key=lambda p: p.desired)  # type: ignore[arg-type, return-value]
    partial = len(with_data) < len(proposals) or any(p.partial for p in with_data)
    if len(with_data) < len(proposals):
        silent = ", ".join(p.policy for p in proposals if p.desired is None)
        details.append(f"policies without data ({silent}): partial, no scale-down")
    if len(proposals) > 1:
        details.append(f"highest proposal wins: {winner.policy} -> {winner.desired}")
    return winner.desired, winner.code, f"{winner.reason} ({winner.code})", partial  # type: ignore[return-value]


def _stabilize(
    group: GroupConfig, state: PlannerState, recommendation: int, current: int, now: float
) -> tuple[int, tuple[tuple[float, int], ...], str | None]:
    """HPA stabilization: up to the lowest recent recommendation, down to the highest."""
    up_window = group.scale_up.stabilization_seconds
    down_window = group.scale_down.stabilization_seconds
    keep = max(up_window, down_window)
    # Entries from the future (clock moved back, replay restarted) are dropped.
    history = tuple((t, r) for t, r in state.recommendations if now - keep < t <= now)
    history += ((now, recommendation),)
    up_candidates = [r for t, r in history if now - t < up_window or t == now]
    down_candidates = [r for t, r in history if now - t < down_window or t == now]
    up_floor = min(up_candidates)
    down_ceiling = max(down_candidates)
    result = min(max(current, up_floor), down_ceiling)
    note = None
    if result != recommendation:
        if recommendation < current:
            note = (
                f"scale-down stabilizing: highest recommendation in last "
                f"{down_window:g}s is {down_ceiling} -> {result}"
            )
        else:
            note = (
                f"scale-up stabilizing: lowest recommendation in last "
                f"{up_window:g}s is {up_floor} -> {result}"
            )
    return result, history, note


def _scale_in_victims(
    obs: Observation, group: GroupConfig, healthy: Sequence[Replica], count: int
) -> list[str]:
    """Most idle first, then those without a usable sample, ties by scale_in_order, then id."""
    sign = -1.0 if group.scale_in_order == "newest" else 1.0

    def key(r: Replica) -> tuple[int, float, float, str]:
        cap = capacity_sample(obs, r.id)
        if cap is None:
            return (1, 0.0, sign * r.created_at, r.id)
        return (0, -min(cap, group.replica_capacity), sign * r.created_at, r.id)

    return [r.id for r in sorted(healthy, key=key)[:count]]


def plan(
    group: GroupConfig, obs: Observation, state: PlannerState, now: float
) -> tuple[Decision, PlannerState]:
    """Decide the group's replica count and which replicas to create and delete."""
    details: list[str] = []
    healthy = healthy_replicas(obs)
    current = len(healthy)
    low, high = group.min, group.max

    # 1. proposals; the highest with data wins
    proposals = tuple(propose(p, obs, group) for p in group.policies)
    for p in proposals:
        shown = "no data" if p.desired is None else str(p.desired)
        flag = ", partial" if p.partial else ""
        details.append(f"policy {p.policy} [{p.code}{flag}]: {p.reason} => {shown}")
    desired, code, summary, partial = _combine(group, proposals, current, details)
    notes: list[str] = []

    # The user's fallback applies as chosen; otherwise a replica without data blocks scale-in.
    missing = missing_capacity_ids(obs, group) if code != "fallback" else []
    if missing:
        partial = True
        details.append(
            f"{len(missing)} replicas past warm-up without usable capacity "
            f"({', '.join(sorted(missing))}): partial, no scale-down"
        )

    # 2. clamp to [min, max]
    desired, clamp_code = _clamp_noted(desired, low, high, "clamped", details, notes)
    code = clamp_code or code

    # 3. stabilization windows
    stabilized, history, note = _stabilize(group, state, desired, current, now)
    if note is not None:
        code = "stabilizing"
        details.append(note)
        notes.append(note)
    desired = stabilized

    # 4. partial data: scale up, never down
    if partial and desired < current:
        note = f"partial data: hold at {current} instead of {desired}"
        desired = current
        code = "partial"
        details.append(note)
        notes.append(note)

    # 5. a disabled direction holds (HPA selectPolicy: Disabled); min/max still apply
    # below, and terminating and failed replicas are still removed.
    for disabled, moving, word in (
        (not group.scale_up.enabled, desired > current, "up"),
        (not group.scale_down.enabled, desired < current, "down"),
    ):
        if disabled and moving:
            note = f"scale-{word} disabled: hold at {current} instead of {desired}"
            desired, code = current, f"scale_{word}_disabled"
            details.append(note)
            notes.append(note)

    # 6. cooldowns
    up_left = _remaining(group.scale_up.cooldown_seconds, state.last_scale_up, now)
    last_any = max(
        (t for t in (state.last_scale_up, state.last_scale_down) if t is not None), default=None
    )
    down_left = _remaining(group.scale_down.cooldown_seconds, last_any, now)
    if desired > current and up_left > 0:
        note = f"scale-up cooldown: {up_left:.0f}s left, hold at {current} instead of {desired}"
        desired, code = current, "cooldown"
        details.append(note)
        notes.append(note)
    elif desired < current and down_left > 0:
        note = f"scale-down cooldown: {down_left:.0f}s left, hold at {current} instead of {desired}"
        desired, code = current, "cooldown"
        details.append(note)
        notes.append(note)

    # 7. step limits
    if desired != current:
        behavior = group.scale_up if desired > current else group.scale_down
        limit = step_limit(behavior, current)
        if limit is not None and abs(desired - current) > limit:
            limited = current + limit if desired > current else current - limit
            note = f"step limit {limit}: {desired} -> {limited}"
            desired, code = limited, "step_limit"
            details.append(note)
            notes.append(note)

    # 8. min/max are hard limits that no damping step may keep us out of
    desired, clamp_code = _clamp_noted(desired, low, high, "hard limit:", details, notes)
    code = clamp_code or code

    # 9. victims
    terminating = obs.terminating_ids()
    by_age = sorted(obs.replicas, key=lambda r: (r.created_at, r.id))
    delete = [r.id for r in by_age if r.id in terminating]
    if delete:
        details.append(f"delete {len(delete)} asking termination: {', '.join(delete)}")
    failed = [r.id for r in by_age if r.state is ReplicaState.FAILED and r.id not in terminating]
    replace = failed[: max(0, group.max_replacements_per_cycle)]
    if replace:
        details.append(
            f"delete {len(replace)} of {len(failed)} failed (max "
            f"{group.max_replacements_per_cycle}/cycle): {', '.join(replace)}"
        )
    delete += replace
    if desired < current:
        victims = _scale_in_victims(obs, group, healthy, current - desired)
        details.append(f"scale-in victims: {', '.join(victims)}")
        delete += victims
    create = max(0, desired - current)

    direction = "up" if desired > current else "down" if desired < current else "hold"
    if direction == "hold" and code in (
        "in_band",
        "headroom_short",
        "headroom_surplus",
        "target_above",
        "target_below",
        "predictive",
    ):
        if terminating:
            code = "termination"
        elif replace:
            code = "failed"
    details.append(f"{direction}: {current} -> {desired} (create {create}, delete {len(delete)})")
    reason = "; ".join([summary, *notes, f"{current} -> {desired}"])

    # 10. state for the next cycle
    new_state = PlannerState(
        recommendations=history,
        last_scale_up=now if desired > current else state.last_scale_up,
        last_scale_down=now if desired < current else state.last_scale_down,
    )
    decision = Decision(
        group=group.name,
        at=now,
        current=current,
        desired=desired,
        create=create,
        delete=tuple(delete),
        direction=direction,
        code=code,
        reason=reason,
        details=tuple(details),
        proposals=proposals,
        cooldown_remaining={"up": up_left, "down": down_left},
        dry_run=group.dry_run,  # 11. the planner plans either way; the controller won't act
    )
    return decision, new_state
