"""End to end: the daemon scales a docker group on a real Prometheus, up and back down.

Real parts only: Podman's Docker-compatible API (tests/harness/podman.py), a real
Prometheus scraping the containers through the daemon's /sd, the daemon as a subprocess
(tests/harness/stack.py). Each container runs busybox httpd serving a bind-mounted
metrics file; the test sets the load by rewriting that file (free slots per replica).
"""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path

import pytest

from tests.harness import podman
from tests.harness.stack import Stack

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(podman.missing() is not None, reason=str(podman.missing())),
]

SERVE = ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]


def _group(engine: podman.PodmanEngine, www: Path) -> dict:
    return {
        "provider": {
            "type": "docker",
            "engines": [engine.base_url],
            "image": podman.IMAGE,
            "command": SERVE,
            "volumes": {str(www): "/www:ro"},
            "memory": "32m",
            "stop_timeout_seconds": 2,
            "request_timeout_seconds": 20,
        },
        "min": 1,
        "max": 3,
        "replica_capacity": 4,
        "warmup_seconds": 6,
        "stale_after_seconds": 8,
        "policies": [{"type": "headroom", "min_available": 4}],
        "scale_up": {"cooldown_seconds": 0, "max_step_replicas": 1},
        "scale_down": {"cooldown_seconds": 1, "stabilization_seconds": 4, "max_step_replicas": 1},
    }


def _free_slots(www: Path, free: int) -> None:
    tmp = www / ".metrics.tmp"
    tmp.write_text(f"replica_capacity {free}\nreplica_termination 0\n")
    tmp.replace(www / "metrics")  # atomic: a scrape never reads half a file


def _containers(engine: podman.PodmanEngine, group: str) -> list[str]:
    client = engine.client()
    try:
        found = client.containers.list(
            sparse=True, filters={"label": f"io.autoscaler.group={group}"}
        )
        return sorted(c.attrs["Names"][0].lstrip("/") for c in found)
    finally:
        client.close()


def test_daemon_scales_docker_containers_up_on_load_and_back_down() -> None:
    name = f"web{secrets.token_hex(2)}"
    with tempfile.TemporaryDirectory(prefix="docker-e2e-") as d, podman.PodmanEngine() as engine:
        www = Path(d)
        _free_slots(www, 4)  # idle
        with Stack(groups={name: _group(engine, www)}) as s:
            s.wait("one container reporting", lambda: _reporting(s, name, 1), 60)
            assert len(_containers(engine, name)) == 1

            _free_slots(www, 1)  # load: 3 of 4 slots busy on every replica
            t = time.monotonic()
            s.wait("scaled up to 3", lambda: len(s.replica_ids(name)) == 3, 90)
            up = time.monotonic() - t
            s.wait("3 containers running", lambda: len(_containers(engine, name)) == 3, 30)
            assert sorted(s.replica_ids(name)) == _containers(engine, name)

            _free_slots(www, 4)  # the load is gone
            t = time.monotonic()
            s.wait("back down to 1", lambda: len(s.replica_ids(name)) == 1, 90)
            down = time.monotonic() - t
            s.wait("1 container left", lambda: len(_containers(engine, name)) == 1, 30)
            ups = s.metric("autoscaler_decisions_total", {"group": name, "direction": "up"})
            downs = s.metric("autoscaler_decisions_total", {"group": name, "direction": "down"})
            assert ups >= 2 and downs >= 2
            print(f"docker e2e: 1->3 in {up:.1f}s, 3->1 in {down:.1f}s")


def _reporting(s: Stack, name: str, n: int) -> bool:
    reps = s.group(name)["replicas"]
    return len([r for r in reps if r["state"] == "active" and r["capacity"] is not None]) >= n
