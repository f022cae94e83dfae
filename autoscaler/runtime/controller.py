"""The loop: observe -> decide -> act, for every group, every interval.

Level-triggered: each cycle lists the replicas from the provider and decides from
scratch. The planner's short memory (stabilization window, last accepted action per
direction) is saved every cycle to a store (runtime/state_store.py), so a restart keeps
it; without a usable one, `initial_state` re-seeds it from replica ages.
Intervals and replica ages (runtime/replica_ages.py) are measured on the monotonic clock;
wall time is for observations and export.
The loop never dies on an exception: every failure is counted, logged once, and the
next cycle tries again. Failures are isolated per group: one group's provider or
planning failure holds that group only; every other group still decides and acts.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, TypeVar

from autoscaler.config import Config
from autoscaler.config.replica_api import bridge_params
from autoscaler.core import planner
from autoscaler.core.capacity import available_capacity
from autoscaler.core.clock import Clock, Reading, read
from autoscaler.core.model import (
    Decision,
    Direction,
    Observation,
    PlannerState,
    Replica,
    ReplicaState,
    usable,
)
from autoscaler.core.spec import GroupConfig
from autoscaler.observe.prometheus import Invalid, PrometheusReader
from autoscaler.providers.base import ActionResult, Provider
from autoscaler.runtime.clock import as_clock
from autoscaler.runtime.exporter import SharedState
from autoscaler.runtime.guard import ACTIONS, ActGuard
from autoscaler.runtime.logs import FailureKey, FailureLog
from autoscaler.runtime.metrics import REPLICA_STATES, Metrics
from autoscaler.runtime.replica_ages import ReplicaAges
from autoscaler.runtime.state_store import PlannerMemoryStore

log = logging.getLogger(__name__)
T = TypeVar("T")

# URL builder for groups read through the JSON bridge: (replica, group) -> target URL.
BridgeTarget = Callable[[Replica, GroupConfig], str]


@dataclass
class GroupRuntime:
    cfg: GroupConfig
    provider: Provider
    state: PlannerState | None = None
    replicas: list[Replica] | None = None
    observation: Observation | None = None
    decision: Decision | None = None
    available: float | None = None  # free capacity of the last observation, if known
    acting: Future[None] | None = None  # an action still running from an earlier cycle
    logged: tuple[object, ...] | None = None  # what the last decision log line said
    # Scale actions the provider accepted, (direction, monotonic time), appended by the
    # acting thread and moved into `state` by the cycle (`_remember`).
    accepted: list[tuple[Direction, float]] = field(default_factory=list)
    # What went wrong with the actions decided this cycle ("create: No Flavor found"):
    # reset when the cycle decides, so `autoscaler once` can fail on it.
    action_errors: list[str] = field(default_factory=list)
    # Ages on the monotonic clock from first sight: warm-up immune to wall-clock steps.
    ages: ReplicaAges = field(default_factory=ReplicaAges)


class Controller:
    def __init__(
        self,
        config: Config,
        providers: Mapping[str, Provider],
        metrics: Metrics,
        shared: SharedState,
        *,
        reader: PrometheusReader | None = None,
        bridge_target: BridgeTarget | None = None,
        clock: Clock | Callable[[], float] | None = None,
        memory: PlannerMemoryStore | None = None,
        guard: ActGuard | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.shared = shared
        self.clock = as_clock(clock)  # a plain function serves as both clocks
        self.memory = memory  # None: the planner's memory lives only as long as this process
        self.guard = guard  # None: this instance always acts (runtime/guard.py)
        self._term: int | None = None
        self.failures = FailureLog(log)
        self._failed_queries: set[FailureKey] = set()  # queries that failed in this cycle
        self._sd_lock = threading.Lock()  # /sd is built and published by several threads
        self.reader = reader or PrometheusReader(
            config, on_failure=self._prometheus_failed, on_invalid=self._invalid_sample
        )
        self.bridge_target = bridge_target
        self.groups = {g.name: GroupRuntime(g, providers[g.name]) for g in config.groups}
        self.pool = ThreadPoolExecutor(max_workers=max(1, min(8, len(self.groups))))
        metrics.interval.set(config.interval_seconds)
        for g in config.groups:
            self._export_static(g)
        # Counters exist at 0 from the start, so increase() sees the first failure and the
        # failure panels and alerts have a series to read while all is well.
        metrics.failures.labels("query", "prometheus")
        metrics.failures.labels("cycle", "autoscaler")
        if memory is not None:
            metrics.failures.labels("save", "planner_memory")
        self._count_request_failures()

    def _export_static(self, g: GroupConfig) -> None:
        """A group's configured values as gauges, and its failure counters at 0."""
        metrics = self.metrics
        metrics.min_replicas.labels(g.name).set(g.min)
        metrics.max_replicas.labels(g.name).set(g.max)
        metrics.warmup.labels(g.name).set(g.warmup_seconds)
        metrics.group_info.labels(g.name, g.provider.type, str(g.dry_run).lower()).set(1)
        for p in g.policies:
            points = p.setpoints()  # what each policy's settings show as gauges
            if "min_available" in points:
                metrics.min_available.labels(g.name).set(points["min_available"])
            if "target" in points:
                metrics.policy_target.labels(g.name, p.name).set(points["target"])
            for edge in ("lower", "upper"):
                if edge in points:
                    metrics.policy_band.labels(g.name, p.name, edge).set(points[edge])
        for op in ("list", "create", "delete"):
            metrics.failures.labels(op, f"provider:{g.name}")
        metrics.failures.labels("plan", f"group:{g.name}")

    def _count_request_failures(self) -> None:
        """Providers that name their requests (http: ScaleIt's `get /app/status`,
        `put /app/replicas`) count each failed one under those labels, created at 0."""
        for rt in self.groups.values():
            hook = self._request_failed
            for method, endpoint in rt.provider.report_request_failures(hook):
                self.metrics.failures.labels(method, endpoint)

    def _request_failed(self, method: str, endpoint: str) -> None:
        self.metrics.failures.labels(method, endpoint).inc()

    # --- failure bookkeeping -------------------------------------------------------
    def _prometheus_failed(self, query: str, error: str) -> None:
        self.metrics.failures.labels("query", "prometheus").inc()
        key = FailureKey("prometheus", None, f"query {query}")
        self._failed_queries.add(key)
        self.failures.failed(key, error)

    def _invalid_sample(self, invalid: Invalid) -> None:
        self.metrics.invalid_samples.labels(invalid.group, invalid.signal, invalid.reason).inc()

    def _provider_call(self, rt: GroupRuntime, op: str, fn: Callable[[], T]) -> T | None:
        """Run one provider operation: timed, counted, failures logged once. None on error."""
        key = FailureKey("provider", rt.cfg.name, op)
        if op in ACTIONS and self.guard is not None and not self.guard.may_act():
            log.warning("group %s: %s not done: this instance no longer leads", rt.cfg.name, op)
            rt.action_errors.append(f"{op}: not done, this instance no longer leads")
            return None
        start = time.monotonic()
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - any provider bug must not kill the loop
            self.metrics.failures.labels(op, f"provider:{rt.cfg.name}").inc()
            self.metrics.provider_requests.labels(rt.cfg.name, op, "error").inc()
            self.failures.failed(key, f"{type(e).__name__}: {e}")
            if op in ("create", "delete"):
                rt.action_errors.append(f"{op}: {type(e).__name__}: {e}")
            return None
        finally:
            self.metrics.provider_duration.labels(rt.cfg.name, op).observe(time.monotonic() - start)
        if not (isinstance(result, ActionResult) and result.failed):
            self.failures.ok(key)  # a partial failure is reported by _count_result
        return result

    def _count_result(self, rt: GroupRuntime, op: str, res: ActionResult | None) -> None:
        if res is None:
            return
        g = rt.cfg.name
        if res.succeeded:
            self.metrics.provider_requests.labels(g, op, "ok").inc(len(res.succeeded))
        if res.failed:
            self.metrics.provider_requests.labels(g, op, "error").inc(len(res.failed))
            self.metrics.failures.labels(op, f"provider:{g}").inc(len(res.failed))
            text = "; ".join(f"{i or '?'}: {e}" for i, e in res.failed[:5])
            self.failures.failed(FailureKey("provider", g, op), text)
            rt.action_errors.append(f"{op}: {len(res.failed)} failed: {text}")
        if res.quota_exceeded:
            self.metrics.quota_exceeded.labels(g, res.quota_exceeded).inc()
            self.failures.failed(
                FailureKey("provider", g, "quota"), f"quota exceeded: {res.quota_exceeded}"
            )
        else:
            if op == "create":  # room again: a quota failure once shown is over
                self.failures.ok(FailureKey("provider", g, "quota"))
            if not res.failed:
                self.failures.ok(FailureKey("provider", g, op))

    # --- one cycle -----------------------------------------------------------------
    def cycle(self, stop: threading.Event | None = None) -> bool:
        """Run one observe -> decide -> act cycle. True when every query and listing worked.

        `stop`, once set, interrupts the Prometheus queries, and the cycle ends unacted.
        """
        # A cycle over 100,000 replicas allocates millions of objects, nearly all freed by
        # their reference counts; collections triggered by that count alone were a third
        # of its time. So none during the cycle, and one after it, of the young objects
        # (what the cycle made and kept); the older ones are left to the usual schedule.
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._cycle(stop)
        finally:
            if paused:
                gc.enable()
                gc.collect(1)

    def _cycle(self, stop: threading.Event | None) -> bool:
        start = time.monotonic()
        at = read(self.clock)
        now, wall = at.monotonic, at.wall  # the planner's intervals; observations and export
        leading = self._leading()
        for rt in self.groups.values():
            # The last decision's assessment (a dict and tuples of every replica) is only
            # this cycle's working data, not shown by /status: freed before the listing.
            rt.decision = _shown(rt.decision)
        listed: dict[str, list[Replica]] = {}
        for name, rt in self.groups.items():
            replicas = self._provider_call(rt, "list", rt.provider.list)
            if replicas is not None:
                self.metrics.provider_requests.labels(name, "list", "ok").inc()
                replicas = rt.ages.rebase(replicas, at)
                rt.replicas = replicas
                listed[name] = replicas
                if rt.state is None:
                    rt.state = self._initial_state(rt, replicas, at)
        observations = self._observe(listed, wall, stop)
        if stop is not None and stop.is_set():
            return False  # stopping: observations cut short are no basis for acting
        prometheus_ok = (
            all(o.prometheus_ok for o in observations.values()) if observations else True
        )

        actions: list[Future[None]] = []
        planned = True
        for name, obs in observations.items():
            rt = self.groups[name]
            rt.observation = obs
            rt.action_errors = []
            self._remember(rt)  # actions accepted after the last cycle's wait
            decision = self._decide(rt, obs, now)
            if decision is None:
                planned = False
                continue  # planning failed: this group holds, the others go on
            self.shared.history.record(decision)  # the console's chart and decision log
            if not leading:
                continue  # a follower decides, for /status and /metrics, but never acts
            if decision.dry_run:
                self._log_decision(rt, decision)
                # The plan is exported as if it had been acted on, cooldowns included.
                rt.accepted.append((decision.direction, now))
                continue
            if rt.acting is not None and not rt.acting.done():
                log.info("group %s: previous action still running; not acting this cycle", name)
                continue
            self._log_decision(rt, decision)
            if not (decision.create or decision.delete):
                self._actions_over(rt)
                rt.acting = self.pool.submit(self._reconcile, rt, obs, decision, frozenset())
                actions.append(rt.acting)
                continue
            rt.acting = self.pool.submit(self._act, rt, obs, decision)
            actions.append(rt.acting)
        # Wait for this cycle's actions, bounded: a provider that hangs past its own
        # timeouts leaves its group marked busy instead of stalling every group.
        wait(actions, timeout=max(30.0, 3 * self.config.interval_seconds))
        for name in observations:
            self._remember(self.groups[name])
            if leading:
                self._save_memory(self.groups[name])

        ok = prometheus_ok and len(listed) == len(self.groups)
        self.metrics.heartbeat.inc()
        self.metrics.cycle_duration.observe(time.monotonic() - start)
        if ok:
            # Success is about the dependencies (every query and listing). A group whose
            # planning fails is counted and shown in /status but does not fail /healthz:
            # a restart would not fix its data, and would interrupt every other group.
            # The gauge is a wall stamp for dashboards (time() - it); /healthz judges
            # staleness on its own monotonic clock, which a wall-clock step cannot move.
            self.metrics.last_success.set(wall)
            self.shared.mark_success(wall)
        self.shared.history.forget_others(set(self.groups))  # groups a reload removed
        with self._sd_lock:
            # Built when first read (most cycles nobody asks), from what this cycle saw.
            self.shared.publish(self._status(wall, prometheus_ok), self._sd())
        return ok and planned

    def _observe(
        self,
        listed: Mapping[str, list[Replica]],
        wall: float,
        stop: threading.Event | None = None,
    ) -> dict[str, Observation]:
        """Query Prometheus for every listed group; a query that worked again recovers."""
        self._failed_queries = set()
        groups = [rt.cfg for rt in self.groups.values()]
        observations = self.reader.observe(groups, listed, wall, stop=stop)
        if stop is not None and stop.is_set():
            return observations  # queries cut short by a stop neither failed nor recovered
        # Every query failure (target and predictive too, not only capacity/termination)
        # that did not happen again this cycle is over: log its recovery, so the next
        # outage with the same text is logged again.
        for key in self.failures.failing():
            if key.scope == "prometheus" and key not in self._failed_queries:
                self.failures.ok(key)
        return observations

    def _leading(self) -> bool:
        """Whether this instance acts this cycle. Under HA, a follower, or a leader in a new
        term, drops the memory it holds so the store's (the leader's) is loaded again."""
        if self.guard is None:
            return True
        term = self.guard.term()
        if term is None or term != self._term:
            for rt in self.groups.values():
                rt.state = None
        self._term = term
        return term is not None

    def _decide(self, rt: GroupRuntime, obs: Observation, now: float) -> Decision | None:
        """Plan one group and export the decision; None (the group holds) if that raises.

        Isolated per group: a policy bug or an absurd signal (1e308) in one group must not
        stop the others. The failure is counted, logged once with where it happened, and
        the planner state is left as it was.
        """
        name = rt.cfg.name
        key = FailureKey("planner", name, "plan")
        try:
            decision, state = planner.plan(rt.cfg, obs, rt.state or PlannerState(), now)
            self._export_decision(rt, obs, decision)
        except Exception as e:  # noqa: BLE001 - one group's bug must not stop the others
            self.metrics.failures.labels("plan", f"group:{name}").inc()
            self.failures.failed(key, _describe(e))
            rt.decision = None
            return None
        rt.state = state
        rt.decision = decision
        self.failures.ok(key)
        return decision

    def _log_decision(self, rt: GroupRuntime, d: Decision) -> None:
        """Log every action taken; in dry run and for holds, log when the decision changes.

        A dry run never changes the world, so its decision repeats every cycle: one line
        per change, not one per cycle. Holds (no data, cooldown, in band) likewise.
        """
        acts = bool(d.create or d.delete)
        said: tuple[object, ...] = (
            (d.direction, d.code, d.current, d.desired, d.create, d.delete)
            if acts
            else (d.direction, d.code)
        )
        if said == rt.logged and (d.dry_run or not acts):
            return
        rt.logged = said
        if acts:
            log.info(
                "group %s: %s%s %d -> %d (+%d, -%d) [%s]: %s",
                rt.cfg.name,
                "dry run, would scale " if d.dry_run else "",
                d.direction,
                d.current,
                d.desired,
                d.create,
                len(d.delete),
                d.code,
                d.reason,
            )
        else:
            dry = "dry run, " if d.dry_run else ""
            log.info(
                "group %s: %shold at %d [%s]: %s", rt.cfg.name, dry, d.current, d.code, d.reason
            )

    def _act(self, rt: GroupRuntime, obs: Observation, decision: Decision) -> None:
        self._reconcile(rt, obs, decision, frozenset(decision.delete))
        if decision.delete:
            ids = list(decision.delete)
            res = self._provider_call(rt, "delete", lambda: rt.provider.delete(ids))
            self._count_result(rt, "delete", res)
            self._accepted(rt, decision, Direction.DOWN, res)
        if decision.create:
            res = self._provider_call(rt, "create", lambda: rt.provider.create(decision.create))
            self._count_result(rt, "create", res)
            self._accepted(rt, decision, Direction.UP, res)
            if res is not None and res.succeeded:
                self._publish_created(rt)

    def _actions_over(self, rt: GroupRuntime) -> None:
        """Nothing to create or delete: an earlier action's failure (a create whose answer
        was lost after the work was done, a quota) is over, not shown in /status forever."""
        for op in ("create", "delete", "quota"):
            self.failures.ok(FailureKey("provider", rt.cfg.name, op))

    # --- the planner's memory ------------------------------------------------------
    def _initial_state(
        self, rt: GroupRuntime, replicas: list[Replica], at: Reading
    ) -> PlannerState:
        """The memory a restarted daemon saved (with the replicas created after it counted
        as a scale-up), else one seeded from the newest replica."""
        if self.memory is not None:
            try:
                saved = self.memory.load(rt.cfg.name)
            except Exception as e:  # noqa: BLE001 - a bad store must not stop scaling
                log.warning("planner memory of group %s unreadable: %s", rt.cfg.name, e)
                saved = None
            if saved is not None:
                return planner.with_replica_evidence(saved, replicas, at)
        return planner.initial_state(replicas, at)

    def _accepted(
        self, rt: GroupRuntime, decision: Decision, direction: Direction, res: ActionResult | None
    ) -> None:
        """A scale action's cooldown starts once the provider accepted part of it (issue #9:
        a create that raised, hit a quota or failed for every replica starts none)."""
        if decision.direction is direction and res is not None and res.succeeded:
            rt.accepted.append((direction, self.clock.monotonic()))

    def _remember(self, rt: GroupRuntime) -> None:
        """Move accepted actions into the planner's memory (in the cycle's thread)."""
        while rt.accepted and rt.state is not None:
            direction, at = rt.accepted.pop(0)
            rt.state = planner.record_action(rt.state, direction, at)

    def _save_memory(self, rt: GroupRuntime) -> None:
        if self.memory is None or rt.state is None:
            return
        key = FailureKey("planner", rt.cfg.name, "memory save")
        try:
            self.memory.save(rt.cfg.name, rt.state)
        except Exception as e:  # noqa: BLE001 - scaling goes on with the memory in RAM
            self.metrics.failures.labels("save", "planner_memory").inc()
            self.failures.failed(key, f"{type(e).__name__}: {e}")
        else:
            self.failures.ok(key)

    def _publish_created(self, rt: GroupRuntime) -> None:
        """Re-list the group and publish /sd now, so Prometheus starts discovering the new
        replicas at once instead of one interval later (which could outlast warm-up)."""
        replicas = self._provider_call(rt, "list", rt.provider.list)
        if replicas is None:
            return  # counted and logged; the next cycle's listing publishes them
        self.metrics.provider_requests.labels(rt.cfg.name, "list", "ok").inc()
        # Seen right after creation: their age starts now, whatever the wall clock does.
        rt.replicas = rt.ages.rebase(replicas, read(self.clock))
        with self._sd_lock:
            self.shared.publish_sd(self._sd())

    def _reconcile(
        self, rt: GroupRuntime, obs: Observation, decision: Decision, removing: frozenset[str]
    ) -> None:
        """Let the provider move external addresses onto healthy replicas.

        Healthy = active, reporting fresh metrics, not asking for termination and not about
        to be deleted. Runs before deletes, and every cycle (not only when scaling), so a
        replica that hangs while the group holds steady loses its address too.
        """
        if not rt.provider.reconciles_addresses or not obs.prometheus_ok:
            return  # without metrics every replica would look hung
        terminating = obs.terminating_ids()
        reporting = decision.assessment.capacity if decision.assessment else {}
        healthy = frozenset(
            r.id
            for r in obs.replicas
            if r.state is ReplicaState.ACTIVE
            and r.id not in removing
            and r.id not in terminating
            and r.id in reporting
        )
        self._provider_call(rt, "reconcile", lambda: rt.provider.reconcile(healthy, removing))

    # --- what the world sees -------------------------------------------------------
    def _export_decision(self, rt: GroupRuntime, obs: Observation, d: Decision) -> None:
        m, g = self.metrics, rt.cfg.name
        terminating = obs.terminating_ids()
        counts = dict.fromkeys(REPLICA_STATES, 0)
        for r in obs.replicas:
            counts["terminating" if r.id in terminating else r.state.value] += 1
        for state, n in counts.items():
            m.replicas.labels(g, state).set(n)
        m.desired.labels(g).set(d.desired)
        m.decisions.labels(g, d.direction, d.code).inc()
        for p in d.proposals:
            if p.desired is not None:
                m.policy_desired.labels(g, p.policy).set(p.desired)
            else:
                _remove(m.policy_desired, g, p.policy)
        for name, value in policy_signals(obs, d).items():
            if value is not None and usable(value):
                m.policy_signal.labels(g, name).set(value)
            else:
                _remove(m.policy_signal, g, name)
        a = d.assessment
        assert a is not None  # the planner always records what it decided from
        available = rt.available = available_capacity(obs, a)
        if available is None:
            _remove(m.available, g)
        else:
            m.available.labels(g).set(available)
        m.unreported.labels(g).set(len(a.unreported))
        for direction in ("up", "down"):
            m.cooldown.labels(g, direction).set(d.cooldown_remaining.get(direction, 0.0))

    def _status(self, now: float, prometheus_ok: bool) -> Callable[[], dict[str, Any]]:
        """/status as of now: what it shows is captured here (the cycle's results are
        immutable), the document is built by the returned function, when first read."""
        view = StatusView(
            now=now,
            prometheus_ok=prometheus_ok,
            interval_seconds=self.config.interval_seconds,
            queries=self.reader.queries_last_cycle,
            invalid=tuple(self.reader.invalid_last_cycle),
            failing=tuple(self.failures.failing().items()),
            groups=tuple(
                (rt.cfg, rt.replicas, rt.observation, _shown(rt.decision), rt.available)
                for rt in self.groups.values()
            ),
            extra={"ha": self.guard.status()} if self.guard is not None else {},
        )
        return view.render

    def _sd(self) -> Callable[[], dict[str, list[dict[str, Any]]]]:
        """The /sd documents of the replicas listed now, built when first read."""
        view = SdView(
            groups=tuple((rt.cfg, rt.replicas) for rt in self.groups.values()),
            target_labels=self.config.target_labels,
            group_label=self.config.group_label,
            replica_label=self.config.replica_label,
            bridge_target=self.bridge_target,
        )
        return view.render

    # --- reload ----------------------------------------------------------------------
    def busy(self) -> bool:
        """An action from an earlier cycle is still running (a reload waits for it)."""
        return any(rt.acting is not None and not rt.acting.done() for rt in self.groups.values())

    def apply_config(
        self, config: Config, build: Callable[[GroupConfig], Provider]
    ) -> dict[str, list[str]]:
        """Switch to a new, validated configuration between cycles.

        New groups get a provider from `build`; a changed group gets a new provider but
        keeps its planner memory; a removed group's provider is closed, its series are
        dropped, and its replicas are left running. Every provider is built before anything
        changes, so a `build` that raises leaves the running configuration whole.
        Returns the group names {"added": [...], "removed": [...], "changed": [...]}.
        """
        old = {name: rt.cfg for name, rt in self.groups.items()}
        new = {g.name: g for g in config.groups}
        added = [n for n in new if n not in old]
        removed = [n for n in old if n not in new]
        changed = [n for n in new if n in old and new[n] != old[n]]
        built: dict[str, Provider] = {}
        try:
            for name in added + changed:
                built[name] = build(new[name])
        except BaseException:
            for n, p in built.items():
                _close(p, n)
            raise
        for name in removed:
            rt = self.groups.pop(name)
            _close(rt.provider, name)
            self.metrics.remove_group(name)
            with self.failures.lock:  # forgotten, not "recovered": the group is gone
                for key in [k for k in self.failures.active if k.group == name]:
                    del self.failures.active[key]
        for name in changed:
            rt = self.groups[name]
            _close(rt.provider, name)
            self.metrics.remove_group(name)  # labels (policies, provider) may differ now
            # Same object: the planner memory (state), replicas and last decision stay.
            rt.cfg, rt.provider, rt.logged = new[name], built[name], None
        for name in added:
            self.groups[name] = GroupRuntime(new[name], built[name])
        self.groups = {n: self.groups[n] for n in new}  # the file's order
        horizons = getattr(self.memory, "horizons", None)
        if isinstance(horizons, dict):
            horizons.update({n: planner.memory_horizon(new[n]) for n in added + changed})
        if _reader_settings(config) != _reader_settings(self.config):
            self.reader.close()
            self.reader = PrometheusReader(
                config, on_failure=self._prometheus_failed, on_invalid=self._invalid_sample
            )
        self.config = config
        self.shared.interval = config.interval_seconds
        self.metrics.interval.set(config.interval_seconds)
        for name in added + changed:
            self._export_static(new[name])
        self._count_request_failures()
        if len(self.groups) > self.pool._max_workers:  # noqa: SLF001
            old_pool, self.pool = self.pool, ThreadPoolExecutor(min(8, len(self.groups)))
            old_pool.shutdown(wait=False)  # idle: reloads wait until no action runs
        return {"added": added, "removed": removed, "changed": changed}

    # --- the loop ------------------------------------------------------------------
    def run(
        self,
        stop: threading.Event,
        reload: threading.Event | None = None,
        on_reload: Callable[[], object] | None = None,
    ) -> None:
        """Cycle every interval until `stop` is set; a stop request interrupts the
        cycle's Prometheus queries (an action already started runs to its end).

        `reload`, once set (by SIGHUP), has `on_reload` called between two cycles, never
        during one, and once no earlier action is still running; the interval's pace is kept.
        """
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.cycle(stop)
            except Exception:  # noqa: BLE001 - the loop must survive its own bugs too
                self.metrics.failures.labels("cycle", "autoscaler").inc()
                log.exception("cycle failed unexpectedly; continuing")
            while not stop.is_set():
                left = self.config.interval_seconds - (time.monotonic() - started)
                if reload is not None and on_reload is not None and reload.is_set():
                    if not self.busy():
                        reload.clear()
                        try:
                            on_reload()
                        except Exception:  # noqa: BLE001 - a reload bug must not stop scaling
                            log.exception("reload failed unexpectedly; configuration unchanged")
                        continue
                if left <= 0:
                    break
                # SIGHUP sets `reload`, not `stop`, so waiting on `stop` alone would not see it.
                stop.wait(left if reload is None else min(left, 0.2))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        for rt in self.groups.values():
            try:
                rt.provider.close()
            except Exception as e:  # noqa: BLE001 - closing must not mask the shutdown
                log.warning("closing provider of %s: %s", rt.cfg.name, e)


