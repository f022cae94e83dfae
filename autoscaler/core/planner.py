"""The planner: combine policy proposals into one decision, with every step explained.

Pure: no I/O, no clock. Same (group, observation, state, now) in, same decision out.
`now` and every time in `PlannerState` are on a monotonic timeline (autoscaler/core/clock.py);
warm-up alone compares the observation's wall time with the provider's creation times.
Order of steps (docs/decisions.md has the operator's version):
removals -> combine -> clamp -> stabilize -> partial-data guard -> disabled direction ->
cooldown -> step limit -> hard clamp -> victims -> remember the recommendation.

Replicas removed because they asked for termination or failed are replaced: the group's
size before this cycle, `base` = healthy + those removed now, is what "hold" keeps, and
every damping step (stabilization, partial data, disabled direction, cooldown, step
limit) works on the change from `base`. So a replacement never waits for a cooldown or
a step, and with no data the group keeps its size, failed replicas included.

The last action per direction is not the planner's to record: the caller does, with
`record_action`, once the provider accepted it (a create that failed starts no cooldown).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from autoscaler.core import victims
from autoscaler.core.capacity import assess, ceil_tolerant
from autoscaler.core.clock import Reading
from autoscaler.core.model import (
    POLICY_VERDICTS,
    Code,
    Decision,
    Direction,
    Observation,
    PlannerState,
    Proposal,
    Replica,
)
from autoscaler.core.policies import propose
from autoscaler.core.spec import GroupConfig, HeadroomPolicyConfig, ScalingBehavior

__all__ = ["plan", "initial_state", "memory_horizon", "record_action", "step_limit"]


def initial_state(replicas: Sequence[Replica], at: Reading | None = None) -> PlannerState:
    """State without a usable memory: the newest replica marks the last scale-up.

    So a restart right after a scale-up still honours the scale-up cooldown (and, since
    scale-down cooldown counts from either direction, the scale-down one too).
    Creation times are wall-clock stamps: `at` moves the newest onto the monotonic
    timeline (one in the future counts as now); without it the timelines are one (replay).
    """
    if not replicas:
        return PlannerState()
    newest = max(r.created_at for r in replicas)
    if at is not None:
        newest = at.monotonic - max(0.0, at.wall - newest)
    return PlannerState(last_scale_up=newest)


def with_replica_evidence(
    saved: PlannerState, replicas: Sequence[Replica], at: Reading | None = None
) -> PlannerState:
    """A saved memory, with a replica created after its last scale-up counted as one.

    The memory is saved once a cycle's actions are over: a daemon killed between the
    provider accepting a create and that save restarts with a memory that misses the
    scale-up, yet the provider lists its replicas. They move `last_scale_up` forward (never
    back), as `initial_state` does without a memory, so the cooldown still holds.
    """
    seeded = initial_state(replicas, at).last_scale_up
    if seeded is None or (saved.last_scale_up is not None and saved.last_scale_up >= seeded):
        return saved
    return dataclasses.replace(saved, last_scale_up=seeded)


def record_action(state: PlannerState, direction: Direction | str, at: float) -> PlannerState:
    """The memory after the provider accepted a scale `direction` at `at`: its cooldown starts.

    A hold records nothing (removing terminating or failed replicas is not a scale event).
    """
    if direction == Direction.UP:
        return dataclasses.replace(state, last_scale_up=at)
    if direction == Direction.DOWN:
        return dataclasses.replace(state, last_scale_down=at)
    return state


def memory_horizon(group: GroupConfig) -> float:
    """Seconds the planner's memory can matter for: the longest window or cooldown.

    Older recommendations and actions change no decision, so persisted memory older than
    this is stale.
    """
    return max(
        group.scale_up.stabilization_seconds,
        group.scale_down.stabilization_seconds,
        group.scale_up.cooldown_seconds,
        group.scale_down.cooldown_seconds,
    )


def step_limit(behavior: ScalingBehavior, current: int, *, up: bool) -> int | None:
    """Largest change allowed in one cycle in this direction; None = unlimited.

    A percent limit rounds the cautious way: up ceil(current * percent / 100), as the
    HPA does; down floor(current * percent / 100), so 50 % of 3 removes 1. (The HPA's
    scale-down floors the count that remains instead, which removes 2 there; this project
    prefers the slower scale-in.) Several limits: the largest change wins (HPA
    selectPolicy Max). At least 1 once a limit is set.
    """
    limits: list[int] = []
    if behavior.max_step_replicas is not None:
        limits.append(behavior.max_step_replicas)
    if behavior.max_step_percent is not None:
        share = current * behavior.max_step_percent / 100
        # Float noise must not move a limit: 10 * 70 / 100 is 7.000000000000001.
        limits.append(ceil_tolerant(share) if up else -ceil_tolerant(-share))
    if not limits:
        return None
    return max(1, max(limits))


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _clamp_noted(
    desired: int, low: int, high: int, label: str, details: list[str], notes: list[str]
) -> tuple[int, Code | None]:
    """Clamp to [low, high]; when that changes the count, explain it and return the code."""
    clamped = _clamp(desired, low, high)
    if clamped == desired:
        return desired, None
    code = Code.MIN if desired < low else Code.MAX
    note = f"{label} {desired} -> {clamped} ({code} {low if code is Code.MIN else high})"
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
) -> tuple[int, Code, str, bool]:
    """Highest proposal with data wins. Returns (desired, code, summary, partial)."""
    with_data = [p for p in proposals if p.desired is not None]
    if not with_data:
        if group.fallback_replicas is not None:
            details.append(f"no policy has data: fallback_replicas {group.fallback_replicas}")
            return group.fallback_replicas, Code.FALLBACK, "no data -> fallback", False
        details.append(f"no policy has data: hold at {current}")
        return current, Code.NO_DATA, "no data -> hold", True
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


def _removals_noted(removed: victims.Removals, group: GroupConfig, details: list[str]) -> None:
    if removed.terminating:
        details.append(
            f"delete {len(removed.terminating)} asking termination (max "
            f"{group.max_terminations_per_cycle}/cycle): {', '.join(removed.terminating)}"
        )
    if removed.waiting_terminating:
        why = (
            f", {removed.held_for_min} to keep min {group.min} running"
            if removed.held_for_min
            else ""
        )
        details.append(f"{removed.waiting_terminating} asking termination wait{why}")
    if removed.failed or removed.waiting_failed:
        details.append(
            f"delete {len(removed.failed)} of {len(removed.failed) + removed.waiting_failed} "
            f"failed (max {group.max_replacements_per_cycle}/cycle): {', '.join(removed.failed)}"
        )


def plan(
    group: GroupConfig, obs: Observation, state: PlannerState, now: float
) -> tuple[Decision, PlannerState]:
    """Decide the group's replica count and which replicas to create and delete."""
    details: list[str] = []
    a = assess(obs, group)  # once per group and cycle: every step below reads it
    healthy = a.healthy
    current = a.current
    low, high = group.min, group.max

    # 0. terminating and failed replicas removed now (capped); `base` counts them, so
    # holding replaces them
    removed = victims.removals(obs, a, group)
    base = current + removed.count
    _removals_noted(removed, group, details)

    # 1. proposals; the highest with data wins
    proposals = tuple(propose(p, obs, group, a) for p in group.policies)
    for p in proposals:
        shown = "no data" if p.desired is None else str(p.desired)
        flag = ", partial" if p.partial else ""
        details.append(f"policy {p.policy} [{p.code}{flag}]: {p.reason} => {shown}")
    desired, code, summary, partial = _combine(group, proposals, base, details)
    no_data_at_all = all(p.desired is None for p in proposals)
    notes: list[str] = []
    # Policies count healthy replicas only. One that keeps every healthy replica keeps
    # the replacements too; replacing fewer is a scale-in, damped like any other.
    if removed.count and code is not Code.FALLBACK and current <= desired < base:
        details.append(f"replacing {removed.count}: {desired} -> {base}")
        desired = base

    # The user's fallback applies as chosen; otherwise a replica without data blocks scale-in.
    missing = a.unreported if code is not Code.FALLBACK else ()
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
    stabilized, history, note = _stabilize(group, state, desired, base, now)
    if note is not None:
        code = Code.STABILIZING
        details.append(note)
        notes.append(note)
    desired = stabilized

    # 4. partial data: scale up, never down (removed replicas are still replaced)
    if partial and desired < base:
        note = f"partial data: hold at {base} instead of {desired}"
        desired = base
        code = Code.PARTIAL
        details.append(note)
        notes.append(note)

    # 4b. ... and no scale-up either while the data source may still be catching up: a
    # restarted Prometheus scrapes the replicas again one by one, and the first cycles
    # after an outage see some of them only. Silence then is no evidence of 0 free;
    # after `stale_after_seconds` it is (a hung replica), as without an outage. Only a
    # mixed view is held: replicas that never report are no sign of a source catching up.
    since = None if state.last_no_data is None else now - state.last_no_data
    catching_up = since is not None and since < group.stale_after_seconds
    if catching_up and missing and a.reporting and desired > base:
        note = (
            f"partial data {since:.1f}s after the data came back: hold at {base} instead "
            f"of {desired} for up to stale_after_seconds ({group.stale_after_seconds:g})"
        )
        desired = base
        code = Code.PARTIAL
        details.append(note)
        notes.append(note)

    # 5. a disabled direction holds (HPA selectPolicy: Disabled); min/max still apply
    # below, and terminating and failed replicas are still replaced.
    for disabled, moving, word, disabled_code in (
        (not group.scale_up.enabled, desired > base, "up", Code.SCALE_UP_DISABLED),
        (not group.scale_down.enabled, desired < base, "down", Code.SCALE_DOWN_DISABLED),
    ):
        if disabled and moving:
            note = f"scale-{word} disabled: hold at {base} instead of {desired}"
            desired, code = base, disabled_code
            details.append(note)
            notes.append(note)

    # 6. cooldowns: a replacement is no scale event and never waits
    up_left = _remaining(group.scale_up.cooldown_seconds, state.last_scale_up, now)
    last_any = max(
        (t for t in (state.last_scale_up, state.last_scale_down) if t is not None), default=None
    )
    down_left = _remaining(group.scale_down.cooldown_seconds, last_any, now)
    if desired > base and up_left > 0:
        note = f"scale-up cooldown: {up_left:.0f}s left, hold at {base} instead of {desired}"
        desired, code = base, Code.COOLDOWN
        details.append(note)
        notes.append(note)
    elif desired < base and down_left > 0:
        note = f"scale-down cooldown: {down_left:.0f}s left, hold at {base} instead of {desired}"
        desired, code = base, Code.COOLDOWN
        details.append(note)
        notes.append(note)

    # 7. step limits on the change from `base`: replacements are not part of a step, and
    # a removed replica left unreplaced is part of a scale-in step
    if desired != base:
        up = desired > base
        limit = step_limit(group.scale_up if up else group.scale_down, base, up=up)
        if limit is not None and abs(desired - base) > limit:
            limited = base + limit if up else base - limit
            note = f"step limit {limit}: {desired} -> {limited}"
            desired, code = limited, Code.STEP_LIMIT
            details.append(note)
            notes.append(note)

    # 8. min/max are hard limits that no damping step may keep us out of
    desired, clamp_code = _clamp_noted(desired, low, high, "hard limit:", details, notes)
    code = clamp_code or code

    # 9. victims: replicas still booting go first (they serve nothing yet, and removing a
    # serving one instead could leave a group of booting replicas only), then healthy
    # replicas past warm-up; in a headroom group only idle ones (the policy's own rule),
    # except as many as it takes to get down to max
    delete = list(removed.ids)
    if desired < current:
        idle_only = code is not Code.FALLBACK and any(
            isinstance(p, HeadroomPolicyConfig) and p.removes_only_idle for p in group.policies
        )
        chosen = victims.scale_in(
            a,
            group,
            healthy,
            current - desired,
            forced=current - high,
            idle_only=idle_only,
            booting_first=not idle_only,
        )
        if len(chosen) < current - desired:
            kept = current - len(chosen)
            why = "idle, past warm-up" if idle_only else "booting or past warm-up"
            note = f"only {len(chosen)} {why} may go: {desired} -> {kept}"
            desired, code = kept, Code.NO_VICTIM
            details.append(note)
            notes.append(note)
        if chosen:
            details.append(f"scale-in victims: {', '.join(chosen)}")
        delete += chosen
    create = max(0, desired - current)

    # a scale event is a change from `base`; replacing removed replicas is none
    direction = (
        Direction.UP if desired > base else Direction.DOWN if desired < base else Direction.HOLD
    )
    if direction is Direction.HOLD and code in POLICY_VERDICTS:
        if removed.terminating:
            code = Code.TERMINATION
        elif removed.failed:
            code = Code.FAILED
    was = f"{current}+{removed.count} replaced" if removed.count else f"{current}"
    details.append(f"{direction}: {was} -> {desired} (create {create}, delete {len(delete)})")
    reason = "; ".join([summary, *notes, f"{was} -> {desired}"])

    # 10. remember the recommendation; the action is recorded once accepted (record_action)
    new_state = dataclasses.replace(
        state,
        recommendations=history,
        last_no_data=now if no_data_at_all else state.last_no_data,
    )
    decision = Decision(
        group=group.name,
        at=obs.at,
        current=current,
        desired=desired,
        create=create,
        delete=tuple(delete),
        direction=direction,
        code=code,
        reason=reason,
        details=tuple(details),
        proposals=proposals,
        assessment=a,
        cooldown_remaining={"up": up_left, "down": down_left},
        dry_run=group.dry_run,  # 11. the planner plans either way; the controller won't act
    )
    return decision, new_state
