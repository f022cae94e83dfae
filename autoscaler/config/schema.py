"""The daemon-wide configuration around the groups: Prometheus, intervals, endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autoscaler.core.spec import GroupConfig


@dataclass(frozen=True)
class PrometheusConfig:
    url: str = "http://127.0.0.1:9090"
    timeout_seconds: float = 5.0
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # secret: never logged
    bearer_token_file: str | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class HAConfig:
    """Leader election on etcd (runtime/ha/): several instances, exactly one acts."""

    endpoints: tuple[str, ...]  # http(s) URLs of the etcd cluster's members
    key_prefix: str = "/autoscaler"  # the leader key and the planner memory live under it
    lease_ttl_seconds: int = 10  # a dead leader's lease ends this long after its last renewal
    renew_seconds: float | None = None  # None: a third of the TTL
    poll_seconds: float = 1.0  # a follower looks for a vacant leadership this often
    timeout_seconds: float = 2.0  # every request to etcd
    safety_margin_seconds: float = 1.0  # stop acting this long before the lease could end
    identity: str | None = None  # None: hostname:pid
    ca_file: str | None = None  # verify https:// endpoints against it (None: the system's CAs)
    cert_file: str | None = None  # a client certificate (with key_file), for --client-cert-auth
    key_file: str | None = None
    username: str | None = None  # etcd authentication (with a password)
    password: str | None = field(default=None, repr=False)  # secret: never logged

    @property
    def renew(self) -> float:
        return self.lease_ttl_seconds / 3 if self.renew_seconds is None else self.renew_seconds


@dataclass(frozen=True)
class Config:
    prometheus: PrometheusConfig
    groups: tuple[GroupConfig, ...]
    interval_seconds: float = 10.0
    listen: str = "127.0.0.1:9100"  # /metrics /status /healthz /sd
    # Series selectors (`name` or `name{label="v",...}`) of the two replica signals.
    capacity_metric: str = "replica_capacity"
    termination_metric: str = "replica_termination"
    # Labels naming a series' group and replica: in the queries' results and on /sd targets.
    group_label: str = "group"
    replica_label: str = "replica"
    # Static labels /sd puts on every target (e.g. {autoscaler: a}, to tell two autoscalers
    # sharing a Prometheus apart with a selector).
    target_labels: Mapping[str, str] = field(default_factory=dict)
    bridge_address: str | None = None  # "host:port" of `autoscaler bridge`, for via_bridge groups
    log_level: str = "info"
    # Directory of the configuration file (set by load_config): relative paths in provider
    # options (the local provider's run_dir) mean the same wherever the daemon starts.
    # None for a configuration not read from a file: they stay relative to the cwd.
    base_dir: Path | None = None
    # Directory of the planner's memory (runtime/state_store.py); None: the first local
    # group's run_dir, else `.autoscaler-state` next to the configuration file.
    state_dir: str | None = None
    # Leader election on etcd; None: one instance, guarded by a lock in state_dir.
    ha: HAConfig | None = None
