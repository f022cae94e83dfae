"""Provider type `chaos`: the local provider behind a wrapper that injects provider faults
and records every call (the suite's ground truth of what the autoscaler asked for).

Options: `control` (the suite's control file), `events` (a JSON-lines file this appends
to), and every `local` option. The control file's `provider` object says what to do:
`mode` one of "ok", "5xx" (every call fails as an HTTP 503 would), "timeout" (every call
hangs `timeout_seconds`, then fails), "quota" (creates hit the instance quota), "lost"
(a create starts the replicas, then its answer is lost), "gone" (each replica to delete
is removed out of band just before the delete reaches the provider); `create_delay` /
`delete_delay`: seconds a create / delete waits after the work is done, before answering
(a window to kill or stop the daemon in the middle of an action).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autoscaler.chaos.control import Reader
from autoscaler.config import Config
from autoscaler.core.model import Replica, ReplicaState
from autoscaler.core.spec import GroupConfig, ProviderConfig
from autoscaler.providers import local
from autoscaler.providers.base import ActionResult, ProviderError, ReplicaProvider

OWN = ("control", "events")


def real_time() -> float:
    """The machine's wall clock, not the (possibly shifted) `time.time` of this process."""
    return time.clock_gettime(time.CLOCK_REALTIME)


def check_options(options: Mapping[str, Any], path: str) -> list[str]:
    errors = [f"{path}.{k}: required (a file path)" for k in OWN if not options.get(k)]
    return errors + local.check_options({k: v for k, v in options.items() if k not in OWN}, path)


class FaultyProvider(ReplicaProvider):
    kind = "chaos"

    def __init__(self, inner: local.LocalProvider, control: Reader, events: Path) -> None:
        self.inner = inner
        self.control = control
        self.events = events
        self._lock = threading.Lock()

    def _faults(self) -> dict[str, Any]:
        return dict(self.control.get().get("provider") or {})

    def _event(self, op: str, **data: Any) -> None:
        line = json.dumps({"t": real_time(), "op": op, **data})
        with self._lock, open(self.events, "a") as f:
            f.write(line + "\n")

    def _fail(self, op: str, faults: dict[str, Any]) -> None:
        mode = faults.get("mode", "ok")
        if mode == "5xx":
            self._event(op + "_failed", error="503")
            raise ProviderError(f"{op}: HTTP 503 Service Unavailable (injected)")
        if mode == "timeout":
            seconds = float(faults.get("timeout_seconds", 3.0))
            time.sleep(seconds)
            self._event(op + "_failed", error="timeout")
            raise ProviderError(f"{op}: no answer within {seconds:g}s (injected)")

    def _present(self) -> list[str]:
        return [r.id for r in self.inner.list() if r.state is not ReplicaState.DELETING]

    def list(self) -> list[Replica]:
        self._fail("list", self._faults())
        return self.inner.list()

    def create(self, count: int) -> ActionResult:
        faults = self._faults()
        self._fail("create", faults)
        if faults.get("mode") == "quota":
            self._event("create_quota", n=count)
            return ActionResult(quota_exceeded="instances")
        res = self.inner.create(count)
        self._event("create", n=count, ids=res.succeeded)
        if faults.get("mode") == "lost":
            raise ProviderError("create: connection reset by peer (injected: answer lost)")
        if faults.get("create_delay"):
            self._event("create_waiting")
            time.sleep(float(faults["create_delay"]))
            self._event("create_answered")
        return res

    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        faults = self._faults()
        self._event("delete_call", ids=list(replica_ids), present=self._present())
        self._fail("delete", faults)
        if faults.get("mode") == "gone":
            self.inner.delete(replica_ids)  # someone else removed them first
            self._event("deleted_out_of_band", ids=list(replica_ids))
        res = self.inner.delete(replica_ids)
        self._event("delete", ids=res.succeeded, failed=[i for i, _ in res.failed])
        if faults.get("delete_delay"):
            self._event("delete_waiting")
            time.sleep(float(faults["delete_delay"]))
            self._event("delete_answered")
        return res

    def close(self) -> None:
        self.inner.close()


def build(group: GroupConfig, config: Config) -> FaultyProvider:
    options = dict(group.provider.options or {})
    errors = check_options(options, f"groups.{group.name}.provider.options")
    if errors:
        raise ValueError("; ".join(errors))
    rest = {k: v for k, v in options.items() if k not in OWN}
    inner_group = dataclasses.replace(group, provider=ProviderConfig("local", rest))
    inner = local.build(inner_group, config)
    return FaultyProvider(inner, Reader(options["control"]), Path(options["events"]))
