"""The planner's memory in etcd, under HA: `<key_prefix>/memory/<group>`, one key a group.

The same document as the file store's entries (`state_store.encode`/`decode`: wall-clock
stamps, checked on load), so a failover keeps stabilization windows and cooldowns exactly,
as a restart does. Hosts' wall clocks must agree (NTP), as for any failover on wall time.

Only the leader writes, and etcd enforces it: a save is a transaction that puts the key
only while the leader key is held on this instance's lease. Every instance reads: the
controller of a follower reloads the leader's memory each cycle, and a new leader loads it
at the start of its term.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from autoscaler.core.clock import Clock, read
from autoscaler.core.model import PlannerState
from autoscaler.runtime.ha.etcd import EtcdError
from autoscaler.runtime.ha.leader import LeaderElector
from autoscaler.runtime.state_store import InvalidMemory, decode, encode

log = logging.getLogger(__name__)


class NotLeading(OSError):
    """A save refused: this instance does not hold the leader key on its lease."""


class EtcdMemoryStore:
    def __init__(
        self,
        elector: LeaderElector,
        clock: Clock,
        horizons: Mapping[str, float],
        *,
        read_only: bool = False,
    ) -> None:
        self.elector = elector
        self.etcd = elector.etcd
        self.prefix = f"{elector.ha.key_prefix.rstrip('/')}/memory/"
        self.clock = clock
        self.horizons = dict(horizons)  # the controller updates it on reload
        self.read_only = read_only
        self._said: dict[str, str] = {}  # group -> the last problem logged, said once

    @property
    def where(self) -> str:
        return f"etcd {', '.join(self.etcd.endpoints)} under {self.prefix}"

    def _once(self, group: str, level: int, message: str) -> None:
        if self._said.get(group) != message:
            self._said[group] = message
            log.log(level, "%s", message)

    def load(self, group: str) -> PlannerState | None:
        horizon = self.horizons.get(group, 0.0)
        if horizon <= 0:
            return None  # no window nor cooldown: nothing to remember
        leading = self.elector.is_leader()
        try:
            kv = self.etcd.get(self.prefix + group)
        except EtcdError as e:
            if leading:
                raise  # a new leader must not act on a memory it could not read
            self._once(group, logging.INFO, f"planner memory of group {group} unreadable: {e}")
            return None  # a follower only shows decisions: its replicas' ages will do
        if kv is None:
            self._once(group, logging.INFO, f"no planner memory of group {group} in etcd yet")
            return None
        try:
            state = decode(json.loads(kv.value), read(self.clock), horizon)
        except (InvalidMemory, ValueError) as e:
            self._once(
                group,
                logging.WARNING,
                f"planner memory of group {group} in etcd ignored ({e}): starting fresh",
            )
            return None
        self._said.pop(group, None)
        log.log(
            logging.INFO if leading else logging.DEBUG,
            "group %s: planner memory restored from etcd (%d recommendations)",
            group,
            len(state.recommendations),
        )
        return state

    def save(self, group: str, state: PlannerState) -> None:
        if self.read_only:
            return
        lease = self.elector.lease_id
        if lease is None:
            raise NotLeading("not saved: this instance does not lead")
        doc = json.dumps(encode(state, read(self.clock)), separators=(",", ":"), sort_keys=True)
        try:
            saved = self.etcd.put_if_lease(self.prefix + group, doc, self.elector.key, lease)
        except EtcdError as e:
            raise OSError(f"etcd: {e}") from None
        if not saved:
            raise NotLeading("not saved: the leader key is no longer on this instance's lease")
