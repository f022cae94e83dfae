"""Plain data shared by every layer: what a replica is, what was observed, what was decided.

Nothing here does I/O. Providers produce `Replica`s, `observe` produces `Observation`s,
policies produce `Proposal`s and the planner produces `Decision`s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoscaler.core.capacity import Assessment


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"
    HOLD = "hold"


class Code(StrEnum):
    """Why a proposal or decision came out as it did: a short, bounded metric label."""

    IN_BAND = "in_band"
    HEADROOM_SHORT = "headroom_short"
    HEADROOM_SURPLUS = "headroom_surplus"
    TARGET_ABOVE = "target_above"
    TARGET_BELOW = "target_below"
    PREDICTIVE = "predictive"
    NO_DATA = "no_data"
    # The policy's arithmetic has no finite answer (a 1e308 signal, an overflowing sum):
    # no proposal, never an exception, never a made-up count.
    NOT_COMPUTABLE = "not_computable"
    FALLBACK = "fallback"
    PARTIAL = "partial"
    MIN = "min"
    MAX = "max"
    STABILIZING = "stabilizing"
    SCALE_UP_DISABLED = "scale_up_disabled"
    SCALE_DOWN_DISABLED = "scale_down_disabled"
    COOLDOWN = "cooldown"
    STEP_LIMIT = "step_limit"
    TERMINATION = "termination"
    FAILED = "failed"
    NO_VICTIM = "no_victim"  # scale-in held: only warming (or, for headroom, busy) replicas


# Codes of a policy's own verdict: a hold that only removes terminating or failed
# replicas is reported as that instead.
POLICY_VERDICTS = frozenset(
    {
        Code.IN_BAND,
        Code.HEADROOM_SHORT,
        Code.HEADROOM_SURPLUS,
        Code.TARGET_ABOVE,
        Code.TARGET_BELOW,
        Code.PREDICTIVE,
    }
)


class ReplicaState(StrEnum):
    BUILDING = "building"  # exists, not yet serving (booting, scheduling)
    ACTIVE = "active"  # running and reachable
    FAILED = "failed"  # error state, or shut off too long: to be replaced
    DELETING = "deleting"  # on its way out: never counted


@dataclass(frozen=True, slots=True)
class Replica:
    """One replica as the provider sees it. The provider is the source of truth."""

    id: str
    group: str
    state: ReplicaState
    created_at: float  # unix seconds
    address: str | None = None  # "host:port" where its metrics (or JSON API) are served
    name: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    def in_warmup(self, now: float, warmup_seconds: float) -> bool:
        return now - self.created_at < warmup_seconds


@dataclass(frozen=True, slots=True)
class ReplicaMetrics:
    """The latest fresh samples of one replica, as read from Prometheus.

    None means no fresh sample. Values are passed through unchanged (they may be NaN,
    infinite or negative): the decision core decides what is usable, never `observe`.
    """

    capacity: float | None = None
    termination: float | None = None


def usable(value: float | None) -> bool:
    """A metric value that may be acted on: present, finite and not negative."""
    return value is not None and math.isfinite(value) and value >= 0


@dataclass(frozen=True)
class SignalHistory:
    """The recent past of one policy's query for one group, ascending in time."""

    times: Sequence[float]  # unix seconds, on a grid of `step`
    points: Sequence[tuple[float, float]]  # (time, value), same order
    step: float  # seconds between points: a series that ended is stale after this


@dataclass(frozen=True)
class Observation:
    """Everything the decision core may know about one group at one instant."""

    group: str
    at: float  # unix seconds
    replicas: tuple[Replica, ...]
    metrics: Mapping[str, ReplicaMetrics]  # replica id -> fresh samples (absent = no data)
    signals: Mapping[str, float | None]  # policy name -> value of its query (None = no data)
    prometheus_ok: bool = True  # False when the queries for this cycle failed
    # policy name -> the recent past of its query (history policies; absent = no data)
    histories: Mapping[str, SignalHistory] = field(default_factory=dict)
    # Derived once: the planner and the policies ask for it several times per cycle.
    _terminating: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A sample equal to 1 is usable (finite, >= 0); None and NaN never equal 1.
        asking = {rid for rid, m in self.metrics.items() if m.termination == 1}
        ids = (
            frozenset(
                r.id
                for r in self.replicas
                if r.id in asking and r.state is not ReplicaState.DELETING
            )
            if asking
            else frozenset()
        )
        object.__setattr__(self, "_terminating", ids)  # frozen: set once, here

    def terminating_ids(self) -> frozenset[str]:
        """Replicas asking to be removed: a fresh `replica_termination` sample equal to 1."""
        return self._terminating


@dataclass(frozen=True)
class Proposal:
    """One policy's recommendation. desired None means the policy has no usable data."""

    policy: str
    desired: int | None
    reason: str  # human-readable, with the inputs
    code: Code  # short, bounded set, used as a metric label (e.g. "headroom_short")
    partial: bool = False  # some inputs were missing: may scale up, never down
    signal: float | None = None  # the value it acted on (a query's value, a forecast)


@dataclass(frozen=True)
class Decision:
    """What the planner decided for one group in one cycle, with its reasons."""

    group: str
    at: float  # unix seconds of the observation it was made from
    current: int  # healthy replicas (building + active), not asking for termination
    desired: int  # healthy replicas wanted after this cycle, always within [min, max]
    create: int  # replicas to create now
    delete: tuple[str, ...]  # replica ids to delete now (terminating, failed, scale-in victims)
    direction: Direction
    code: Code  # the main reason, short and bounded, for metric labels
    reason: str  # one human-readable line
    details: tuple[str, ...] = ()  # every step that shaped the result (policies, clamp, ...)
    proposals: tuple[Proposal, ...] = ()
    # What the decision was made from, for the exported gauges and /status (not compared).
    assessment: Assessment | None = field(default=None, compare=False, repr=False)
    cooldown_remaining: Mapping[str, float] = field(default_factory=dict)  # "up"/"down" -> s
    dry_run: bool = False


@dataclass(frozen=True)
class PlannerState:
    """What the planner remembers between cycles, on the planner's monotonic timeline.

    The daemon persists it (autoscaler/runtime/state_store.py) so a restart keeps the
    stabilization windows and cooldowns.
    """

    # (time, clamped recommendation) pairs inside the longest stabilization window
    recommendations: tuple[tuple[float, int], ...] = ()
    # when the provider last accepted a scale-up / scale-down (planner.record_action)
    last_scale_up: float | None = None
    last_scale_down: float | None = None
    # the last cycle with no data at all: a partial view soon after it is the data
    # source catching up (Prometheus restarted, scraping again), not silent replicas.
    # Not persisted: a restarted daemon has seen no outage.
    last_no_data: float | None = None
