"""Wiring for the daemon: the elector, its gauge and isMaster, and the etcd memory store."""

from __future__ import annotations

from autoscaler.config import Config
from autoscaler.core.clock import Clock
from autoscaler.core.planner import memory_horizon
from autoscaler.runtime.exporter import SharedState
from autoscaler.runtime.ha.etcd import MissingClient
from autoscaler.runtime.ha.leader import LeaderElector
from autoscaler.runtime.ha.memory import EtcdMemoryStore
from autoscaler.runtime.metrics import Metrics

__all__ = ["LeaderElector", "MissingClient", "elector", "memory"]


def elector(config: Config, metrics: Metrics, shared: SharedState) -> LeaderElector:
    """A started elector that keeps `autoscaler_leader` and `/`'s isMaster up to date."""
    assert config.ha is not None

    def changed(leading: bool) -> None:
        metrics.leader.set(1 if leading else 0)
        with shared.lock:
            shared.is_master = leading

    changed(False)  # a follower until etcd says otherwise
    e = LeaderElector(config.ha, on_change=changed)
    e.start()
    return e


def memory(
    config: Config, e: LeaderElector, clock: Clock, *, read_only: bool = False
) -> EtcdMemoryStore:
    horizons = {g.name: memory_horizon(g) for g in config.groups}
    return EtcdMemoryStore(e, clock, horizons, read_only=read_only)
