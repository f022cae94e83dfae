"""High availability on a real etcd (Debian's etcd-server) on loopback.

Electors and the etcd memory store on their own, the controller behind the fencing guard,
then whole daemons: two on one configuration (only one scales; SIGKILL the leader and the
other takes over with the cooldown kept), and one whose etcd stops and comes back.
Short leases (TTL 3 s) keep the file fast; waits poll conditions with timeouts.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from autoscaler.config.errors import ConfigError
from autoscaler.config.schema import HAConfig
from autoscaler.core.model import PlannerState
from autoscaler.core.spec import ScalingBehavior
from autoscaler.providers.registry import parse_config
from autoscaler.runtime.controller import Controller
from autoscaler.runtime.exporter import SharedState
from autoscaler.runtime.ha.etcd import Etcd
from autoscaler.runtime.ha.leader import LeaderElector
from autoscaler.runtime.ha.memory import EtcdMemoryStore, NotLeading
from autoscaler.runtime.metrics import Metrics
from tests import fake_daemon
from tests.harness.etcd import EtcdServer, missing
from tests.harness.exposition import sample_values
from tests.harness.prometheus import REPO, free_port, wait_http
from tests.harness.stack import Stack, local_group

pytestmark = pytest.mark.timeout(120)
TTL = 3


@pytest.fixture
def etcd() -> Iterator[EtcdServer]:
    problem = missing()
    if problem:
        pytest.fail(problem)  # `make test` installs it: a missing etcd is a broken setup
    server = EtcdServer()
    try:
        yield server.start()
    finally:
        server.cleanup()


def ha_config(etcd: EtcdServer, prefix: str, **kw: Any) -> HAConfig:
    values: dict[str, Any] = dict(
        endpoints=(etcd.url,),
        key_prefix=prefix,
        lease_ttl_seconds=TTL,
        renew_seconds=1.0,
        poll_seconds=0.2,
        timeout_seconds=0.5,
        safety_margin_seconds=0.5,
    )
    values.update(kw)
    return HAConfig(**values)


@pytest.fixture
def electors(etcd: EtcdServer) -> Iterator[Callable[..., LeaderElector]]:
    """Started electors on one prefix, stopped at the end."""
    prefix = f"/t-{secrets.token_hex(3)}"
    started: list[LeaderElector] = []

    def start(identity: str, **kw: Any) -> LeaderElector:
        e = LeaderElector(ha_config(etcd, prefix, identity=identity, **kw))
        e.start()
        started.append(e)
        return e

    yield start
    for e in started:
        e.stop()


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 15.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if cond():
                return time.monotonic() - start
        except (requests.RequestException, KeyError, ValueError):
            pass  # a daemon not serving yet, or before its first cycle
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def crash(e: LeaderElector) -> None:
    """The process died: no more renewals, and no revoke (what SIGKILL leaves)."""
    e._stop.set()  # noqa: SLF001
    assert e._thread is not None  # noqa: SLF001
    e._thread.join()  # noqa: SLF001


# --- configuration ---------------------------------------------------------------------


def test_ha_block_errors_name_key_value_and_allowed_all_at_once() -> None:
    raw = {
        "groups": {"web": {**local_group(Path("/tmp/unused")), "provider": {"type": "local"}}},
        "ha": {
            "endpoints": ["ftp://etcd:2379"],
            "key_prefix": "no-slash",
            "lease_ttl_seconds": 1,
            "poll_seconds": 0,
            "identiy": "a",
        },
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw, {})
    text = "\n".join(info.value.errors)
    assert "ha.endpoints[0]: must be an http:// or https:// URL" in text
    assert "'ftp://etcd:2379'" in text
    assert "ha.key_prefix: must be an etcd key prefix starting with '/'" in text
    assert "ha.lease_ttl_seconds: must be an integer >= 2 (got 1)" in text
    assert "ha.poll_seconds: must be a number > 0 (got 0)" in text
    assert "ha.identiy: unknown key (did you mean 'identity'?)" in text
    raw["ha"] = {"endpoints": ["http://127.0.0.1:2379"], "lease_ttl_seconds": 4}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, {})
    assert info.value.errors == [
        "ha.lease_ttl_seconds: must be more than renew_seconds + timeout_seconds + "
        "safety_margin_seconds (1.33333 + 2 + 1 = 4.33333), so the lease is renewed before "
        "it can no longer be guaranteed (got 4)"
    ]
    raw["ha"] = {"endpoints": ["http://127.0.0.1:2379"]}
    ha = parse_config(raw, {}).ha
    assert ha is not None
    assert (ha.lease_ttl_seconds, ha.renew, ha.key_prefix, ha.identity) == (
        10,
        10 / 3,
        "/autoscaler",
        None,
    )


# --- the election on its own -------------------------------------------------------------


def test_one_of_two_leads_and_the_other_takes_over_within_the_ttl_never_both(
    electors: Callable[..., LeaderElector],
) -> None:
    a = electors("a")
    wait_for("a leading", a.is_leader, 5)
    b = electors("b")
    wait_for("b seeing a lead", lambda: b.status()["leader"] == "a", 5)
    time.sleep(1.5)  # several renewals and polls: b still follows
    assert a.is_leader() and not b.is_leader() and b.term() is None and not b.may_act()
    assert a.may_act()
    crash(a)
    died = time.monotonic()
    a_stopped = None  # when a's own clock stopped guaranteeing its lease
    while not b.is_leader():
        if a_stopped is None and not a.is_leader():
            a_stopped = time.monotonic()
        assert time.monotonic() - died < TTL + 3, "b did not take over within the TTL"
        time.sleep(0.01)
    took = time.monotonic() - died
    assert a_stopped is not None, "a still thought it led when b took over"
    assert not a.is_leader() and not a.may_act()
    assert b.status()["leader"] == "b" and b.may_act()
    # TTL + one poll + etcd's 0.5 s expiry tick, with room for a loaded machine.
    assert took <= TTL + 1.5, f"takeover took {took:.2f}s"


def test_a_graceful_stop_hands_over_at_once(electors: Callable[..., LeaderElector]) -> None:
    a = electors("a")
    wait_for("a leading", a.is_leader, 5)
    b = electors("b")
    wait_for("b following", lambda: b.status()["leader"] == "a", 5)
    a.stop()
    took = wait_for("b leading", b.is_leader, 5)
    assert took < TTL / 2, f"handover took {took:.2f}s: the lease was not revoked"


def test_fencing_stops_the_moment_the_key_is_no_longer_ours(
    electors: Callable[..., LeaderElector], caplog: pytest.LogCaptureFixture
) -> None:
    a = electors("a", renew_seconds=1.0)
    wait_for("a leading", a.is_leader, 5)
    # Someone else holds the key now (an operator, a split brain): the next provider
    # action is refused, without waiting for the next renewal.
    a.etcd._post(  # noqa: SLF001
        "kv/put", {"key": _b64(a.key), "value": _b64("intruder")}
    )
    with caplog.at_level(logging.INFO, "autoscaler.ha"):
        assert a.may_act() is False
    assert not a.is_leader()
    assert "leadership lost: the leader key is now held by 'intruder'" in caplog.text


def test_etcd_down_leader_stops_once_the_lease_cannot_be_guaranteed_and_resumes(
    etcd: EtcdServer, electors: Callable[..., LeaderElector], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "autoscaler.ha"):
        a = electors("a")
        wait_for("a leading", a.is_leader, 5)
        etcd.stop()
        # While its own clock still guarantees the lease, a may act (no etcd needed)...
        assert a.may_act()
        lost = wait_for("a stopping", lambda: not a.is_leader(), TTL + 1)
        assert not a.may_act()
        # ...and no later than TTL - margin after the last renewal started (<= TTL - 0.5).
        assert lost <= TTL - 0.5 + 0.5, f"acted {lost:.2f}s into the outage"
        wait_for("the reason in the log", lambda: "not acting any more" in caplog.text, 2)
        time.sleep(0.6)  # more failed renewals: said once, not once per retry
        assert caplog.text.count("etcd unreachable") == 1
        assert caplog.text.count("not acting any more") == 1
        assert "can no longer be guaranteed" in caplog.text
        etcd.start()
        back = wait_for("a leading again", a.is_leader, 15)
        assert a.may_act()
    assert caplog.text.count("leading as a") == 2
    assert "etcd answers again" in caplog.text
    print(f"etcd down: stopped acting after {lost:.2f}s; led again {back:.2f}s after etcd")


# --- the planner memory in etcd -------------------------------------------------------------


# --- the controller behind the guard ---------------------------------------------------------


def test_two_controllers_one_acts_and_the_next_keeps_stabilization_and_cooldown(
    electors: Callable[..., LeaderElector],
) -> None:
    """Two instances on one provider: only the leader creates; after a crash the other
    plans from the leader's memory (no scale-down inside the window, cooldown kept)."""
    clock = fake_daemon.FakeClock()
    provider = fake_daemon.MemoryProvider(clock, count=1)
    spec = fake_daemon.group(
        scale_down=ScalingBehavior(cooldown_seconds=0, stabilization_seconds=60)
    )
    config = fake_daemon.config(spec, Path("/nonexistent"))

    def instance(name: str) -> tuple[Controller, LeaderElector, fake_daemon.SignalReader]:
        e = electors(name)
        reader = fake_daemon.SignalReader(1.0)
        memory = EtcdMemoryStore(e, clock, {"g": 60.0})
        c = Controller(
            config,
            {"g": provider},
            Metrics(),
            SharedState(config.interval_seconds),
            reader=reader,  # type: ignore[arg-type]
            clock=clock,
            memory=memory,
            guard=e,
        )
        return c, e, reader

    ca, ea, ra = instance("a")
    wait_for("a leading", ea.is_leader, 5)
    cb, eb, rb = instance("b")
    for load in (5.0, 1.0, 1.0):  # 5 per replica at target 1: 5 replicas, then steady
        ra.value = rb.value = load
        ca.cycle()
        cb.cycle()
        clock.advance(10)
    assert len(provider.replicas) == 5, "both acted, or none"
    assert cb.metrics.provider_requests.labels("g", "create", "ok")._value.get() == 0  # noqa: SLF001
    assert cb.shared.status["ha"]["leader"] == "a" and not cb.shared.status["ha"]["is_leader"]
    assert cb.groups["g"].decision is not None and cb.groups["g"].decision.desired == 5
    # The memory is the leader's, in etcd: b reads it, and may not overwrite it.
    assert cb.memory is not None and cb.memory.load("g") == ca.groups["g"].state
    with pytest.raises(NotLeading):
        cb.memory.save("g", PlannerState())
    # Demand falls to a fifth; a's window still remembers 5, then a dies.
    ra.value = rb.value = 0.2
    ca.cycle()
    clock.advance(10)
    assert len(provider.replicas) == 5
    crash(ea)
    wait_for("b leading", eb.is_leader, TTL + 2)
    with pytest.raises(NotLeading):
        ca.memory.save("g", PlannerState())  # type: ignore[union-attr] # fenced out by etcd
    cb.cycle()  # b's first cycle as leader: memory from etcd, window holds at 5
    d = cb.groups["g"].decision
    assert d is not None and len(provider.replicas) == 5, d
    assert d.code == "stabilizing", d
    clock.advance(60)
    cb.cycle()
    assert len(provider.replicas) == 1
    ca.close()
    cb.close()


