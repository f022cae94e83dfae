"""End to end: the daemon scales a libvirt group on a real Prometheus, up and back down.

The daemon's provider talks to real libvirt through the test driver with a node file
(`test:///<tmp>/node.xml`, a storage pool with a base volume): the hypervisor lives inside
the daemon process, so its domains go away with it. A test-driver domain has no IP, so
the group's addresses come from `address_template: 127.0.0.1:{port}` and the provider's
port range; this test runs one exporter process (the demo replica, whose free slots
follow the load it is sent) on each listed domain's address, and stops it when the domain
is gone.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

pytest.importorskip("libvirt")

from autoscaler.demo.loadgen import LoadGenerator, constant  # noqa: E402
from autoscaler.providers.libvirt import DEFAULT_TEMPLATE  # noqa: E402
from tests.harness.stack import Stack  # noqa: E402
from tests.test_libvirt_provider import node_uri  # noqa: E402

pytestmark = pytest.mark.timeout(180)


class Exporters:
    """One demo-replica process per listed domain, on the address the daemon reports."""

    def __init__(self, stack: Stack, group: str) -> None:
        self.stack, self.group = stack, group
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.seen: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Exporters:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        for p in self.procs.values():
            p.kill()
            p.wait(10)

    def _run(self) -> None:
        while not self.stop.wait(0.3):
            try:
                reps = self.stack.group(self.group)["replicas"]
            except (requests.RequestException, KeyError, ValueError):
                continue
            live = {r["id"]: r["address"] for r in reps if r["state"] != "deleting"}
            for rid, addr in live.items():
                dead = rid in self.procs and self.procs[rid].poll() is not None
                if addr and (rid not in self.procs or dead):  # (re)start: a bind may fail
                    self.seen.add(rid)
                    host, port = addr.rsplit(":", 1)
                    self.procs[rid] = subprocess.Popen(
                        [sys.executable, "-m", "autoscaler.demo.replica", "--host", host,
                         "--port", port, "--slots", "4", "--work-seconds", "0.5",
                         "--replica-id", rid, "--group", self.group],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )  # fmt: skip
            for rid in set(self.procs) - set(live):
                p = self.procs.pop(rid)
                p.kill()
                p.wait(10)


def _free_block(size: int = 20) -> int:
    """The first port of `size` consecutive free loopback ports, below Linux's ephemeral
    range (32768-60999), so no client socket of the suite takes one meanwhile."""
    for _ in range(200):
        first = random.randrange(20000, 32000 - size, size)
        try:
            for port in range(first, first + size):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError("no block of free ports")


def _group(tmp: Path, first_port: int) -> dict[str, Any]:
    template = tmp / "domain.xml"
    template.write_text(DEFAULT_TEMPLATE.replace("type='kvm'", "type='test'"))
    return {
        "provider": {
            "type": "libvirt",
            "hosts": [node_uri(tmp)],
            "pool": "default",
            "base_volume": "base.qcow2",
            "domain_template": str(template),
            "memory_mib": 256,
            "address_template": "127.0.0.1:{port}",
            "port_range": [first_port, first_port + 19],
            "call_timeout_seconds": 5,
        },
        "min": 1,
        "max": 4,
        "replica_capacity": 4,
        "warmup_seconds": 6,
        "stale_after_seconds": 8,
        "policies": [{"type": "headroom", "min_available": 4}],
        "scale_up": {"cooldown_seconds": 0, "max_step_replicas": 2},
        "scale_down": {"cooldown_seconds": 2, "stabilization_seconds": 6, "max_step_replicas": 1},
    }


def _reporting(s: Stack, name: str, n: int) -> bool:
    reps = s.group(name)["replicas"]
    return len([r for r in reps if r["state"] == "active" and r["capacity"] is not None]) >= n


def test_daemon_scales_libvirt_domains_up_on_load_and_back_down(tmp_path: Path) -> None:
    name = "vm"
    first_port = _free_block()
    stack = Stack(groups={name: _group(tmp_path, first_port)})
    with stack as s, Exporters(s, name) as ex:
        s.wait("the first domain reporting", lambda: _reporting(s, name, 1), 60)
        (first,) = s.replica_ids(name)
        assert first.startswith("autoscaler-vm-")
        meta = s.group(name)["replicas"][0]
        assert meta["address"] == f"127.0.0.1:{first_port}"
        load = LoadGenerator(
            constant(12.0),  # 12/s x 0.5 s = 6 busy slots > 4 free slots of one replica
            lambda: s.sd_targets(),
            balance="first",
            poisson=False,
            targets_refresh_seconds=1.0,
            timeout_seconds=3.0,
        )
        with load:
            up = s.wait("scale-up to 2+ domains", lambda: len(s.replica_ids(name)) >= 2, 60)
            s.wait("2 domains reporting", lambda: _reporting(s, name, 2), 60)
        down = s.wait("back down to 1 domain", lambda: len(s.replica_ids(name)) == 1, 90)
        assert len(ex.seen) >= 2
        ups = s.metric("autoscaler_decisions_total", {"group": name, "direction": "up"})
        downs = s.metric("autoscaler_decisions_total", {"group": name, "direction": "down"})
        assert ups >= 1 and downs >= 1
        print(f"libvirt e2e: scale-up {up:.1f}s after load, back down {down:.1f}s after it")
