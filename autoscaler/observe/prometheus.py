"""Prometheus queries -> Observations.

Batched: one query per signal for all groups (replica capacity, replica termination,
one per distinct target-policy query and one range query per distinct predictive-policy
query), split client-side by the group label (`group_label`, default `group`), so the
number of queries per cycle does not grow with the number of groups. The capacity and
termination signals are series selectors (`replica_capacity{job="replicas"}`), so two
autoscalers sharing a Prometheus each read only their own replicas' series.

Predictive policies need the history of their query (days of it, for the seasonal
forecast). It is cached per query on a fixed grid of `step` seconds; each cycle fetches
only the part after the cached end (re-reading the newest point, which may have been
evaluated before its last scrape arrived) and drops points the forecast can no longer
use, so memory stays bounded by the policies' look-back. The history goes to the policy
in `Observation.histories`: the forecast itself is pure decision code, in the core.
Which signal a policy needs is what its spec declares (`signal`: capacity, instant or
history), never its type.

A replica sample older than the group's `stale_after_seconds` is missing data, never a
value: the replica queries ask for each series' newest sample in the range reaching back
exactly that far from the observation time (`last_over_time`, as a range selector reads
samples: a series that ended with a stale marker keeps its last sample until it is too
old), aggregated to the group and replica labels, except for replicas with several
series, which come whole so their disagreement is seen. At 100,000 replicas that is
under a third of the bytes of the raw range selector. Groups with different
`stale_after_seconds` get a pair of queries each. Values are passed through unchanged
(NaN, inf, negative included); the decision core decides what is usable.

What is not data:
- an answer that is not a Prometheus result (see `answer.py`): the query failed;
- several series for one replica (or one group's signal) that disagree, such as a stale
  exporter's 0 beside the real value: no value for that replica, reported as invalid
  (`on_invalid`), never merged by timestamp;
- an answer not complete within the query's deadline (`timeout_seconds`, and all
  queries of a cycle share max(timeout_seconds, interval_seconds)): the query failed.
A stop request interrupts the query in progress and skips the rest of the cycle's.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from autoscaler.config import Config, PrometheusConfig
from autoscaler.config.secrets import registry as secret_registry
from autoscaler.core.model import Observation, Replica, ReplicaMetrics, SignalHistory
from autoscaler.core.spec import GroupConfig, PolicyConfig, SignalKind
from autoscaler.observe.answer import (
    InvalidAnswer,
    ReplicaVector,
    Series,
    parse_answer,
    parse_result,
    replica_vector,
)
from autoscaler.observe.clock_skew import TOLERANCE_SECONDS, ClockSkew
from autoscaler.observe.http import Cancelled, Deadline, fetch
from autoscaler.observe.sessions import PinnedSession

log = logging.getLogger(__name__)

# Called with the failing query's short name and the error text (already secret-free).
FailureHook = Callable[[str, str], None]


@dataclass(frozen=True)
class Invalid:
    """Data Prometheus returned that cannot be used: missing for its replica or group."""

    group: str
    signal: str  # "capacity", "termination", or the name of the policy whose query it is
    replica: str | None  # None for a group-level signal
    reason: str  # "conflict": several series disagree
    detail: str


InvalidHook = Callable[[Invalid], None]

T = TypeVar("T")

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
    """The cached history of one predictive query, split by the group label."""

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


def _session(cfg: PrometheusConfig) -> requests.Session:
    session = PinnedSession()
    session.verify = cfg.ca_file or not cfg.insecure_skip_verify
    # One quick retry when the connection cannot be made, and never once the request is
    # sent: a read timeout retried would double the time a slow Prometheus costs.
    retry = Retry(
        total=1,
        connect=1,
        read=0,
        status=0,
        other=0,
        backoff_factor=0.1,
        allowed_methods=None,
        raise_on_status=False,
    )
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def _headers(cfg: PrometheusConfig) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if cfg.bearer_token_file:
        # Read on every cycle: mounted tokens rotate.
        token = Path(cfg.bearer_token_file).read_text().strip()
        secret_registry.add(token)  # before any error can echo it
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _value_key(v: float) -> float | str:
    return "NaN" if math.isnan(v) else v  # NaN == NaN for "do these series agree?"


def _agreed(values: Sequence[float]) -> float | None:
    """The one value several series agree on, or None when they disagree."""
    return values[0] if len({_value_key(v) for v in values}) == 1 else None


def _disagreement(values: Sequence[float]) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:5])
    return f"{len(values)} series with different values ({shown})"


def _series_group(
    series: Series, result: Sequence[Series], askers: Sequence[str], label: str
) -> str | None:
    """The group a result series belongs to: its group label, or, for a lone unlabelled
    series, the one group that asked the query."""
    group = series.labels.get(label)
    if group is None and len(result) == 1 and len(set(askers)) == 1:
        return askers[0]
    return group


class PrometheusReader:
    """Reads every group's signals from Prometheus in a fixed number of queries.

    The HTTP request is made here with `requests` rather than through
    prometheus-api-client (which `simulate`'s backtest still uses): its `custom_query`
    reads the whole body under a per-read timeout only and returns `data.result` without
    `status` or `resultType`, so it can neither bound a query's total time, nor be
    interrupted by a stop request, nor validate the answer.
    """

    def __init__(
        self,
        config: Config,
        on_failure: FailureHook | None = None,
        on_invalid: InvalidHook | None = None,
    ) -> None:
        self.cfg = config.prometheus
        self.capacity_metric = config.capacity_metric  # a series selector
        self.termination_metric = config.termination_metric
        self.group_label = config.group_label
        self.replica_label = config.replica_label
        self.session = _session(self.cfg)
        self.base_url = self.cfg.url.rstrip("/")
        self.auth = (self.cfg.username, self.cfg.password or "") if self.cfg.username else None
        secret_registry.add_basic(self.cfg.username, self.cfg.password)
        self.interval_seconds = config.interval_seconds
        self.on_failure = on_failure or (lambda name, err: None)
        self.on_invalid = on_invalid or (lambda invalid: None)
        self.queries_last_cycle = 0
        self.history_points_last_cycle = 0  # points received by range queries
        self.skew = ClockSkew()  # sample ages are judged on Prometheus's clock
        self.bytes_last_cycle = 0  # answer bodies received (the bench reports it)
        self.invalid_last_cycle: list[Invalid] = []
        self.histories: dict[str, QueryHistory] = {}  # predictive query -> its cache
        self._cycle_deadline = math.inf
        self._stop: threading.Event | None = None

    def close(self) -> None:
        self.session.close()

    # --- one query ---------------------------------------------------------------------
    def _query(
        self,
        name: str,
        expr: str,
        expect: str,
        span: tuple[float, float, int] | None = None,
    ) -> list[Series] | None:
        """An instant query, or with `span` = (start, end, step) a range query, whose
        result must be of type `expect` ("vector" or "matrix").

        None when it failed (reported through on_failure) or was cut short by a stop.
        """
        return self._ask(name, expr, lambda body, code: parse_answer(body, code, (expect,)), span)

    def _ask(
        self,
        name: str,
        expr: str,
        parse: Callable[[bytes | bytearray, int], T],
        span: tuple[float, float, int] | None = None,
        at: float | None = None,
    ) -> T | None:
        """As `_query`, the answer read by `parse` (which raises InvalidAnswer); `at` is
        an instant query's evaluation time (default: Prometheus' now)."""
        if self._stop is not None and self._stop.is_set():
            return None  # stopping: no more queries, and nothing to report
        start_m = time.monotonic()
        deadline = min(start_m + self.cfg.timeout_seconds, self._cycle_deadline)
        if deadline - start_m < 0.01:
            budget = max(self.cfg.timeout_seconds, self.interval_seconds)
            self.on_failure(name, f"not sent: the cycle's {budget:g}s for queries was spent")
            return None
        self.queries_last_cycle += 1
        # Prometheus stops evaluating when the client gives up.
        params = {"query": expr, "timeout": f"{deadline - start_m:.3f}"}
        path = "/api/v1/query"
        if span is not None:
            path = "/api/v1/query_range"
            params.update(start=f"{span[0]:.3f}", end=f"{span[1]:.3f}", step=str(span[2]))
        elif at is not None:
            params["time"] = f"{at:.3f}"
        try:
            reply = fetch(
                self.session,
                "GET",
                self.base_url + path,
                params=params,
                headers=_headers(self.cfg),
                auth=self.auth,
                deadline=deadline,
                stop=self._stop,
            )
            self.skew.update(reply.date, reply.received_at)
            self.bytes_last_cycle += len(reply.body)
            return parse(reply.body, reply.status_code)
        except Cancelled:
            return None
        except Deadline:
            # Worded the same every cycle, so the failure log says it once.
            if deadline < self._cycle_deadline:
                self.on_failure(name, f"no complete answer within {self.cfg.timeout_seconds:g}s")
            else:
                self.on_failure(name, "no complete answer before the cycle's query budget ran out")
        except InvalidAnswer as e:
            self.on_failure(name, f"invalid answer: {_short(str(e))}")
        except (requests.RequestException, OSError, ValueError) as e:
            self.on_failure(name, f"{type(e).__name__}: {_short(str(e))}")
        return None

    def _invalid(self, invalid: Invalid) -> None:
        self.invalid_last_cycle.append(invalid)
        self.on_invalid(invalid)

    # --- replica signals ---------------------------------------------------------------
    def _replica_expr(self, selector: str, range_ms: int) -> str:
        """Each replica's newest sample within the range, with only its two labels; the
        series themselves, all labels kept, for a replica that has several."""
        g, r = self.group_label, self.replica_label
        last = f"last_over_time({selector}[{range_ms}ms])"
        shared = f"count by ({g}, {r}) ({last}) > 1"
        return f"({last} and on ({g}, {r}) ({shared})) or on ({g}, {r}) max by ({g}, {r}) ({last})"

    def _replica_values(
        self, name: str, selector: str, now: float, stale_after: float
    ) -> ReplicaVector | None:
        """group -> replica -> the newest value of each of its series with a sample at
        or after `now - stale_after`; None on failure.

        Asks for only what is read: one value per series (the newest), and for all but
        the replicas with several series, only the group and replica labels. Evaluated
        at the time the query is sent, over a range reaching back exactly to
        `now - stale_after`: a series whose newest sample is older has none in the range,
        and a series that ended (a stale marker) still counts with its last sample, as a
        range selector reads it.
        """
        # Ages are judged on Prometheus's clock (`skew`, learnt from its answers): when an
        # answer shows it moved by more than the skew's tolerance, the query is asked
        # again on the new reading (the first cycle after a clock step).
        for _ in range(2):
            skew = self.skew.seconds
            answer = self._replica_query(name, selector, now - skew, stale_after, skew)
            if answer is None or abs(self.skew.seconds - skew) <= TOLERANCE_SECONDS:
                break
        return answer

    def _replica_query(
        self, name: str, selector: str, now: float, stale_after: float, skew: float
    ) -> ReplicaVector | None:
        """One replica query; `now` is the observation time on Prometheus's clock."""
        # Prometheus timestamps are whole milliseconds and 2.x ranges include both ends:
        # a sample at t >= now - stale_after is one at or after this millisecond.
        oldest_ms = math.ceil((now - stale_after) * 1000)
        at_ms = max(math.floor((time.time() - skew) * 1000), oldest_ms + 1)
        expr = self._replica_expr(selector, at_ms - oldest_ms)
        fresh_after = now - stale_after
        group_label, replica_label = self.group_label, self.replica_label

        def parse(body: bytes | bytearray, code: int) -> ReplicaVector:
            fast = replica_vector(body, code, group_label, replica_label)
            if fast is not None:
                return fast
            # Anything else: validated in full, and a matrix (a range selector's answer)
            # read too, its newest samples judged here.
            kind, res = parse_result(body, code, ("vector", "matrix"))
            out = ReplicaVector()
            for s in res:
                group, replica = s.labels.get(group_label), s.labels.get(replica_label)
                if group is None or replica is None or not s.samples:
                    continue  # not one of our replicas' series
                ts, value = s.samples[-1]
                if kind == "matrix" and ts < fresh_after:
                    continue
                out.add(group, replica, value)
            return out

        return self._ask(name, expr, parse, at=at_ms / 1000)

    def _conflict(self, values: list[float], group: str, replica: str, signal: str) -> float | None:
        """The value a replica's several series agree on; None, reported, if they do not."""
        value = _agreed(values)
        if value is None:
            self._invalid(Invalid(group, signal, replica, "conflict", _disagreement(values)))
        return value

    # --- predictive history ------------------------------------------------------------
    def _history(
        self,
        expr: str,
        users: Sequence[tuple[str, PolicyConfig]],
        now: float,
    ) -> tuple[QueryHistory | None, set[str]]:
        """The query's history up to `now`, updated with one range query (None on
        failure), and the groups whose series disagreed (no history for them).

        The cache survives a failed cycle: the next one fetches the gap.
        """
        askers = sorted({name for name, _ in users})
        lookback = max(p.lookback_seconds() for _, p in users)
        step = history_step(self.interval_seconds, lookback)
        end = math.floor(now / step) * step
        oldest = end - math.ceil(lookback / step) * step
        h = self.histories.get(expr)
        if h is None or h.step != step or (h.end is not None and h.end > end):
            h = QueryHistory(step)  # new, re-stepped, or the clock went back: start over
            self.histories[expr] = h
        start = oldest if h.end is None or h.end < oldest else h.end
        res = self._query("predictive", expr, "matrix", (start, end, step))
        if res is None:
            return None, set()
        fetched: dict[str, dict[float, float]] = {}
        conflicts: dict[str, list[float]] = {}
        wanted = set(askers)
        for s in res:
            group = _series_group(s, res, askers, self.group_label)
            if group not in wanted:
                continue  # unlabelled, or a group nobody here scales: not worth memory
            into = fetched.setdefault(group, {})
            for ts, v in s.samples:
                if ts in into and _value_key(into[ts]) != _value_key(v):
                    conflicts.setdefault(group, [into[ts]]).append(v)
                into[ts] = v
            self.history_points_last_cycle += len(s.samples)
        for group in set(h.groups) - wanted:
            del h.groups[group]  # no longer asked for
        for group, values in conflicts.items():
            fetched.pop(group)
            h.groups.pop(group, None)
            for name, p in users:
                if name == group:
                    detail = _disagreement(values)
                    self._invalid(Invalid(group, p.name, None, "conflict", detail))
        for group in set(h.groups) | set(fetched):
            series = h.groups.setdefault(group, SeriesHistory())
            series.drop_from(start)
            for t in sorted(fetched.get(group, {})):
                series.times.append(t)
                series.points.append((t, fetched[group][t]))
            series.drop_before(oldest)  # the forecast never reads older points
            if not series.times:
                del h.groups[group]
        # A group dropped for disagreeing series is fetched in full once they agree.
        h.end = None if conflicts else end
        return h, set(conflicts)

    # --- one cycle ---------------------------------------------------------------------
    def observe(
        self,
        groups: Sequence[GroupConfig],
        replicas: Mapping[str, Sequence[Replica]],
        now: float,
        stop: threading.Event | None = None,
    ) -> dict[str, Observation]:
        """One Observation per group in `replicas` (groups whose listing failed are absent).

        `stop`, when set, interrupts the query in progress and skips the others: the
        observations then have no data (prometheus_ok False).
        """
        self.queries_last_cycle = 0
        self.history_points_last_cycle = 0
        self.bytes_last_cycle = 0
        self.invalid_last_cycle = []
        self._stop = stop
        # Every query of the cycle shares one budget: a slow Prometheus costs one
        # interval at most, not a timeout per query.
        budget = max(self.cfg.timeout_seconds, self.interval_seconds)
        self._cycle_deadline = time.monotonic() + budget
        try:
            return self._observe(groups, replicas, now)
        finally:
            self._stop = None
            self._cycle_deadline = math.inf

    def _observe(
        self,
        groups: Sequence[GroupConfig],
        replicas: Mapping[str, Sequence[Replica]],
        now: float,
    ) -> dict[str, Observation]:
        # One pair of queries per distinct stale_after_seconds (usually one for all).
        capacity: dict[float, ReplicaVector] = {}
        termination: dict[float, ReplicaVector] = {}
        prometheus_ok = True
        for stale in sorted({g.stale_after_seconds for g in groups}, reverse=True) or [30.0]:
            c = self._replica_values("capacity", self.capacity_metric, now, stale)
            t = self._replica_values("termination", self.termination_metric, now, stale)
            if c is not None:
                capacity[stale] = c
            if t is not None:
                termination[stale] = t
            prometheus_ok = prometheus_ok and c is not None and t is not None

        target_askers: dict[str, list[str]] = {}  # query -> groups asking it
        for g in groups:
            for p in g.policies:
                if p.signal is SignalKind.INSTANT:
                    target_askers.setdefault(p.query, []).append(g.name)
        signals: dict[str, dict[str, list[float]]] = {}  # query -> group -> values
        for expr in sorted(target_askers):
            res = self._query("target", expr, "vector")
            if res is None:
                continue
            by_group: dict[str, list[float]] = {}
            for s in res:
                group = _series_group(s, res, target_askers[expr], self.group_label)
                if group is not None and s.samples:
                    by_group.setdefault(group, []).append(s.samples[-1][1])
            signals[expr] = by_group

        histories: dict[str, tuple[QueryHistory | None, set[str]]] = {}
        predictive: dict[str, list[tuple[str, PolicyConfig]]] = {}
        for g in groups:
            for p in g.policies:
                if p.signal is SignalKind.HISTORY:
                    predictive.setdefault(p.query, []).append((g.name, p))
        for expr in sorted(predictive):
            histories[expr] = self._history(expr, predictive[expr], now - self.skew.seconds)
        for expr in set(self.histories) - set(predictive):
            del self.histories[expr]  # no longer asked for: free it

        shared = _SharedMetrics()
        out: dict[str, Observation] = {}
        for g in groups:
            if g.name not in replicas:
                continue
            metrics: dict[str, ReplicaMetrics] = {}
            cap_v = capacity.get(g.stale_after_seconds) or ReplicaVector()
            term_v = termination.get(g.stale_after_seconds) or ReplicaVector()
            cap, term = cap_v.values.get(g.name), term_v.values.get(g.name)
            if cap or term:
                cap, term = cap or {}, term or {}
                cap_several, term_several = cap_v.several, term_v.several
                for r in replicas[g.name]:  # 100,000 of them: the common case first
                    rid = r.id
                    mc, mt = cap.get(rid), term.get(rid)
                    if mc is None and mt is None:
                        continue
                    if cap_several and mc is not None and (g.name, rid) in cap_several:
                        mc = self._conflict(cap_several[g.name, rid], g.name, rid, "capacity")
                    if term_several and mt is not None and (g.name, rid) in term_several:
                        mt = self._conflict(term_several[g.name, rid], g.name, rid, "termination")
                    if mc is not None or mt is not None:
                        metrics[rid] = shared(mc, mt)
            group_signals: dict[str, float | None] = {}
            group_histories: dict[str, SignalHistory] = {}
            for p in g.policies:
                if p.signal is SignalKind.INSTANT:
                    values = signals.get(p.query, {}).get(g.name)
                    value = _agreed(values) if values else None
                    if values and value is None:
                        detail = _disagreement(values)
                        self._invalid(Invalid(g.name, p.name, None, "conflict", detail))
                    group_signals[p.name] = value
                elif p.signal is SignalKind.HISTORY:
                    # The policy forecasts from it (core); the lists are this reader's
                    # cache, read within the cycle only.
                    h, conflicted = histories.get(p.query, (None, set()))
                    series = h.groups.get(g.name) if h and g.name not in conflicted else None
                    if h is not None and series is not None:
                        group_histories[p.name] = SignalHistory(series.times, series.points, h.step)
            out[g.name] = Observation(
                group=g.name,
                at=now,
                replicas=tuple(replicas[g.name]),
                metrics=metrics,
                signals=group_signals,
                prometheus_ok=prometheus_ok,
                histories=group_histories,
            )
        return out


