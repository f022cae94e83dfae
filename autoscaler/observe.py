"""Prometheus queries -> Observations.

Batched: one query per signal for all groups (replica capacity, replica termination,
and one per distinct target-policy query), split client-side by the `group` label, so
the number of queries per cycle does not grow with the number of groups.

Samples are read from range selectors (`metric[window]`) so each comes with its own
timestamp: a sample older than the group's `stale_after_seconds` is missing data, never
a value. Values are passed through unchanged (NaN, inf, negative included); the decision
core decides what is usable.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from autoscaler.config import Config, GroupConfig, PrometheusConfig, TargetPolicyConfig
from autoscaler.model import Observation, Replica, ReplicaMetrics

log = logging.getLogger(__name__)

# Called with the failing query's short name and the error text (already secret-free).
FailureHook = Callable[[str, str], None]


@dataclass
class QueryOutcome:
    ok: bool = True
    errors: list[str] = field(default_factory=list)


def _client(cfg: PrometheusConfig) -> PrometheusConnect:
    session = requests.Session()
    session.verify = cfg.ca_file or not cfg.insecure_skip_verify
    auth = (cfg.username, cfg.password or "") if cfg.username else None
    # One quick retry on connection errors only: a slow retry chain would stretch the
    # cycle far past its interval when Prometheus is down.
    retry = Retry(total=1, backoff_factor=0.1, status_forcelist=(), allowed_methods=None)
    return PrometheusConnect(
        url=cfg.url.rstrip("/"),
        auth=auth,
        session=session,
        retry=retry,
        timeout=cfg.timeout_seconds,
    )


def _bearer_headers(cfg: PrometheusConfig) -> dict[str, str] | None:
    if not cfg.bearer_token_file:
        return None
    # Read on every cycle: mounted tokens rotate.
    token = Path(cfg.bearer_token_file).read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def _latest_samples(series: Iterable[Mapping]) -> dict[tuple[str, str], tuple[float, float]]:
    """(group, replica) -> (timestamp, value) of the newest sample of each series."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for s in series:
        labels = s.get("metric", {})
        key = (labels.get("group", ""), labels.get("replica", ""))
        values = s.get("values") or ([s["value"]] if "value" in s else [])
        if not values:
            continue
        ts, raw = values[-1]
        sample = (float(ts), _to_float(raw))
        if key not in out or sample[0] > out[key][0]:
            out[key] = sample
    return out


def _to_float(raw: object) -> float:
    try:
        return float(raw)  # Prometheus encodes NaN/+Inf/-Inf as strings float() understands
    except (TypeError, ValueError):
        return math.nan


class PrometheusReader:
    """Reads every group's signals from Prometheus in a fixed number of queries."""

    def __init__(self, config: Config, on_failure: FailureHook | None = None) -> None:
        self.cfg = config.prometheus
        self.capacity_metric = config.capacity_metric
        self.termination_metric = config.termination_metric
        self.client = _client(self.cfg)
        self.on_failure = on_failure or (lambda name, err: None)
        self.queries_last_cycle = 0

    def _query(self, name: str, expr: str, outcome: QueryOutcome) -> list[dict] | None:
        self.queries_last_cycle += 1
        try:
            self.client.headers = _bearer_headers(self.cfg)
            return self.client.custom_query(expr)
        except (requests.RequestException, PrometheusApiClientException, OSError, ValueError) as e:
            err = f"{type(e).__name__}: {_short(str(e))}"
            outcome.ok = False
            outcome.errors.append(f"{name}: {err}")
            self.on_failure(name, err)
            return None

    def observe(
        self,
        groups: Sequence[GroupConfig],
        replicas: Mapping[str, Sequence[Replica]],
        now: float,
    ) -> dict[str, Observation]:
        """One Observation per group in `replicas` (groups whose listing failed are absent)."""
        self.queries_last_cycle = 0
        outcome = QueryOutcome()
        window = max((g.stale_after_seconds for g in groups), default=30.0)
        # Range selectors give each sample's own timestamp, which staleness needs.
        w = f"{max(1, math.ceil(window))}s"
        cap = self._query("capacity", f"{self.capacity_metric}[{w}]", outcome)
        term = self._query("termination", f"{self.termination_metric}[{w}]", outcome)
        capacity = _latest_samples(cap or [])
        termination = _latest_samples(term or [])
        prometheus_ok = cap is not None and term is not None

        signals: dict[str, dict[str, float]] = {}  # query -> group -> value
        for expr in sorted(
            {p.query for g in groups for p in g.policies if isinstance(p, TargetPolicyConfig)}
        ):
            res = self._query("target", expr, outcome)
            if res is None:
                continue
            by_group: dict[str, float] = {}
            for s in res:
                group = s.get("metric", {}).get("group")
                if group is not None and "value" in s:
                    by_group[group] = _to_float(s["value"][1])
            # A single unlabelled series answers for the one group that asked the query.
            askers = [
                g.name for g in groups for p in g.policies if getattr(p, "query", None) == expr
            ]
            if not by_group and len(res) == 1 and len(askers) == 1 and "value" in res[0]:
                by_group[askers[0]] = _to_float(res[0]["value"][1])
            signals[expr] = by_group

        out: dict[str, Observation] = {}
        for g in groups:
            if g.name not in replicas:
                continue
            fresh_after = now - g.stale_after_seconds
            metrics: dict[str, ReplicaMetrics] = {}
            for r in replicas[g.name]:
                c = capacity.get((g.name, r.id))
                t = termination.get((g.name, r.id))
                mc = c[1] if c and c[0] >= fresh_after else None
                mt = t[1] if t and t[0] >= fresh_after else None
                if mc is not None or mt is not None:
                    metrics[r.id] = ReplicaMetrics(capacity=mc, termination=mt)
            group_signals: dict[str, float | None] = {}
            for p in g.policies:
                if isinstance(p, TargetPolicyConfig):
                    group_signals[p.name] = signals.get(p.query, {}).get(g.name)
            out[g.name] = Observation(
                group=g.name,
                at=now,
                replicas=tuple(replicas[g.name]),
                metrics=metrics,
                signals=group_signals,
                prometheus_ok=prometheus_ok,
            )
        self.last_errors = outcome.errors
        return out


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
