"""A provider whose replicas live in simulated time: boot delay and random boot failures."""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence

from autoscaler.core.model import Replica, ReplicaState
from autoscaler.providers.base import ActionResult, ReplicaProvider
from autoscaler.simulation.spec import ReplicaModel


class SimProvider(ReplicaProvider):
    """Implements the provider interface (list / create / delete / close) over a sim clock.

    `advance(now)` moves the clock: replicas whose boot delay is over become ACTIVE, or
    FAILED with the model's failure rate. Deterministic for a given model seed.
    """

    kind = "simulated"

    def __init__(self, group: str, model: ReplicaModel, now: float, initial: int = 0) -> None:
        self.group = group
        self.model = model
        self.now = now
        self._rng = random.Random(model.seed)
        self._replicas: dict[str, Replica] = {}
        self._booting: list[tuple[float, int, str]] = []  # (ready at, seq, id) heap
        self._seq = 0
        self._cache: tuple[Replica, ...] | None = None
        self.active = 0
        self.building = 0
        self.failed = 0
        for _ in range(initial):  # already running when the replay starts
            rid = self._next_id()
            self._replicas[rid] = Replica(
                rid, group, ReplicaState.ACTIVE, now - model.boot_delay, name=rid
            )
            self.active += 1

    def _next_id(self) -> str:
        self._seq += 1
        return f"{self.group}-{self._seq:06d}"

    def advance(self, now: float) -> None:
        self.now = now
        while self._booting and self._booting[0][0] <= now:
            _, _, rid = heapq.heappop(self._booting)
            r = self._replicas.get(rid)
            if r is None:  # deleted while booting
                continue
            fails = self.model.failure_rate > 0 and self._rng.random() < self.model.failure_rate
            state = ReplicaState.FAILED if fails else ReplicaState.ACTIVE
            self._replicas[rid] = Replica(rid, r.group, state, r.created_at, name=r.name)
            self.building -= 1
            if fails:
                self.failed += 1
            else:
                self.active += 1
            self._cache = None

    def replicas(self) -> tuple[Replica, ...]:
        if self._cache is None:
            self._cache = tuple(self._replicas.values())
        return self._cache

    def list(self) -> list[Replica]:
        return list(self.replicas())

    def create(self, count: int) -> ActionResult:
        res = ActionResult()
        for _ in range(count):
            rid = self._next_id()
            self._replicas[rid] = Replica(
                rid, self.group, ReplicaState.BUILDING, self.now, name=rid
            )
            heapq.heappush(self._booting, (self.now + self.model.boot_delay, self._seq, rid))
            self.building += 1
            res.succeeded.append(rid)
        if count:
            self._cache = None
        return res

    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        res = ActionResult()
        for rid in replica_ids:
            r = self._replicas.pop(rid, None)
            if r is None:
                res.failed.append((rid, "no such replica"))
                continue
            if r.state is ReplicaState.ACTIVE:
                self.active -= 1
            elif r.state is ReplicaState.BUILDING:
                self.building -= 1
            elif r.state is ReplicaState.FAILED:
                self.failed -= 1
            res.succeeded.append(rid)
        if replica_ids:
            self._cache = None
        return res

    def close(self) -> None:
        pass
