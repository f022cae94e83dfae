"""The autoscaler's own metrics.

`autoscaler_heartbeat_total` and `requests_failures_total{method,endpoint}` keep the names
ScaleIt operators already alert on; the rest follow Prometheus naming (units in names,
`_total` on counters). Every series is registered on a private registry so tests and
several controllers in one process never collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

REPLICA_STATES = ("building", "active", "failed", "deleting", "terminating")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.heartbeat = Counter(
            "autoscaler_heartbeat", "Completed control cycles (ScaleIt-compatible).", registry=r
        )
        self.failures = Counter(
            "requests_failures",
            "Failed calls to Prometheus and providers, and failed planning of a group "
            "(method=plan, endpoint=group:NAME) (ScaleIt-compatible).",
            ["method", "endpoint"],
            registry=r,
        )
        self.last_success = Gauge(
            "autoscaler_last_success_timestamp_seconds",
            "Unix time of the last cycle in which every query and listing succeeded.",
            registry=r,
        )
        self.interval = Gauge(
            "autoscaler_interval_seconds", "Configured time between cycles.", registry=r
        )
        self.leader = Gauge(
            "autoscaler_leader",
            "1 while this instance acts: the HA leader, or the only instance (no ha block).",
            registry=r,
        )
        self.leader.set(1)
        self.cycle_duration = Histogram(
            "autoscaler_cycle_duration_seconds",
            "Duration of a whole control cycle.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.replicas = Gauge(
            "autoscaler_replicas", "Replicas by state.", ["group", "state"], registry=r
        )
        self.desired = Gauge(
            "autoscaler_desired_replicas", "Healthy replicas wanted.", ["group"], registry=r
        )
        self.min_replicas = Gauge(
            "autoscaler_min_replicas", "Configured minimum.", ["group"], registry=r
        )
        self.max_replicas = Gauge(
            "autoscaler_max_replicas", "Configured maximum.", ["group"], registry=r
        )
        self.available = Gauge(
            "autoscaler_available_capacity",
            "Free capacity as the headroom policy counted it (absent when unknown).",
            ["group"],
            registry=r,
        )
        self.min_available = Gauge(
            "autoscaler_min_available", "Headroom policy's min_available.", ["group"], registry=r
        )
        self.warmup = Gauge(
            "autoscaler_warmup_seconds", "Configured warm-up.", ["group"], registry=r
        )
        self.policy_desired = Gauge(
            "autoscaler_policy_desired_replicas",
            "Each policy's recommendation before the planner combines them.",
            ["group", "policy"],
            registry=r,
        )
        self.policy_signal = Gauge(
            "autoscaler_policy_signal",
            "Current value of a target policy's query.",
            ["group", "policy"],
            registry=r,
        )
        self.policy_target = Gauge(
            "autoscaler_policy_target", "A target policy's target.", ["group", "policy"], registry=r
        )
        self.policy_band = Gauge(
            "autoscaler_policy_tolerance_band",
            "Edges of a target policy's tolerance band.",
            ["group", "policy", "edge"],
            registry=r,
        )
        self.decisions = Counter(
            "autoscaler_decisions",
            "Planner decisions by direction and main reason.",
            ["group", "direction", "reason"],
            registry=r,
        )
        self.provider_requests = Counter(
            "autoscaler_provider_requests",
            "Provider operations by result.",
            ["group", "operation", "result"],
            registry=r,
        )
        self.provider_duration = Histogram(
            "autoscaler_provider_request_duration_seconds",
            "Duration of provider operations.",
            ["group", "operation"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.unreported = Gauge(
            "autoscaler_replicas_unreported",
            "Healthy replicas past warm-up with no fresh capacity sample.",
            ["group"],
            registry=r,
        )
        self.cooldown = Gauge(
            "autoscaler_cooldown_remaining_seconds",
            "Time until the planner may scale in this direction again.",
            ["group", "direction"],
            registry=r,
        )
        self.group_info = Gauge(
            "autoscaler_group_info",
            "Static facts about a group (always 1).",
            ["group", "provider", "dry_run"],
            registry=r,
        )
        self.invalid_samples = Counter(
            "autoscaler_invalid_samples",
            "Samples read from Prometheus that could not be used (e.g. several series for "
            "one replica that disagree): missing data for that replica or signal.",
            ["group", "signal", "reason"],
            registry=r,
        )
        # Named as Prometheus and Alertmanager name theirs, so the same alerts apply.
        self.reload_ok = Gauge(
            "autoscaler_config_last_reload_successful",
            "Whether the last configuration load (start or SIGHUP) succeeded (1) or not (0).",
            registry=r,
        )
        self.reload_time = Gauge(
            "autoscaler_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load.",
            registry=r,
        )
        self.quota_exceeded = Counter(
            "autoscaler_quota_exceeded",
            "Creates refused by a provider quota.",
            ["group", "quota"],
            registry=r,
        )

    def remove_group(self, group: str) -> None:
        """Drop every series of a group (a group removed by a reload is no longer exported)."""
        endpoints = {f"provider:{group}", f"group:{group}"}
        for metric in vars(self).values():
            names = getattr(metric, "_labelnames", ())
            if not isinstance(metric, MetricWrapperBase) or not names:
                continue
            for labels in list(getattr(metric, "_metrics", {})):
                by_name = dict(zip(names, labels, strict=True))
                if by_name.get("group") == group or by_name.get("endpoint") in endpoints:
                    metric.remove(*labels)