def test_an_action_is_refused_when_leadership_ends_mid_cycle(
    electors: Callable[..., LeaderElector],
) -> None:
    clock = fake_daemon.FakeClock()
    provider = fake_daemon.MemoryProvider(clock, count=1)
    config = fake_daemon.config(fake_daemon.group(), Path("/nonexistent"))
    e = electors("a")
    wait_for("a leading", e.is_leader, 5)
    reader = fake_daemon.SignalReader(4.0)
    c = Controller(
        config,
        {"g": provider},
        Metrics(),
        SharedState(config.interval_seconds),
        reader=reader,  # type: ignore[arg-type]
        clock=clock,
        memory=EtcdMemoryStore(e, clock, {"g": 300.0}),
        guard=e,
    )
    original = provider.create

    def create_after_a_takeover(count: int):  # the key changes hands between plan and act
        raise AssertionError("create called without the lease")

    e.etcd._post("kv/put", {"key": _b64(e.key), "value": _b64("other")})  # noqa: SLF001
    provider.create = create_after_a_takeover  # type: ignore[method-assign]
    try:
        c._term = e.term()  # noqa: SLF001 - the cycle started while still leading
        c.groups["g"].state = PlannerState()
        # may_act reads the key right before the create: refused.
        res = c._provider_call(c.groups["g"], "create", lambda: provider.create(3))  # noqa: SLF001
        assert res is None
        assert "not done, this instance no longer leads" in c.groups["g"].action_errors[0]
    finally:
        provider.create = original  # type: ignore[method-assign]
        c.close()
    assert len(provider.replicas) == 1


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


