"""Who goes: replicas asking for termination, then failed ones, then scale-in victims.

Pure: the assessment and the group's settings in, replica ids out. The planner decides
how many.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autoscaler.core.capacity import Assessment
from autoscaler.core.model import Observation, Replica, ReplicaState
from autoscaler.core.spec import GroupConfig

__all__ = ["Removals", "by_age", "terminating", "failed", "removals", "scale_in"]

_RUNNING = (ReplicaState.BUILDING, ReplicaState.ACTIVE)


def by_age(obs: Observation) -> list[Replica]:
    return sorted(obs.replicas, key=lambda r: (r.created_at, r.id))


def terminating(obs: Observation, a: Assessment) -> list[str]:
    """Replicas asking to be removed, oldest first."""
    return [r.id for r in by_age(obs) if r.id in a.terminating]


def failed(obs: Observation, a: Assessment) -> list[str]:
    """Failed replicas (to be replaced), oldest first."""
    return [
        r.id for r in by_age(obs) if r.state is ReplicaState.FAILED and r.id not in a.terminating
    ]


@dataclass(frozen=True)
class Removals:
    """Replicas deleted this cycle because they asked to go or failed; each is replaced.

    The `waiting_*` counts are those left for a later cycle by the per-cycle caps (and,
    for terminations, by `min`), so the planner can say why.
    """

    terminating: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    waiting_terminating: int = 0
    waiting_failed: int = 0
    held_for_min: int = 0  # of waiting_terminating: kept only so `min` replicas keep running

    @property
    def ids(self) -> tuple[str, ...]:
        return self.terminating + self.failed

    @property
    def count(self) -> int:
        return len(self.terminating) + len(self.failed)


def removals(obs: Observation, a: Assessment, group: GroupConfig) -> Removals:
    """Terminating and failed replicas to delete now, oldest first, within the caps.

    Terminations are capped per cycle (`max_terminations_per_cycle`) like failed replicas
    (`max_replacements_per_cycle`), so one bad exporter saying `replica_termination 1` on
    every series cannot empty a group. Unless `termination_below_min` is set, a
    termination never leaves fewer than `min` running replicas (building or active,
    terminating ones included): the replica stays while its replacement comes up (the
    planner counts it as missing from `min`), and goes in a later cycle.
    """
    asking = terminating(obs, a)
    dead = failed(obs, a)
    allowed = min(len(asking), max(0, group.max_terminations_per_cycle))
    held = 0
    if not group.termination_below_min:
        running = sum(1 for r in obs.replicas if r.state in _RUNNING)
        held = max(0, allowed - max(0, running - group.min))
        allowed -= held
    replace = min(len(dead), max(0, group.max_replacements_per_cycle))
    return Removals(
        terminating=tuple(asking[:allowed]),
        failed=tuple(dead[:replace]),
        waiting_terminating=len(asking) - allowed,
        waiting_failed=len(dead) - replace,
        held_for_min=held,
    )


def scale_in(
    a: Assessment,
    group: GroupConfig,
    healthy: Sequence[Replica],
    count: int,
    *,
    forced: int = 0,
    idle_only: bool = False,
    booting_first: bool = False,
) -> list[str]:
    """Up to `count` healthy replicas to remove; fewer when not enough may go.

    May go: replicas past warm-up (a warming replica has not shown its load yet, and its
    sample, if any, says nothing), and with `idle_only` (a headroom group) only fully
    idle ones. Order: most idle first (usable sample capped at replica_capacity, so every
    idle replica ties), then those without a usable sample, ties by `scale_in_order`, then
    id. Only when fewer than `forced` may go (a group above `max` must get there) do the
    others follow, past warm-up first.

    With `booting_first` (every scale-in but a headroom group's idle-only one), replicas
    the provider still lists as BUILDING go before all others, newest first (the most boot still
    ahead), warm-up or not: they serve nothing and have no load to show, and each costs
    as much as an active one while it boots.
    """
    slot = group.replica_capacity
    sign = -1.0 if group.scale_in_order == "newest" else 1.0
    idle = {r.id for r in a.idle}

    def key(r: Replica) -> tuple[bool, int, float, float, str]:
        cap = a.capacity.get(r.id)
        if cap is None:
            return (r.id in a.warming, 1, 0.0, sign * r.created_at, r.id)
        return (r.id in a.warming, 0, -min(cap, slot), sign * r.created_at, r.id)

    def may_go(r: Replica) -> bool:
        if booting_first and r.state is ReplicaState.BUILDING:
            return True  # serves nothing yet: may go in warm-up too
        return r.id not in a.warming and (not idle_only or r.id in idle)

    ordered = sorted(healthy, key=key)
    if booting_first:  # booting replicas first, newest first (the most boot still ahead)
        booting = sorted(
            (r for r in healthy if r.state is ReplicaState.BUILDING),
            key=lambda r: (-r.created_at, r.id),
        )
        ordered = booting + [r for r in ordered if r.state is not ReplicaState.BUILDING]
    chosen = [r.id for r in ordered if may_go(r)][: max(0, count)]
    extra = min(count, forced) - len(chosen)
    if extra > 0:
        taken = set(chosen)
        chosen += [r.id for r in ordered if r.id not in taken][:extra]
    return chosen
