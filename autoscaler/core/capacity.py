"""One assessment per group and cycle: who counts, who is warming, who reports, what is free.

Every policy, the planner, the victim choice and the exported gauges read the same
`Assessment`, computed once by `assess`, so "healthy", "missing" and "free capacity" mean
exactly the same thing everywhere and nothing is recomputed later in the cycle.

Also the float arithmetic every policy shares (`ceil_count`, `above`, `below`, `total`):
no function here raises on any float, and float noise never moves a count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from autoscaler.core.model import Observation, Replica, ReplicaState, usable
from autoscaler.core.spec import GroupConfig

# Float noise must not add a replica: ceil(0.30000000000000004 / 0.1) would be 4; nor
# move a band edge: 0.72 / 0.8 is 0.8999999999999999, not below 0.9.
_RELATIVE_EPSILON = 1e-9


def ceil_tolerant(x: float) -> int:
    """ceil() that ignores float noise just above an integer; x must be finite.

    Relative, not absolute: at 3e7 the noise of two orders of the same arithmetic is
    about 1e-8, which an absolute 1e-9 would read as one more replica. The policies use
    `ceil_count`, which never raises.
    """
    if not math.isfinite(x):
        raise ValueError(f"ceil_tolerant needs a finite number, got {x!r}")
    shifted = x - _RELATIVE_EPSILON * max(1.0, abs(x))
    return math.ceil(shifted if math.isfinite(shifted) else x)  # -1.8e308 shifts to -inf


def ceil_count(x: float) -> int | None:
    """A replica count from a computed float: ceil, tolerant of noise, at least 0.

    None when x is not a finite number (the arithmetic overflowed, or an input was NaN):
    the caller then has no count to propose, never a made-up one.
    """
    if not math.isfinite(x):
        return None
    return max(0, ceil_tolerant(x))


def _noise(a: float, b: float, scale: float) -> float:
    return _RELATIVE_EPSILON * max(abs(a), abs(b), abs(scale))


def above(a: float, b: float, scale: float = 0.0) -> bool:
    """a > b by more than float noise (relative to the operands, or to `scale` when `a`
    was computed from larger numbers): an edge that is only noise away holds."""
    return a > b and (a - b > _noise(a, b, scale) or math.isinf(a - b))


def below(a: float, b: float, scale: float = 0.0) -> bool:
    """a < b by more than float noise (see `above`)."""
    return a < b and (b - a > _noise(a, b, scale) or math.isinf(b - a))


def total(values: Iterable[float]) -> float:
    """Exactly rounded sum (math.fsum) of finite numbers; inf when it overflows.

    fsum raises on an intermediate overflow: a group of replicas each worth 1e308 slots
    has a free capacity no float can hold, which is inf here and "not computable" to the
    policies, never an exception.
    """
    try:
        return math.fsum(values)
    except OverflowError:
        return math.inf
    except ValueError:  # inf + -inf: cannot happen with the non-negative values used here
        return math.nan


def healthy_replicas(obs: Observation) -> list[Replica]:
    """Building or active replicas that do not ask for termination: the ones counted."""
    terminating = obs.terminating_ids()
    return [
        r
        for r in obs.replicas
        if r.state in (ReplicaState.BUILDING, ReplicaState.ACTIVE) and r.id not in terminating
    ]


def valid_capacity(value: float | None, replica_capacity: float) -> float | None:
    """A free-capacity sample that may be acted on, or None.

    Valid = usable (present, finite, >= 0) and at most `replica_capacity`: a replica that
    says 400 free of 4 slots (or 1e308) is broken or misconfigured, and reading it as
    "fully idle" would make a busy replica the scale-in victim. A sample above the slot
    count only by float noise is the slot count.
    """
    if value is None or not usable(value):
        return None
    if not (math.isfinite(replica_capacity) and replica_capacity > 0):
        return None  # nothing to check against: headroom says so in its own reason
    if above(value, replica_capacity):
        return None
    return min(value, replica_capacity)


def capacity_sample(obs: Observation, replica_id: str, replica_capacity: float) -> float | None:
    """The replica's valid free-capacity sample, or None (missing, stale, NaN, inf, < 0,
    or more than `replica_capacity`)."""
    m = obs.metrics.get(replica_id)
    return valid_capacity(None if m is None else m.capacity, replica_capacity)


def capacity_expected(obs: Observation, group: GroupConfig) -> bool:
    """Do this group's replicas export the capacity gauge? Then every silent one is missing.

    No replica reporting is the worst case of partial data, not "complete" (DESIGN §4):
    silence can never show that a group exports no gauge, since an outage of every
    exporter looks the same. So only the user's `expect_capacity: false` says it does not
    (a target-only group on application metrics), and even then a replica that does
    report one shows that the group's replicas export it.
    """
    return group.expect_capacity or any(m.capacity is not None for m in obs.metrics.values())


@dataclass(frozen=True)
class Assessment:
    """A group's replicas and capacity as every decision step of one cycle sees them."""

    healthy: tuple[Replica, ...]  # building/active, not asking for termination: counted
    terminating: frozenset[str]  # asking to be removed (fresh replica_termination == 1)
    warming: frozenset[str]  # healthy and still inside warm-up
    capacity: dict[str, float]  # healthy replica id -> valid capacity sample (warming too)
    missing: tuple[str, ...]  # healthy, past warm-up, without a valid sample (invalid too)
    reporting: bool  # some replica of the group has a capacity sample, usable or not
    available: float  # valid samples + full slots in warm-up; inf if the sum overflows,
    # NaN when replica_capacity is not a finite positive number
    known: int  # healthy replicas counted in `available` (warming or with a valid sample)
    idle: tuple[Replica, ...]  # past warm-up and fully free: the only headroom scale-in candidates
    # Healthy replicas whose sample is present but invalid (NaN, inf, < 0, > replica_capacity):
    # missing data too, listed to be seen (reasons, status), never read as idle.
    invalid: tuple[str, ...] = ()
    expected: bool = False  # capacity_expected(): the group's replicas export the gauge

    @property
    def current(self) -> int:
        return len(self.healthy)

    @property
    def unreported(self) -> tuple[str, ...]:
        """Missing samples that block scale-in: whenever the group's replicas export
        capacity (`expected`), including when none of them reports; a target-only group
        whose replicas have no capacity gauge is not "partial" forever."""
        return self.missing if self.expected else ()