@dataclass(frozen=True)
class StatusView:
    """What one cycle's /status shows, captured at the end of the cycle."""

    now: float
    prometheus_ok: bool
    interval_seconds: float
    queries: int
    invalid: tuple[Invalid, ...]
    failing: tuple[tuple[FailureKey, str], ...]
    # per group: config, replicas listed, observation, decision, free capacity
    groups: tuple[
        tuple[GroupConfig, list[Replica] | None, Observation | None, Decision | None, float | None],
        ...,
    ]
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"ha": ...}

    def render(self) -> dict[str, Any]:
        now = self.now
        errors: dict[str | None, dict[str, str]] = {}
        for key, message in self.failing:
            errors.setdefault(key.group, {})[key.label] = message
        invalid_by_group: dict[str, list[Invalid]] = {}
        for i in self.invalid:
            invalid_by_group.setdefault(i.group, []).append(i)
        groups: dict[str, Any] = {}
        for cfg, listed, obs, d, available in self.groups:
            name = cfg.name
            invalid = invalid_by_group.get(name, [])
            bad_by_replica: dict[str | None, dict[str, str]] = {}
            for i in invalid:
                bad_by_replica.setdefault(i.replica, {})[i.signal] = i.detail
            replicas: list[dict[str, Any]] = []
            for r in listed or []:
                sample = obs.metrics.get(r.id) if obs else None
                entry: dict[str, Any] = {
                    "id": r.id,
                    "name": r.name,
                    "state": r.state.value,
                    "address": r.address,
                    "created_at": r.created_at,
                    "in_warmup": r.in_warmup(now, cfg.warmup_seconds),
                    "capacity": _json_number(sample.capacity) if sample else None,
                    "termination": _json_number(sample.termination) if sample else None,
                }
                bad = bad_by_replica.get(r.id)
                if bad:
                    entry["invalid"] = bad  # e.g. {"capacity": "2 series with different ..."}
                replicas.append(entry)
            groups[name] = {
                "provider": cfg.provider.type,
                "min": cfg.min,
                "max": cfg.max,
                "dry_run": cfg.dry_run,
                "replicas": replicas,
                "observation": None
                if obs is None
                else {
                    "at": obs.at,
                    "prometheus_ok": obs.prometheus_ok,
                    "available_capacity": available,
                    "signals": {k: _json_number(v) for k, v in policy_signals(obs, d).items()},
                    "replicas_reporting": sum(
                        1 for v in obs.metrics.values() if v.capacity is not None
                    ),
                    "invalid": [
                        {
                            "signal": i.signal,
                            "replica": i.replica,
                            "reason": i.reason,
                            "detail": i.detail,
                        }
                        for i in invalid
                    ],
                },
                "decision": None if d is None else decision_json(d),
                "cooldown_remaining": dict(d.cooldown_remaining) if d else {},
                "errors": errors.get(name, {}),
            }
        return {
            "at": now,
            "interval_seconds": self.interval_seconds,
            "prometheus_ok": self.prometheus_ok,
            "errors": errors.get(None, {}),  # daemon-wide: Prometheus
            "queries_last_cycle": self.queries,
            "groups": groups,
            **self.extra,
        }


