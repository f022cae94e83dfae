"""The one small interface every provider implements.

A provider manages the replicas of one group. It must be safe to call `list` at any
time (level-triggered reconcile), and `create` must be idempotent across retries: a
create that timed out and is retried must never leave two replicas where one was asked.
Every call is bounded by a timeout; errors are reported in the result, not raised,
except for a failure of the whole call (e.g. cannot reach the API), which raises
`ProviderError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from autoscaler.core.model import Replica


class ProviderError(Exception):
    """The provider call failed as a whole. The message must never contain secrets."""


@dataclass
class ActionResult:
    """Outcome of a create or delete call."""

    succeeded: list[str] = field(default_factory=list)  # replica ids created / deleted
    failed: list[tuple[str, str]] = field(default_factory=list)  # (replica id or "", error)
    quota_exceeded: str | None = None  # the quota's name, when a create hit a quota


class Provider(Protocol):
    """list / create n / delete ids, for one group."""

    kind: str  # "local", "openstack", ...

    def list(self) -> list[Replica]:
        """Every replica of the group, including building, failed and deleting ones."""
        ...

    def create(self, count: int) -> ActionResult:
        """Start `count` new replicas. Returns as soon as they are requested."""
        ...

    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        """Remove these replicas (gracefully where the provider can)."""
        ...

    def close(self) -> None:
        """Release clients and threads. Must not stop the replicas."""
        ...