def assess(obs: Observation, group: GroupConfig) -> Assessment:
    slot = group.replica_capacity
    healthy = healthy_replicas(obs)
    reporting = any(m.capacity is not None for m in obs.metrics.values())
    warming: set[str] = set()
    capacity: dict[str, float] = {}
    missing: list[str] = []
    invalid: list[str] = []
    counted: list[float] = []
    idle: list[Replica] = []
    metrics = obs.metrics
    for r in healthy:
        m = metrics.get(r.id)  # no ReplicaMetrics() made for a hit: 100,000 a cycle at scale
        raw = None if m is None else m.capacity
        cap = valid_capacity(raw, slot)
        if cap is not None:
            capacity[r.id] = cap
        elif raw is not None:
            invalid.append(r.id)
        if r.in_warmup(obs.at, group.warmup_seconds):
            warming.add(r.id)
            counted.append(slot)  # a new replica is counted as fully free until it reports
            continue
        if cap is None:
            missing.append(r.id)
            continue
        counted.append(cap)
        if not below(cap, slot):  # fully free, up to float noise
            idle.append(r)
    return Assessment(
        healthy=tuple(healthy),
        terminating=obs.terminating_ids(),
        warming=frozenset(warming),
        capacity=capacity,
        missing=tuple(missing),
        reporting=reporting,
        # Without a valid slot size nothing can be counted (headroom says so): NaN, never
        # a negative or made-up free capacity.
        available=total(counted) if math.isfinite(slot) and slot > 0 else math.nan,
        known=len(healthy) - len(missing),
        idle=tuple(idle),
        invalid=tuple(invalid),
        expected=capacity_expected(obs, group),
    )


def available_capacity(obs: Observation, a: Assessment) -> float | None:
    """Free capacity as the headroom policy counts it; None when it cannot be known
    (Prometheus failed, nobody reports, or the sum is not a finite number)."""
    if not obs.prometheus_ok or not math.isfinite(a.available):
        return None
    return a.available if a.known or not a.current else None
