"""The oracle: the cheapest replica schedule that never under-provisions.

It knows the demand a boot delay ahead and is limited by nothing but the boot delay:
at every tick it has exactly need(t) = ceil(demand(t) / per_replica) active replicas,
starting each one `boot_delay` before it is needed. Replicas are interchangeable, so
the schedule splits into levels: level j is needed whenever need(t) >= j. Between two
stretches of need a level's replica is kept through the gap when the gap is at most the
boot delay (keeping it costs the gap, replacing it costs the boot), else deleted and
started again a boot delay before the next stretch.

Lower bound, precisely: on the same trace, model (without failures) and initial
replicas, every schedule with zero under-provisioned ticks has at least the oracle's
replica-hours (building time included). Before the first boot delay has passed the
oracle may itself be short, when the initial replicas are too few: then no schedule can
avoid it either.
"""

from __future__ import annotations

import time

from autoscaler.core.capacity import ceil_tolerant
from autoscaler.simulation.queueing import DEFAULT_SLO_SECONDS
from autoscaler.simulation.run import Run, Timeline, summarize
from autoscaler.simulation.spec import ReplicaModel
from autoscaler.simulation.trace import Trace


def need(demand: float, per_replica: float) -> int:
    return max(0, ceil_tolerant(demand / per_replica))


def oracle(
    trace: Trace,
    model: ReplicaModel,
    dt: int,
    initial: int,
    demand: list[float],
    slo_seconds: float = DEFAULT_SLO_SECONDS,
) -> Run:
    """The oracle's schedule on ticks of `dt` seconds over the tick demand `demand`."""
    wall = time.perf_counter()
    n = len(demand)
    per = model.per_replica
    boot = int(round(model.boot_delay / dt))
    needs = [need(d, per) for d in demand]

    # Stretches of need per level, found with one sweep over the changes of need(t).
    stretches: dict[int, list[tuple[int, int]]] = {}
    opened: dict[int, int] = {}
    prev = 0
    for k, cur in enumerate(needs):
        if cur > prev:
            for j in range(prev + 1, cur + 1):
                opened[j] = k
        elif cur < prev:
            for j in range(cur + 1, prev + 1):
                stretches.setdefault(j, []).append((opened.pop(j), k))
        prev = cur
    for j, s in opened.items():
        stretches.setdefault(j, []).append((s, n))

    alive_delta = [0] * (n + 1)  # building or active
    active_delta = [0] * (n + 1)
    created = [0] * n
    deleted = [0] * n

    def life(start: int, active_from: int, end: int, made: bool) -> None:
        alive_delta[start] += 1
        alive_delta[end] -= 1
        active_delta[min(active_from, end)] += 1
        active_delta[end] -= 1
        if made:
            created[start] += 1
        if end < n:
            deleted[end] += 1

    levels = max(list(stretches) + [initial], default=0)
    for j in range(1, levels + 1):
        runs = stretches.get(j, [])
        exists = j <= initial
        if not runs:
            if exists:
                deleted[0] += 1
            continue
        s, e = runs[0]
        if exists and s <= boot:
            start, active_from, made = 0, 0, False
        else:
            if exists:
                deleted[0] += 1
            start = max(0, s - boot)
            active_from, made = start + boot, True
        end = e
        for s, e in runs[1:]:
            if s - end <= boot:
                end = e
                continue
            life(start, active_from, end, made)
            start, active_from, made = s - boot, s, True
            end = e
        life(start, active_from, end, made)

    tl = Timeline(dt=float(dt))
    alive = active = 0
    ups = downs = 0
    for k in range(n):
        alive += alive_delta[k]
        active += active_delta[k]
        tl.t.append(trace.start + k * dt)
        tl.demand.append(demand[k])
        tl.active.append(active)
        tl.building.append(alive - active)
        tl.failed.append(0)
        tl.desired.append(needs[k])
        tl.created.append(created[k])
        tl.deleted.append(deleted[k])
        ups += created[k] > 0
        downs += deleted[k] > 0
    wall = time.perf_counter() - wall
    return Run(summarize("oracle", trace.name, tl, per, ups, downs, wall, slo_seconds), tl, per)
