"""The provider interface: what every provider does, and what some may do.

Two kinds of target, like Nomad's target plugins:

- `ReplicaProvider`: the autoscaler owns individual replicas (OpenStack servers, local
  processes, containers, domains): list them, create n, delete these ids.
- `CountProvider`: an application owns its replicas and takes a count (ScaleIt's
  `PUT /app/replicas`): read the count, set the count.

It must be safe to call `list` / `read_count` at any time (level-triggered reconcile),
and `create` must be idempotent across retries: a create that timed out and is retried
must never leave two replicas where one was asked. Every call is bounded by a timeout;
errors are reported in the result, not raised, except for a failure of the whole call
(e.g. cannot reach the API), which raises `ProviderError`.

Optional calls are declared here with a default and a flag saying whether the provider
implements them, so the controller never probes with `getattr`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ClassVar

from autoscaler.core.model import Replica

# (method, endpoint) of a failed request, e.g. ("get", "/app/status"): ScaleIt's labels.
RequestFailureHook = Callable[[str, str], None]
RequestLabels = list[tuple[str, str]]  # every (method, endpoint) a provider reports


class ProviderError(Exception):
    """The provider call failed as a whole. The message must never contain secrets."""


@dataclass
class ActionResult:
    """Outcome of a create or delete call."""

    succeeded: list[str] = field(default_factory=list)  # replica ids created / deleted
    failed: list[tuple[str, str]] = field(default_factory=list)  # (replica id or "", error)
    quota_exceeded: str | None = None  # the quota's name, when a create hit a quota


def delete_each(
    replica_ids: Sequence[str],
    delete_one: Callable[[str], str | None],
    pool: Executor | None = None,
) -> ActionResult:
    """Delete replicas one by one in parallel (a few slow ones must not add up).

    `delete_one` returns None on success (an already-gone replica included) or the error
    text. Duplicates are deleted once. Without a `pool`, up to 8 run at a time.
    """
    result = ActionResult()
    ids = list(dict.fromkeys(replica_ids))
    if not ids:
        return result
    if pool is None:
        with ThreadPoolExecutor(max_workers=min(8, len(ids))) as own:
            errors = list(own.map(delete_one, ids))
    else:
        errors = list(pool.map(delete_one, ids))
    for rid, err in zip(ids, errors, strict=True):
        if err is None:
            result.succeeded.append(rid)
        else:
            result.failed.append((rid, err))
    return result


class ReplicaProvider(ABC):
    """list / create n / delete ids, for one group."""

    kind: ClassVar[str]  # "local", "openstack", ...
    # Optional: moves external addresses (floating IPs) onto healthy replicas.
    reconciles_addresses: ClassVar[bool] = False

    @abstractmethod
    def list(self) -> list[Replica]:
        """Every replica of the group, including building, failed and deleting ones."""

    @abstractmethod
    def create(self, count: int) -> ActionResult:
        """Start `count` new replicas. Returns as soon as they are requested."""

    @abstractmethod
    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        """Remove these replicas (gracefully where the provider can)."""

    def reconcile(self, healthy: frozenset[str], removing: frozenset[str]) -> None:  # noqa: B027
        """Optional (`reconciles_addresses`): keep external addresses on `healthy` replicas,
        off those in `removing`. The default does nothing."""

    def report_request_failures(self, hook: RequestFailureHook) -> RequestLabels:
        """Optional: call `hook(method, endpoint)` on each failed request from now on, and
        return every (method, endpoint) pair, so their counters exist at 0. Default: none."""
        return []

    def close(self) -> None:  # noqa: B027 - most providers hold nothing to release
        """Release clients and threads. Must not stop the replicas."""


class CountProvider(ABC):
    """read the count / set the count, for an application that owns its replicas."""

    kind: ClassVar[str]

    @abstractmethod
    def read_count(self) -> int:
        """The number of replicas the application runs now."""

    @abstractmethod
    def set_count(self, count: int) -> ActionResult:
        """Ask the application to run `count` replicas."""

    def report_request_failures(self, hook: RequestFailureHook) -> RequestLabels:
        """As `ReplicaProvider.report_request_failures`."""
        return []

    def close(self) -> None:  # noqa: B027
        """Release clients. Must not change the application."""


# The controller drives replica-level targets; count-level ones are adapted to it
# (providers/count_adapter.py CountAsReplicas).
Provider = ReplicaProvider
