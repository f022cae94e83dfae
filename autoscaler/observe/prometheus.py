"""Prometheus queries -> Observations.

Batched: one query per signal for all groups (replica capacity, replica termination,
one per distinct target-policy query and one range query per distinct predictive-policy
query), split client-side by the `group` label, so the number of queries per cycle does
not grow with the number of groups.

Predictive policies need the history of their query (days of it, for the seasonal
forecast). It is cached per query on a fixed grid of `step` seconds; each cycle fetches
only the part after the cached end (re-reading the newest point, which may have been
evaluated before its last scrape arrived) and drops points the forecast can no longer
use, so memory stays bounded by the policies' look-back.

Samples are read from range selectors (`metric[window]`) so each comes with its own
timestamp: a sample older than the group's `stale_after_seconds` is missing data, never
a value. Values are passed through unchanged (NaN, inf, negative included); the decision
core decides what is usable.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from autoscaler.config import Config, PrometheusConfig
from autoscaler.core.model import Observation, Replica, ReplicaMetrics
from autoscaler.core.policies.predictive import forecast, history_seconds
from autoscaler.core.spec import GroupConfig, PredictivePolicyConfig, TargetPolicyConfig

log = logging.getLogger(__name__)

# Called with the failing query's short name and the error text (already secret-free).
FailureHook = Callable[[str, str], None]


# Prometheus refuses range queries of more than 11,000 points per series; stay below.
MAX_RANGE_POINTS = 10_000
MIN_HISTORY_STEP = 60  # seconds: finer than a minute buys the forecast nothing


@dataclass
class SeriesHistory:
    """One group's points of a predictive query, ascending in time."""

    times: list[float] = field(default_factory=list)
    points: list[tuple[float, float]] = field(default_factory=list)

    def drop_from(self, t: float) -> None:
        """Forget the points at or after `t` (they are about to be fetched again)."""
        cut = bisect.bisect_left(self.times, t)
        del self.times[cut:], self.points[cut:]

    def drop_before(self, t: float) -> None:
        cut = bisect.bisect_left(self.times, t)
        del self.times[:cut], self.points[:cut]


@dataclass
class QueryHistory:
    """The cached history of one predictive query, split by the `group` label."""

    step: int
    end: float | None = None  # newest grid time fetched
    groups: dict[str, SeriesHistory] = field(default_factory=dict)


def history_step(interval_seconds: float, lookback_seconds: float) -> int:
    """Range-query step: the evaluation interval, at least a minute, and coarse enough
    that the whole look-back fits in one query."""
    return max(
        MIN_HISTORY_STEP,
        math.ceil(interval_seconds),
        math.ceil(lookback_seconds / MAX_RANGE_POINTS),
    )


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


def _series_group(series: Mapping, result: Sequence[Mapping], askers: Sequence[str]) -> str | None:
    """The group a result series belongs to: its `group` label, or, for a lone unlabelled
    series, the one group that asked the query."""
    group = series.get("metric", {}).get("group")
    if group is None and len(result) == 1 and len(set(askers)) == 1:
        return askers[0]
    return group


