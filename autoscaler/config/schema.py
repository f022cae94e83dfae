"""The daemon-wide configuration around the groups: Prometheus, intervals, endpoints."""

from __future__ import annotations

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
class Config:
    prometheus: PrometheusConfig
    groups: tuple[GroupConfig, ...]
    interval_seconds: float = 10.0
    listen: str = "127.0.0.1:9100"  # /metrics /status /healthz /sd
    capacity_metric: str = "replica_capacity"
    termination_metric: str = "replica_termination"
    bridge_address: str | None = None  # "host:port" of `autoscaler bridge`, for via_bridge groups
    log_level: str = "info"
    # Directory of the configuration file (set by load_config): relative paths in provider
    # options (the local provider's run_dir) mean the same wherever the daemon starts.
    # None for a configuration not read from a file: they stay relative to the cwd.
    base_dir: Path | None = None
