"""Hot reload (issue 11): SIGHUP applies a new configuration between cycles.

Controller-level tests build the controller with an in-memory provider (no Prometheus is
queried: apply_config runs between cycles); the end-to-end test sends SIGHUP to the real
daemon (`autoscaler run`) with local replicas and a real Prometheus.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Sequence

import pytest
import requests
import yaml

from autoscaler.config import Config, PrometheusConfig
from autoscaler.core.model import PlannerState
from autoscaler.core.spec import GroupConfig, HeadroomPolicyConfig, ProviderConfig
from autoscaler.providers.base import ActionResult, Provider
from autoscaler.runtime.controller import Controller
from autoscaler.runtime.exporter import SharedState
from autoscaler.runtime.metrics import Metrics
from tests.harness.stack import Stack, local_group
from tests.test_controller import FlakyProvider


class TrackedProvider(FlakyProvider):
    def __init__(self, group: str) -> None:
        super().__init__(group)
        self.closed = False
        self.deleted: list[str] = []

    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        self.deleted.extend(replica_ids)
        return super().delete(replica_ids)

    def close(self) -> None:
        self.closed = True


def _group(name: str, **kw: object) -> GroupConfig:
    fields: dict[str, object] = {
        "name": name,
        "provider": ProviderConfig(type="flaky"),
        "min": 1,
        "max": 5,
        "replica_capacity": 4,
        "policies": (HeadroomPolicyConfig(name="headroom", min_available=4),),
    }
    fields.update(kw)
    return GroupConfig(**fields)  # type: ignore[arg-type]


def _config(*groups: GroupConfig) -> Config:
    return Config(
        prometheus=PrometheusConfig(url="http://127.0.0.1:9", timeout_seconds=1),
        groups=groups,
        interval_seconds=1,
    )


def _sample(m: Metrics, name: str, labels: dict[str, str]) -> float | None:
    return m.registry.get_sample_value(name, labels)


@pytest.fixture
def controller() -> tuple[Controller, dict[str, TrackedProvider]]:
    providers = {n: TrackedProvider(n) for n in ("a", "b")}
    config = _config(_group("a"), _group("b"))
    c = Controller(config, providers, Metrics(), SharedState(1))
    try:
        yield c, providers  # type: ignore[misc]
    finally:
        c.close()


def test_add_remove_change_keeps_memory_and_replicas(controller) -> None:
    c, providers = controller
    providers["b"].create(2)
    memory = PlannerState(recommendations=((100.0, 3),), last_scale_up=123.0)
    c.groups["a"].state = memory
    built: dict[str, TrackedProvider] = {}

    def build(g: GroupConfig) -> Provider:
        built[g.name] = TrackedProvider(g.name)
        return built[g.name]

    changes = c.apply_config(_config(_group("a", max=9), _group("c")), build)

    assert changes == {"added": ["c"], "removed": ["b"], "changed": ["a"]}
    assert list(c.groups) == ["a", "c"]
    assert c.groups["a"].state is memory, "a changed group keeps its planner memory"
    assert c.groups["a"].cfg.max == 9 and c.groups["a"].provider is built["a"]
    assert providers["a"].closed and providers["b"].closed
    assert providers["b"].deleted == [] and len(providers["b"].replicas) == 2
    m = c.metrics
    assert _sample(m, "autoscaler_max_replicas", {"group": "a"}) == 9
    assert _sample(m, "autoscaler_max_replicas", {"group": "c"}) == 5
    assert _sample(m, "autoscaler_max_replicas", {"group": "b"}) is None
    failures = {"method": "list", "endpoint": "provider:b"}
    assert _sample(m, "requests_failures_total", failures) is None
    assert _sample(m, "requests_failures_total", {**failures, "endpoint": "provider:c"}) == 0


def test_a_provider_that_cannot_be_built_changes_nothing(controller) -> None:
    c, providers = controller
    built: list[TrackedProvider] = []

    def build(g: GroupConfig) -> Provider:
        if g.name == "c":
            raise ValueError("no such cloud")
        built.append(TrackedProvider(g.name))
        return built[-1]

    with pytest.raises(ValueError):
        c.apply_config(_config(_group("a", max=9), _group("c")), build)
    assert list(c.groups) == ["a", "b"] and c.groups["a"].cfg.max == 5
    assert not providers["a"].closed and not providers["b"].closed
    assert all(p.closed for p in built), "providers built for the rejected file are closed"


def test_unchanged_group_keeps_its_provider_and_the_reader(controller) -> None:
    c, providers = controller
    reader = c.reader
    config = dataclasses.replace(c.config, groups=c.config.groups[:1])
    c.apply_config(config, lambda g: pytest.fail("nothing to build"))
    assert c.groups["a"].provider is providers["a"] and c.reader is reader


# --- the daemon, SIGHUP -----------------------------------------------------------------
def _write(stack: Stack, groups: dict[str, object], **top: object) -> None:
    doc = yaml.safe_load(stack.config_path.read_text())
    doc["groups"] = groups
    doc.update(top)
    stack.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def test_sighup_applies_a_good_file_and_rejects_a_bad_one() -> None:
    groups = {"keep": {"min": 1}, "drop": {"min": 1}}
    with Stack(groups=lambda d: {n: local_group(d, **o) for n, o in groups.items()}) as s:
        assert s.proc is not None
        s.wait("a replica in each group", lambda: all(len(s.replica_ids(n)) == 1 for n in groups))
        assert s.metric("autoscaler_config_last_reload_successful") == 1
        started = s.metric("autoscaler_config_last_reload_success_timestamp_seconds")
        assert started > 0
        pids = s.replica_pids()
        assert len(pids) == 2

        run_dir = s.run_dir
        _write(
            s,
            {
                "keep": local_group(run_dir, min=2, max=3),
                "new": local_group(run_dir, min=1),
            },
            state_dir=str(s.dir / "elsewhere"),
        )
        s.proc.send_signal(signal.SIGHUP)
        s.wait(
            "the new file applied",
            lambda: (
                sorted(s.status()["groups"]) == ["keep", "new"]
                and len(s.replica_ids("keep")) == 2
                and len(s.replica_ids("new")) == 1
            ),
        )
        assert s.metric("autoscaler_config_last_reload_successful") == 1
        assert s.metric("autoscaler_config_last_reload_success_timestamp_seconds") > started
        assert s.metric("autoscaler_max_replicas", {"group": "keep"}) == 3
        assert 'group="drop"' not in requests.get(f"{s.url}/metrics", timeout=5).text
        assert all(_alive(p) for p in pids), "a removed group's replicas keep running"
        assert "state_dir changed" in s.log_text() and "needs a restart" in s.log_text()

        s.config_path.write_text("groups: {keep: {min: -1}}\n")
        beats = s.metric("autoscaler_heartbeat_total")
        s.proc.send_signal(signal.SIGHUP)
        s.wait(
            "the bad file rejected",
            lambda: s.metric("autoscaler_config_last_reload_successful") == 0,
        )
        s.wait("cycles go on", lambda: s.metric("autoscaler_heartbeat_total") >= beats + 2)
        assert s.proc.poll() is None
        assert sorted(s.status()["groups"]) == ["keep", "new"]
        assert "invalid configuration" in s.log_text()
        assert all(_alive(p) for p in pids)


def test_watch_config_reloads_when_the_file_changes() -> None:
    s = Stack()
    s.run_args = ["--watch-config", "0.5"]
    with s:
        s.wait("started", lambda: s.metric("autoscaler_max_replicas", {"group": "web"}) == 6)
        _write(s, {"web": local_group(s.run_dir, max=4)})
        s.wait("reloaded", lambda: s.metric("autoscaler_max_replicas", {"group": "web"}) == 4)
        assert s.metric("autoscaler_config_last_reload_successful") == 1
