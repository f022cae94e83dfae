"""A count-level target (`CountProvider`) presented to the controller as replicas.

The controller and the planner work on replicas: they list, create n, delete these ids.
An application that owns its replicas only takes a count, so this adapter shows its
count as that many synthetic, active replicas (`group-1`, `group-2`, ...) and turns
"create n" into `set_count(current + n)` and "delete these ids" into
`set_count(current - len(ids))`. Which replicas the planner picked does not matter to
the application: only how many.

Synthetic replicas have no address (nothing to scrape per replica: the signal comes
from the application's own status, through the bridge) and keep their ids across
cycles, so the planner's memory and /status stay stable. Replicas seen at the first
listing count as old (created_at 0): a restarted daemon starts no warm-up for them.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence

from autoscaler.core.model import Replica, ReplicaState
from autoscaler.providers.base import (
    ActionResult,
    CountProvider,
    ReplicaProvider,
    RequestFailureHook,
    RequestLabels,
)


class CountAsReplicas(ReplicaProvider):
    kind = "count"  # the group's provider type (e.g. http) is in the configuration

    def __init__(
        self, inner: CountProvider, group: str, wall: Callable[[], float] = time.time
    ) -> None:
        self.inner = inner
        self.group = group
        self.wall = wall
        self._lock = threading.Lock()  # list runs in the cycle, create/delete in the pool
        self._slots: list[Replica] = []  # oldest first
        self._next = itertools.count(1)
        self._listed = False

    def _new(self, at: float) -> Replica:
        n = next(self._next)
        return Replica(
            id=f"{self.group}-{n}",
            group=self.group,
            state=ReplicaState.ACTIVE,
            created_at=at,
            name=f"{self.group}-{n}",
        )

    def _resize(self, count: int, at: float) -> list[Replica]:
        """Grow with new slots, or drop the newest: the application decides which go."""
        added = [self._new(at) for _ in range(count - len(self._slots))]
        self._slots = self._slots[:count] + added
        return added

    def list(self) -> list[Replica]:
        count = self.inner.read_count()  # ProviderError: the controller counts and holds
        with self._lock:
            self._resize(count, self.wall() if self._listed else 0.0)
            self._listed = True
            return list(self._slots)

    def create(self, count: int) -> ActionResult:
        with self._lock:
            target = len(self._slots) + count
        res = self.inner.set_count(target)
        if res.failed or not res.succeeded:
            return ActionResult(failed=res.failed or [("", f"set_count({target}) failed")])
        with self._lock:
            added = self._resize(target, self.wall())
        return ActionResult(succeeded=[r.id for r in added])

    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        with self._lock:
            known = {r.id for r in self._slots}
            gone = [i for i in replica_ids if i not in known]  # already gone: success
            going = [i for i in replica_ids if i in known]
            target = len(self._slots) - len(going)
        if not going:
            return ActionResult(succeeded=gone)
        res = self.inner.set_count(target)
        if res.failed or not res.succeeded:
            return ActionResult(failed=res.failed or [("", f"set_count({target}) failed")])
        with self._lock:
            self._slots = [r for r in self._slots if r.id not in going]
        return ActionResult(succeeded=going + gone)

    def report_request_failures(self, hook: RequestFailureHook) -> RequestLabels:
        return self.inner.report_request_failures(hook)

    def close(self) -> None:
        self.inner.close()
