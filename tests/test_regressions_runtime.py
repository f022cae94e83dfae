"""Regression tests for the runtime defects of issue #9 (items 1, 9, 10, 13, 14, 22).

Each test asserts the behaviour the issue asks for, through the real Controller, the
real PrometheusReader against a real Prometheus, and the real configuration loader.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from autoscaler.config import Config, PrometheusConfig
from autoscaler.core import planner
from autoscaler.core.model import Replica, ReplicaState
from autoscaler.core.spec import (
    GroupConfig,
    HeadroomPolicyConfig,
    PredictivePolicyConfig,
    ProviderConfig,
    ScalingBehavior,
    TargetPolicyConfig,
)
from autoscaler.providers.base import ActionResult, ReplicaProvider
from autoscaler.providers.registry import build_provider, load_config, parse_config
from autoscaler.runtime.controller import Controller
from autoscaler.runtime.exporter import SharedState
from autoscaler.runtime.metrics import Metrics
from tests.harness.prometheus import PrometheusServer, free_port, idle


class MemoryProvider(ReplicaProvider):
    """In-memory replicas with addresses; list can fail, create can be held back."""

    kind = "memory"

    def __init__(self, group: str, existing: int = 0) -> None:
        self.group = group
        self.replicas: dict[str, Replica] = {}
        self.fail_list = False
        self.hold_create: threading.Event | None = None  # create waits for it when set
        self.created = 0
        for _ in range(existing):
            self._add()

    def _add(self) -> str:
        self.created += 1
        rid = f"{self.group}-{self.created}"
        self.replicas[rid] = Replica(
            rid, self.group, ReplicaState.ACTIVE, time.time(), address=f"127.0.0.1:{self.created}"
        )
        return rid

    def list(self) -> list[Replica]:
        if self.fail_list:
            raise RuntimeError(f"{self.group} cloud API unreachable")
        return list(self.replicas.values())

    def create(self, count: int) -> ActionResult:
        if self.hold_create is not None:
            self.hold_create.wait(10)
        return ActionResult(succeeded=[self._add() for _ in range(count)])

    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        for rid in replica_ids:
            self.replicas.pop(rid, None)
        return ActionResult(succeeded=list(replica_ids))

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    with idle() as prom:
        yield prom


FAST = ScalingBehavior(cooldown_seconds=0, stabilization_seconds=0, max_step_replicas=10)


def _group(name: str, **kw: object) -> GroupConfig:
    base: dict[str, object] = dict(
        name=name,
        provider=ProviderConfig(type="memory"),
        min=0,
        max=10,
        replica_capacity=4,
        policies=(HeadroomPolicyConfig(name="headroom", min_available=8),),
        warmup_seconds=600,  # new replicas count as fully free: no replica metrics needed
        scale_up=FAST,
        scale_down=FAST,
    )
    base.update(kw)
    return GroupConfig(**base)  # type: ignore[arg-type]


def _config(url: str, *groups: GroupConfig) -> Config:
    return Config(
        prometheus=PrometheusConfig(url=url, timeout_seconds=2),
        groups=tuple(groups),
        interval_seconds=0.2,
    )


def _controller(
    config: Config, providers: dict[str, MemoryProvider]
) -> tuple[Controller, Metrics, SharedState]:
    metrics = Metrics()
    shared = SharedState(config.interval_seconds)
    return Controller(config, providers, metrics, shared), metrics, shared


def _sd_replicas(shared: SharedState, group: str) -> set[str]:
    return {t["labels"]["replica"] for t in shared.sd["direct"] if t["labels"]["group"] == group}


# --- 1. one group's bad signal must not stop another group's scale-up ---------------


def _bad_signal_group() -> GroupConfig:
    # A huge but finite value: current * value / target overflows to inf in the policy.
    return _group(
        "bad",
        min=1,
        policies=(TargetPolicyConfig(name="load", query="vector(1e308)", target=0.5),),
    )


def test_one_groups_bad_signal_does_not_stop_another_groups_scale_up(prometheus, caplog) -> None:
    providers = {"bad": MemoryProvider("bad", existing=1), "good": MemoryProvider("good")}
    c, metrics, _ = _controller(
        _config(prometheus.url, _bad_signal_group(), _group("good")), providers
    )
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                c.cycle()  # today: OverflowError from ceil_tolerant(inf) aborts every group
        assert len(providers["good"].replicas) == 2, "the healthy group scaled up"
        assert len(providers["bad"].replicas) == 1, "the failing group held"
    finally:
        c.close()


def test_a_raising_planner_holds_that_group_counts_logs_once_and_others_decide(
    prometheus, caplog, monkeypatch
) -> None:
    real_plan = planner.plan

    def plan(group, obs, state, now):  # noqa: ANN001, ANN202 - same signature as planner.plan
        if group.name == "bad":
            raise ArithmeticError("policy blew up")
        return real_plan(group, obs, state, now)

    monkeypatch.setattr(planner, "plan", plan)
    providers = {"bad": MemoryProvider("bad", existing=1), "good": MemoryProvider("good")}
    config = _config(prometheus.url, _group("bad", min=1), _group("good"))
    c, metrics, _ = _controller(config, providers)
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                c.cycle()
        assert len(providers["good"].replicas) == 2, "the healthy group scaled up"
        assert len(providers["bad"].replicas) == 1, "the failing group held"
        failed = metrics.registry.get_sample_value(
            "requests_failures_total", {"method": "plan", "endpoint": "group:bad"}
        )
        assert failed == 3, f"every failed planning is counted (got {failed})"
        lines = [r.getMessage() for r in caplog.records if "policy blew up" in r.getMessage()]
        assert len(lines) == 1 and "bad" in lines[0], f"logged once, with the group: {lines}"
    finally:
        c.close()


# --- 9. target and predictive query failures recover in the failure log --------------


def test_target_and_predictive_query_failures_recover(caplog) -> None:
    prom = PrometheusServer(
        autoscaler="unused:1", config_text="global: {scrape_interval: 1s}\nscrape_configs: []\n"
    )  # not started yet: every query fails
    group = _group(
        "g",
        policies=(
            TargetPolicyConfig(name="load", query="vector(1)", target=1),
            PredictivePolicyConfig(
                name="forecast", query="vector(2)", demand_per_replica=1, seasons=1
            ),
        ),
    )
    c, _, _ = _controller(_config(prom.url, group), {"g": MemoryProvider("g")})
    try:
        with caplog.at_level(logging.INFO):
            c.cycle()
            assert any("target" in k.label for k in c.failures.failing())
            assert any("predictive" in k.label for k in c.failures.failing())
            prom.start()
            c.cycle()
            assert c.failures.failing() == {}, f"still failing: {c.failures.failing()}"
            recovered = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
            assert any("target" in m for m in recovered), recovered
            assert any("predictive" in m for m in recovered), recovered
            # The next outage with the same error text is logged again.
            prom.stop()
            caplog.clear()
            c.cycle()
            again = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            assert any("target" in m for m in again), again
    finally:
        c.close()
        prom.cleanup()


def test_a_query_failing_every_cycle_stays_failing_and_is_logged_once(prometheus, caplog) -> None:
    group = _group("g", policies=(TargetPolicyConfig(name="load", query="sum(", target=1),))
    c, _, _ = _controller(_config(prometheus.url, group), {"g": MemoryProvider("g")})
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                c.cycle()
        assert [k.label for k in c.failures.failing()] == ["prometheus query target"]
        target = [r.getMessage() for r in caplog.records if "query target" in r.getMessage()]
        assert len(target) == 1 and "failed" in target[0], target
    finally:
        c.close()


# --- 10. /status errors belong to their group, not to any substring of the key ---------


def test_status_errors_are_matched_to_groups_exactly(prometheus) -> None:
    providers = {"web": MemoryProvider("web"), "list": MemoryProvider("list")}
    providers["web"].fail_list = True
    config = _config(prometheus.url, _group("web"), _group("list"))
    c, _, shared = _controller(config, providers)
    try:
        c.cycle()
        groups = shared.status["groups"]
        assert groups["web"]["errors"], "web's own listing failure is shown"
        assert groups["list"]["errors"] == {}, (
            f"group 'list' shows another group's errors: {groups['list']['errors']}"
        )
        assert shared.status["errors"] == {}, "no daemon-wide failure"
    finally:
        c.close()


def test_status_shows_prometheus_failures_at_the_top_level_only() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    c, _, shared = _controller(_config(url, _group("g")), {"g": MemoryProvider("g")})
    try:
        c.cycle()
        assert "prometheus query capacity" in shared.status["errors"]
        assert shared.status["groups"]["g"]["errors"] == {}
    finally:
        c.close()


# --- 13. new replicas reach /sd right after their create -------------------------------


def test_created_replicas_are_in_sd_after_the_cycle_that_created_them(prometheus) -> None:
    providers = {"g": MemoryProvider("g")}
    c, _, shared = _controller(_config(prometheus.url, _group("g")), providers)
    try:
        c.cycle()
        assert len(providers["g"].replicas) == 2
        assert _sd_replicas(shared, "g") == set(providers["g"].replicas), (
            f"/sd lags the create: {shared.sd}"
        )
    finally:
        c.close()


def test_sd_is_published_as_soon_as_a_create_returns(prometheus) -> None:
    """A slow create in another group must not delay this group's new targets."""
    providers = {"fast": MemoryProvider("fast"), "slow": MemoryProvider("slow")}
    release = threading.Event()
    providers["slow"].hold_create = release
    config = _config(prometheus.url, _group("fast"), _group("slow"))
    c, _, shared = _controller(config, providers)
    cycle = threading.Thread(target=c.cycle)
    try:
        cycle.start()
        deadline = time.monotonic() + 5
        while not providers["fast"].replicas and time.monotonic() < deadline:
            time.sleep(0.02)
        while not _sd_replicas(shared, "fast") and time.monotonic() < deadline:
            time.sleep(0.02)
        published = _sd_replicas(shared, "fast")
        still_running = cycle.is_alive()
        release.set()
        cycle.join(10)
        assert still_running, "the slow group's create was still running"
        assert published == set(providers["fast"].replicas), (
            "the fast group's new replicas waited for the whole cycle to reach /sd"
        )
    finally:
        release.set()
        c.close()


