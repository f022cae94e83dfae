"""End to end on a real Prometheus (1 s scrapes) with real local replica processes.

Each test builds its own stack (tests/harness/stack.py) and tears it down, replicas
included. Thresholds are counted in cycles (heartbeats), not seconds, so a slow machine
does not turn them into flakes.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path

import pytest
import requests

from autoscaler.demo.loadgen import LoadGenerator, constant
from tests.harness.stack import Stack, local_group

pytestmark = pytest.mark.timeout(240)


def _marker_pids(group: str) -> set[int]:
    """Live processes started for this group, found by the local provider's env marker."""
    needle = f"AUTOSCALER_REPLICA={group}/".encode()
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                out.add(int(entry.name))
        except OSError:
            continue
    return out


def _unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def _stack(name: str, **overrides: object) -> Stack:
    return Stack(groups=lambda run_dir: {name: local_group(run_dir, **overrides)})


def _reporting(stack: Stack, name: str, n: int) -> bool:
    reps = stack.group(name)["replicas"]
    active = [r for r in reps if r["state"] == "active" and r["capacity"] is not None]
    return len(active) >= n


def _load(stack: Stack, rps: float) -> LoadGenerator:
    return LoadGenerator(
        constant(rps),
        lambda: stack.sd_targets(),
        balance="first",
        poisson=False,
        targets_refresh_seconds=1.0,
        timeout_seconds=3.0,
    )


def test_demand_rise_adds_replicas_within_three_cycles() -> None:
    name = _unique("rise")
    with _stack(name) as s:
        s.wait("the first replica reporting", lambda: _reporting(s, name, 1), 60)
        with _load(s, 12.0):  # 12/s x 0.5 s = 6 busy slots > 4 slots of one replica
            s.prometheus.wait_for(
                f'sum(replica_capacity{{group="{name}"}}) < 4', timeout=30
            )  # the shortfall is now visible in Prometheus
            beats = s.metric("autoscaler_heartbeat_total")
            s.wait("a second replica", lambda: len(s.replica_ids(name)) >= 2, 30)
            cycles = s.metric("autoscaler_heartbeat_total") - beats
            assert cycles <= 3, f"scale-up took {cycles} cycles after Prometheus saw the shortfall"
            d = s.group(name)["decision"]
            assert d["code"] in ("headroom_short", "in_band", "stabilizing")
            ups = s.metric("autoscaler_decisions_total", {"group": name, "direction": "up"})
            assert ups >= 1


def test_demand_fall_removes_idle_replicas_after_stabilization_keeps_busy() -> None:
    name = _unique("fall")
    window = 6
    with _stack(
        name,
        scale_down={"cooldown_seconds": 0, "stabilization_seconds": window, "max_step_replicas": 1},
    ) as s:
        s.wait("the first replica reporting", lambda: _reporting(s, name, 1), 60)
        with _load(s, 12.0):
            s.wait("scale-up to 3", lambda: len(s.replica_ids(name)) >= 3, 60)
            s.wait("3 replicas reporting", lambda: _reporting(s, name, 3), 60)
        oldest = min(s.group(name)["replicas"], key=lambda r: r["created_at"])["id"]
        with _load(s, 2.0):  # 1 busy slot, packed onto the first (oldest) replica
            # Timed on the autoscaler's own clock: the cycle of its first recommendation
            # below the current count, and the cycle of its first scale-down.
            first_low, first_down = _watch_scale_in(s, name, timeout=90)
            waited = first_down - first_low
            # A dip must persist for the whole window before anything is removed
            # (one interval of slack: the window is measured between cycle times).
            assert waited >= window - s.interval, f"removed after {waited:.1f}s, window {window}s"
            s.wait("settled at 2 replicas", lambda: len(s.replica_ids(name)) == 2, 60)
            time.sleep(4 * s.interval)
            ids = s.replica_ids(name)
            assert len(ids) == 2, "1 busy + 1 idle keeps min_available 4; nothing more to remove"
            assert oldest in ids, "the busy replica was removed instead of an idle one"
        downs = s.metric("autoscaler_decisions_total", {"group": name, "direction": "down"})
        assert downs >= 1


def _watch_scale_in(s: Stack, name: str, timeout: float) -> tuple[float, float]:
    """Decision times (autoscaler clock) of the first low recommendation and first scale-down.

    /status is polled several times per cycle so no cycle's decision is missed.
    """
    first_low: float | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            d = s.group(name)["decision"]
        except (requests.RequestException, KeyError, ValueError):
            d = None
        if d:
            wanted = [p["desired"] for p in d["proposals"] if p["desired"] is not None]
            if first_low is None and wanted and max(wanted) < d["current"]:
                first_low = d["at"]
            if d["direction"] == "down":
                assert first_low is not None, f"scaled down with no low recommendation: {d}"
                return first_low, d["at"]
        time.sleep(0.2)
    raise AssertionError(f"no scale-down within {timeout}s\n{s.log_text()[-3000:]}")


def test_replica_asking_for_termination_is_removed_and_replaced() -> None:
    name = _unique("term")
    with _stack(name, min=2) as s:
        s.wait("two replicas reporting", lambda: _reporting(s, name, 2), 60)
        victim = s.group(name)["replicas"][0]
        r = requests.post(f"http://{victim['address']}/terminate", timeout=5)
        assert r.status_code in (200, 204)
        s.wait(
            "the terminating replica removed", lambda: victim["id"] not in s.replica_ids(name), 60
        )
        s.wait("replaced to min 2", lambda: len(s.replica_ids(name)) == 2, 60)
        assert s.metric("autoscaler_decisions_total", {"group": name}) > 0
        with pytest.raises(requests.RequestException):
            requests.get(f"http://{victim['address']}/metrics", timeout=2)


def test_prometheus_outage_holds_counts_failures_and_recovers() -> None:
    name = _unique("outage")
    with _stack(name, min=2) as s:
        s.wait("two replicas reporting", lambda: _reporting(s, name, 2), 60)
        ids = s.replica_ids(name)
        assert s.healthz() == 200
        fails = s.metric("requests_failures_total", {"endpoint": "prometheus"})
        s.prometheus.stop()
        s.wait("/healthz 503", lambda: s.healthz() == 503, 30)
        time.sleep(3 * s.interval)
        assert s.replica_ids(name) == ids, "replicas changed while Prometheus was down"
        assert s.metric("requests_failures_total", {"endpoint": "prometheus"}) > fails
        assert s.group(name)["decision"]["code"] in ("no_data", "fallback")
        assert s.group(name)["observation"]["prometheus_ok"] is False
        s.prometheus.start()
        s.wait("/healthz 200 again", lambda: s.healthz() == 200, 60)
        s.wait("fresh success", lambda: s.status()["prometheus_ok"] is True, 30)
        assert s.replica_ids(name) == ids


def test_killed_and_restarted_autoscaler_adopts_same_replicas() -> None:
    name = _unique("restart")
    with _stack(name, min=2) as s:
        s.wait("two replicas reporting", lambda: _reporting(s, name, 2), 60)
        ids = s.replica_ids(name)
        pids = _marker_pids(name)
        assert len(pids) == 2
        s.kill_autoscaler(signal.SIGKILL)
        assert all(_alive(p) for p in pids), "replicas must outlive the autoscaler"
        s.start_autoscaler()
        start = s.metric("autoscaler_heartbeat_total")
        s.wait(
            "5 cycles after restart", lambda: s.metric("autoscaler_heartbeat_total") >= start + 5
        )
        assert s.replica_ids(name) == ids
        assert _marker_pids(name) == pids, "a replica was duplicated or orphaned"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