# --- whole daemons -----------------------------------------------------------------------


class Daemon:
    """`python -m autoscaler run` on the stack's configuration, on its own port."""

    def __init__(self, stack: Stack, name: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = stack.dir / f"{name}.log"
        env = {**stack.env, "AUTOSCALER_LISTEN": f"127.0.0.1:{self.port}"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "autoscaler", "run", "--config", str(stack.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=env,
            )
        wait_http(f"{self.url}/metrics", timeout=20)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        return sum(sample_values(text, name, labels))

    def status(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/status", timeout=5).json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _ha_stack(etcd: EtcdServer, **group: Any) -> Stack:
    ha = {
        "endpoints": [etcd.url],
        "key_prefix": f"/e2e-{secrets.token_hex(3)}",
        "lease_ttl_seconds": TTL,
        "renew_seconds": 1,
        "poll_seconds": 0.2,
        "timeout_seconds": 0.5,
        "safety_margin_seconds": 0.5,
    }
    name = f"web-{secrets.token_hex(2)}"
    return Stack(groups=lambda run: {name: local_group(run, **group)}, extra={"ha": ha})


def _group(stack: Stack) -> str:
    return next(iter(yaml.safe_load(stack.config_path.read_text())["groups"]))


def _live(stack: Stack, d: Daemon | Stack) -> list[str]:
    reps = d.status()["groups"][_group(stack)]["replicas"]
    return sorted(r["id"] for r in reps if r["state"] != "deleting")


def _state_files(stack: Stack) -> list[Path]:
    return sorted(p for p in stack.run_dir.rglob("*.json") if not p.name.startswith("."))


def _creates(d: Daemon, group: str) -> float:
    return d.metric(
        "autoscaler_provider_requests_total",
        {"group": group, "operation": "create", "result": "ok"},
    )


def _marker_pids(group: str) -> set[int]:
    needle = f"AUTOSCALER_REPLICA={group}/".encode()
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes():
                    out.add(int(entry.name))
            except OSError:
                continue
    return out


def test_two_daemons_one_scales_sigkill_the_leader_and_the_other_keeps_the_cooldown(
    etcd: EtcdServer,
) -> None:
    cooldown = 8
    stack = _ha_stack(
        etcd,
        min=3,
        scale_up={"cooldown_seconds": 0},
        scale_down={"cooldown_seconds": cooldown, "stabilization_seconds": 2},
    )
    group = _group(stack)
    daemons: list[Daemon] = []
    try:
        stack.prometheus.start()
        a = Daemon(stack, "a")  # first: it leads
        daemons.append(a)
        wait_for("a leading", lambda: a.metric("autoscaler_leader") == 1, 10)
        b = Daemon(stack, "b", port=stack.port)  # the one Prometheus reads /sd from
        daemons.append(b)
        wait_for("3 replicas", lambda: len(_live(stack, b)) == 3, 30)
        beats = b.metric("autoscaler_heartbeat_total")
        wait_for("2 more cycles", lambda: b.metric("autoscaler_heartbeat_total") >= beats + 2)
        # Only one scaled: 3 replicas, not 6, all created by a.
        assert len(_state_files(stack)) == 3 and len(_marker_pids(group)) == 3
        assert (_creates(a, group), _creates(b, group)) == (3, 0)
        assert (a.metric("autoscaler_leader"), b.metric("autoscaler_leader")) == (1, 0)
        ha_a, ha_b = a.status()["ha"], b.status()["ha"]
        assert ha_a["is_leader"] and ha_a["leader"] == ha_a["identity"]
        assert not ha_b["is_leader"] and ha_b["leader"] == ha_a["identity"]
        json_accept = {"Accept": "application/json"}  # SimpleScaleVM's status document
        for d, master in ((a, True), (b, False)):
            doc = requests.get(f"{d.url}/", headers=json_accept, timeout=5).json()
            assert doc == {"status": 1, "isMaster": master}
        # Demand says 1 from now on: a scales down one step; its cooldown starts.
        config = yaml.safe_load(stack.config_path.read_text())
        config["groups"][group]["min"] = 1
        stack.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        for d in daemons:
            d.proc.send_signal(signal.SIGHUP)
        client = Etcd([etcd.url], 2.0)
        key = f"{config['ha']['key_prefix']}/memory/{group}"

        def scaled_down_at() -> float | None:
            kv = client.get(key)
            return json.loads(kv.value)["last_scale_down"] if kv else None

        wait_for("a's scale-down in etcd", lambda: scaled_down_at() is not None, 30)
        a.stop(signal.SIGKILL)
        killed = time.monotonic()
        stamp = scaled_down_at()
        assert stamp is not None
        wait_for("b seeing 2 replicas", lambda: len(_live(stack, b)) == 2, 5)
        # b takes over within TTL + one interval, and acts (a leader's cycle) at once.
        wait_for("b acting", lambda: b.status()["ha"]["is_leader"], 15)
        took = time.monotonic() - killed
        # TTL + poll + one interval, + etcd's 0.5 s expiry tick and a loaded machine's delays.
        assert took <= TTL + stack.interval + 2.0, f"takeover took {took:.2f}s"
        assert b.metric("autoscaler_leader") == 1
        cooling = b.status()["groups"][group]["cooldown_remaining"].get("down", 0)
        assert cooling > 0, "b lost a's scale-down cooldown"
        assert "planner memory restored from etcd" in b.log()
        wait_for("b scaling down to 1", lambda: len(_live(stack, b)) == 1, 30)
        after = time.time() - stamp
        assert after >= cooldown - 0.3, f"b scaled down {after:.2f}s after a: cooldown lost"
        # Converged without duplicates: one replica, one process, nothing created by b.
        wait_for("one state file", lambda: len(_state_files(stack)) == 1, 15)
        assert len(_marker_pids(group)) == 1 and _creates(b, group) == 0
        print(f"takeover {took:.2f}s after SIGKILL; scale-down {after:.2f}s after a's")
    finally:
        for d in daemons:
            d.stop(signal.SIGKILL)
        stack.cleanup()


def test_daemon_stops_acting_while_etcd_is_down_says_why_and_resumes(etcd: EtcdServer) -> None:
    stack = _ha_stack(etcd, min=2)
    group = _group(stack)
    with stack as s:
        wait_for("leading", lambda: s.metric("autoscaler_leader") == 1, 10)
        wait_for("2 active replicas", lambda: _active(s, group) == 2, 30)
        etcd.stop()
        lost = wait_for("not leading", lambda: s.metric("autoscaler_leader") == 0, TTL + 2)
        wait_for("the reason", lambda: "not acting any more" in s.log_text(), 5)
        # A replica dies while nobody may act: it stays dead, nothing is created or deleted.
        victim = next(iter(_marker_pids(group)))
        os.kill(victim, signal.SIGKILL)
        ops = _ops(s, group)
        beats = s.metric("autoscaler_heartbeat_total")
        wait_for("2 cycles", lambda: s.metric("autoscaler_heartbeat_total") >= beats + 2, 15)
        assert _ops(s, group) == ops and _active(s, group) == 1
        assert s.status()["ha"]["is_leader"] is False and s.status()["ha"]["etcd_error"]
        log = s.log_text()
        assert log.count("etcd unreachable") == 1 and log.count("not acting any more") == 1
        etcd.start()
        back = wait_for("leading again", lambda: s.metric("autoscaler_leader") == 1, 15)
        wait_for("the dead replica replaced", lambda: _active(s, group) == 2, 30)
        assert _ops(s, group) > ops
        assert s.log_text().count("leading as") == 2
        print(f"stopped acting {lost:.2f}s into the outage; led again {back:.2f}s after")


def _active(s: Stack, group: str) -> int:
    return sum(1 for r in s.group(group)["replicas"] if r["state"] == "active")


def _ops(s: Stack, group: str) -> float:
    return sum(
        s.metric("autoscaler_provider_requests_total", {"group": group, "operation": op})
        for op in ("create", "delete")
    )


def test_once_refuses_to_act_beside_the_elected_leader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from autoscaler.cli import main

    group = {**local_group(tmp_path / "run"), "min": 1}
    config = {"groups": {"web": group}, "ha": {"endpoints": ["http://127.0.0.1:9"]}}
    path = tmp_path / "autoscaler.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["once", "--config", str(path)]) == 2
    assert "ha is configured: `once` would act beside the elected leader" in capsys.readouterr().err
    assert not (tmp_path / "run" / "web").exists() or not list((tmp_path / "run").rglob("*.json"))