def _to_float(raw: Any) -> float:
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
        self.interval_seconds = config.interval_seconds
        self.on_failure = on_failure or (lambda name, err: None)
        self.queries_last_cycle = 0
        self.history_points_last_cycle = 0  # points received by range queries
        self.histories: dict[str, QueryHistory] = {}  # predictive query -> its cache

    def _query(
        self,
        name: str,
        expr: str,
        span: tuple[float, float, int] | None = None,
    ) -> list[dict] | None:
        """An instant query, or with `span` = (start, end, step) a range query."""
        self.queries_last_cycle += 1
        try:
            self.client.headers = _bearer_headers(self.cfg)
            if span is None:
                return self.client.custom_query(expr)
            start, end, step = span
            return self.client.custom_query_range(
                expr,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=str(step),
                # Prometheus stops evaluating when the client gives up.
                params={"timeout": f"{self.cfg.timeout_seconds:g}s"},
                timeout=self.cfg.timeout_seconds,
            )
        except (requests.RequestException, PrometheusApiClientException, OSError, ValueError) as e:
            self.on_failure(name, f"{type(e).__name__}: {_short(str(e))}")
            return None

    def _history(
        self,
        expr: str,
        policies: Sequence[PredictivePolicyConfig],
        askers: Sequence[str],
        now: float,
    ) -> QueryHistory | None:
        """The query's history up to `now`, updated with one range query; None on failure.

        The cache survives a failed cycle: the next one fetches the gap.
        """
        lookback = max(history_seconds(p) for p in policies)
        step = history_step(self.interval_seconds, lookback)
        end = math.floor(now / step) * step
        oldest = end - math.ceil(lookback / step) * step
        h = self.histories.get(expr)
        if h is None or h.step != step or (h.end is not None and h.end > end):
            h = QueryHistory(step)  # new, re-stepped, or the clock went back: start over
            self.histories[expr] = h
        start = oldest if h.end is None or h.end < oldest else h.end
        res = self._query("predictive", expr, (start, end, step))
        if res is None:
            return None
        fetched: dict[str, dict[float, float]] = {}
        wanted = set(askers)
        for s in res:
            group = _series_group(s, res, askers)
            if group not in wanted:
                continue  # unlabelled, or a group nobody here scales: not worth memory
            into = fetched.setdefault(group, {})
            for ts, raw in s.get("values") or []:
                into[float(ts)] = _to_float(raw)
            self.history_points_last_cycle += len(s.get("values") or [])
        for group in set(h.groups) - wanted:
            del h.groups[group]  # no longer asked for
        for group in set(h.groups) | set(fetched):
            series = h.groups.setdefault(group, SeriesHistory())
            series.drop_from(start)
            for t in sorted(fetched.get(group, {})):
                series.times.append(t)
                series.points.append((t, fetched[group][t]))
            series.drop_before(oldest)  # the forecast never reads older points
            if not series.times:
                del h.groups[group]
        h.end = end
        return h

    @staticmethod
    def _forecast(
        h: QueryHistory | None, group: GroupConfig, policy: PredictivePolicyConfig, now: float
    ) -> float | None:
        """The forecast demand, or None: failed query, no series, or a series that ended."""
        if h is None:
            return None
        series = h.groups.get(group.name)
        if series is None or series.times[-1] < now - h.step - group.stale_after_seconds:
            return None
        f = forecast(series.points, now, policy, series.times)
        return None if f is None else f.value

    def observe(
        self,
        groups: Sequence[GroupConfig],
        replicas: Mapping[str, Sequence[Replica]],
        now: float,
    ) -> dict[str, Observation]:
        """One Observation per group in `replicas` (groups whose listing failed are absent)."""
        self.queries_last_cycle = 0
        self.history_points_last_cycle = 0
        window = max((g.stale_after_seconds for g in groups), default=30.0)
        # Range selectors give each sample's own timestamp, which staleness needs.
        w = f"{max(1, math.ceil(window))}s"
        cap = self._query("capacity", f"{self.capacity_metric}[{w}]")
        term = self._query("termination", f"{self.termination_metric}[{w}]")
        capacity = _latest_samples(cap or [])
        termination = _latest_samples(term or [])
        prometheus_ok = cap is not None and term is not None

        target_askers: dict[str, list[str]] = {}  # query -> groups asking it
        for g in groups:
            for p in g.policies:
                if isinstance(p, TargetPolicyConfig):
                    target_askers.setdefault(p.query, []).append(g.name)
        signals: dict[str, dict[str, float]] = {}  # query -> group -> value
        for expr in sorted(target_askers):
            res = self._query("target", expr)
            if res is None:
                continue
            by_group: dict[str, float] = {}
            for s in res:
                group = _series_group(s, res, target_askers[expr])
                if group is not None and "value" in s:
                    by_group[group] = _to_float(s["value"][1])
            signals[expr] = by_group

        histories: dict[str, QueryHistory | None] = {}
        predictive: dict[str, list[tuple[str, PredictivePolicyConfig]]] = {}
        for g in groups:
            for p in g.policies:
                if isinstance(p, PredictivePolicyConfig):
                    predictive.setdefault(p.query, []).append((g.name, p))
        for expr in sorted(predictive):
            users = predictive[expr]
            askers = sorted({name for name, _ in users})
            histories[expr] = self._history(expr, [p for _, p in users], askers, now)
        for expr in set(self.histories) - set(predictive):
            del self.histories[expr]  # no longer asked for: free it

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
                elif isinstance(p, PredictivePolicyConfig):
                    group_signals[p.name] = self._forecast(histories.get(p.query), g, p, now)
            out[g.name] = Observation(
                group=g.name,
                at=now,
                replicas=tuple(replicas[g.name]),
                metrics=metrics,
                signals=group_signals,
                prometheus_ok=prometheus_ok,
            )
        return out


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