class _SharedMetrics:
    """One ReplicaMetrics per distinct (capacity, termination) pair: they are immutable,
    and 100,000 replicas report a handful of distinct values (a fifth of the cycle's
    memory was these objects)."""

    def __init__(self) -> None:
        self._made: dict[tuple[float | None, float | None], ReplicaMetrics] = {}

    def __call__(self, capacity: float | None, termination: float | None) -> ReplicaMetrics:
        made = self._made.get((capacity, termination))
        # 0.0 == -0.0 as a key: the sign of a zero is kept exactly, never taken from another.
        # A zero that is the very object `made` holds has its sign (the usual case: the
        # answer's decoder makes one float per distinct value).
        if (
            made is not None
            and (capacity != 0 or made.capacity is capacity)
            and (termination != 0 or made.termination is termination)
        ):
            return made
        if made is None or _zero_signs(made, capacity, termination):
            made = ReplicaMetrics(capacity=capacity, termination=termination)
            self._made.setdefault((capacity, termination), made)
        return made


def _zero_signs(made: ReplicaMetrics, capacity: float | None, termination: float | None) -> bool:
    """Does `made` hold a zero of another sign than these values?"""
    for mine, theirs in ((made.capacity, capacity), (made.termination, termination)):
        if theirs == 0 and math.copysign(1.0, theirs) != math.copysign(1.0, mine or 0.0):
            return True
    return False


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