@dataclass(frozen=True)
class SdView:
    """The replicas /sd offers Prometheus, as listed when captured."""

    groups: tuple[tuple[GroupConfig, list[Replica] | None], ...]
    target_labels: Mapping[str, str]
    group_label: str
    replica_label: str
    bridge_target: BridgeTarget | None

    def render(self) -> dict[str, list[dict[str, Any]]]:
        """Prometheus http_sd documents: replicas scraped directly, and those via the bridge."""
        sd: dict[str, list[dict[str, Any]]] = {"direct": [], "bridge": []}
        for cfg, listed in self.groups:
            name = cfg.name
            # Oldest first: a "first available" load balancer then packs work onto old
            # replicas and leaves the newest idle, which are the cheapest to remove.
            for r in sorted(listed or [], key=lambda r: (r.created_at, r.id)):
                if not r.address or r.state is ReplicaState.DELETING:
                    continue
                labels = {
                    **self.target_labels,
                    self.group_label: name,
                    self.replica_label: r.id,
                }
                if cfg.via_bridge and self.bridge_target is not None:
                    # The group's own JSON keys travel as /probe parameters (__param_*).
                    labels.update(bridge_params(cfg))
                    sd["bridge"].append({"targets": [self.bridge_target(r, cfg)], "labels": labels})
                elif not cfg.via_bridge:
                    sd["direct"].append({"targets": [r.address], "labels": labels})
        return sd