# --- 14. dry run logs its decisions, Prometheus reachable or not ----------------------


def test_dry_run_logs_its_decision_while_prometheus_is_unreachable(caplog) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    group = _group("g", min=2, dry_run=True)
    providers = {"g": MemoryProvider("g")}
    c, _, _ = _controller(_config(url, group), providers)
    try:
        with caplog.at_level(logging.INFO):
            c.cycle()
        d = c.groups["g"].decision
        assert d is not None and d.dry_run and d.create == 2
        assert providers["g"].replicas == {}
        lines = [
            r.getMessage()
            for r in caplog.records
            if "dry run" in r.getMessage() and "group g" in r.getMessage()
        ]
        assert lines, "no decision logged in dry run"
        assert f"{d.current} -> {d.desired}" in lines[0], lines
    finally:
        c.close()


def test_dry_run_logs_a_hold_on_missing_data_once(caplog) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    group = _group("g", min=2, dry_run=True, warmup_seconds=0)
    providers = {"g": MemoryProvider("g", existing=2)}
    c, _, _ = _controller(_config(url, group), providers)
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                c.cycle()
        d = c.groups["g"].decision
        assert d is not None and d.direction == "hold" and d.code == "no_data"
        lines = [
            r.getMessage()
            for r in caplog.records
            if "group g" in r.getMessage() and "no_data" in r.getMessage()
        ]
        assert len(lines) == 1, f"the hold is logged once, not every cycle: {lines}"
    finally:
        c.close()


