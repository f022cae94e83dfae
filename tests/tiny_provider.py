"""A minimal in-memory provider module, registered by tests/test_config.py as `tiny`.

It exercises the registry contract (check_options + build) without depending on any
real provider's options.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from autoscaler.config import Config
from autoscaler.core.model import Replica, ReplicaState
from autoscaler.core.spec import GroupConfig
from autoscaler.providers.base import ActionResult, ReplicaProvider


def check_options(options: Mapping[str, Any], path: str) -> list[str]:
    errors = [f"{path}.{key}: unknown option; allowed: size" for key in options if key != "size"]
    size = options.get("size", 1)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        errors.append(f"{path}.size: must be an integer >= 1 (got {size!r})")
    return errors


class TinyProvider(ReplicaProvider):
    kind = "tiny"

    def __init__(self, group: str, size: int) -> None:
        self.group = group
        self.size = size
        self.replicas: dict[str, Replica] = {}

    def list(self) -> list[Replica]:
        return list(self.replicas.values())

    def create(self, count: int) -> ActionResult:
        result = ActionResult()
        for _ in range(count):
            rid = f"{self.group}-{len(self.replicas)}"
            self.replicas[rid] = Replica(rid, self.group, ReplicaState.ACTIVE, created_at=0.0)
            result.succeeded.append(rid)
        return result

    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        result = ActionResult()
        for rid in replica_ids:
            if self.replicas.pop(rid, None) is None:
                result.failed.append((rid, "not found"))
            else:
                result.succeeded.append(rid)
        return result

    def close(self) -> None:
        self.replicas.clear()


def build(group: GroupConfig, config: Config) -> TinyProvider:
    return TinyProvider(group.name, int(group.provider.options.get("size", 1)))