def _close(provider: Provider, group: str) -> None:
    try:
        provider.close()
    except Exception as e:  # noqa: BLE001 - closing must not stop a reload or a shutdown
        log.warning("closing provider of %s: %s", group, e)


def _shown(d: Decision | None) -> Decision | None:
    """The decision as /status shows it: without its assessment, which holds every
    replica of the group again (at 100,000 replicas, 4 MB kept a whole cycle longer)."""
    if d is None or d.assessment is None:
        return d
    return replace(d, assessment=None)


def _reader_settings(config: Config) -> tuple[object, ...]:
    """What the Prometheus reader is built from: unchanged, it (and its history) is kept."""
    return (
        config.prometheus,
        config.capacity_metric,
        config.termination_metric,
        config.group_label,
        config.replica_label,
        config.interval_seconds,
    )


def _describe(e: Exception) -> str:
    """`Type: message (at file:line in function)`: where it broke, stable across cycles so
    FailureLog says it once."""
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return f"{type(e).__name__}: {e}"
    f = frames[-1]
    return f"{type(e).__name__}: {e} (at {os.path.basename(f.filename)}:{f.lineno} in {f.name})"


def policy_signals(obs: Observation, d: Decision | None) -> dict[str, float | None]:
    """Each policy's signal: its query's value, or what it computed from it (a forecast)."""
    out = dict(obs.signals)
    for p in d.proposals if d else ():
        if p.signal is not None or p.policy not in out:
            out[p.policy] = p.signal
    return out


def _remove(gauge: Any, *labels: str) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:
        pass


def _json_number(v: float | None) -> float | str | None:
    """JSON has no NaN or infinity: show those as strings rather than break the document."""
    if v is None:
        return None
    return v if math.isfinite(v) else str(v)


def decision_json(d: Decision) -> dict[str, Any]:
    out = {f.name: getattr(d, f.name) for f in fields(d) if f.name != "assessment"}
    out["details"] = list(d.details)
    out["delete"] = list(d.delete)
    out["proposals"] = [asdict(p) for p in d.proposals]
    out["cooldown_remaining"] = dict(d.cooldown_remaining)
    return out