# --- 22. a relative run_dir is relative to the configuration file ---------------------

LOCAL_CONFIG = """
prometheus: {url: "http://127.0.0.1:9090"}
groups:
  web:
    provider: {type: local, run_dir: ./run}
    min: 0
    max: 2
    replica_capacity: 4
    policies: [{type: headroom, min_available: 4}]
"""


def test_relative_run_dir_resolves_against_the_config_files_directory(
    tmp_path: Path, monkeypatch
) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "autoscaler.yaml").write_text(LOCAL_CONFIG)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("../conf/autoscaler.yaml"), {})
    provider = build_provider(config.groups[0], config)
    try:
        assert provider.dir.resolve() == (conf_dir / "run" / "web").resolve(), provider.dir
        assert not (elsewhere / "run").exists(), "state files went to the working directory"
    finally:
        provider.close()


def test_default_run_dir_is_next_to_the_config_file(tmp_path: Path, monkeypatch) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "a.yaml").write_text(LOCAL_CONFIG.replace(", run_dir: ./run", ""))
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("conf/a.yaml"), {})
    assert config.base_dir == conf_dir
    provider = build_provider(config.groups[0], config)
    try:
        assert provider.dir == conf_dir / "run" / "web"
    finally:
        provider.close()


def test_run_dir_without_a_file_stays_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = parse_config(yaml.safe_load(LOCAL_CONFIG), {})
    assert config.base_dir is None
    provider = build_provider(config.groups[0], config)
    try:
        assert provider.dir.resolve() == (tmp_path / "run" / "web").resolve()
    finally:
        provider.close()
