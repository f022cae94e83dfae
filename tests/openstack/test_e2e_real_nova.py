"""End to end: the autoscaler with the OpenStack provider scales a group up and down
against real Nova (behind real Keystone), with replicas' metrics from real processes.

What runs, all on loopback:
- real Nova + Keystone (the session fixture `real_openstack`, tests/openstack/real_nova.py);
- a real Prometheus (1 s scrapes) whose replica targets come from a file_sd file;
- the real daemon, `python -m autoscaler run`, with an `openstack` group;
- a "metrics sidecar" thread standing for the software inside each VM: for every ACTIVE
  server of the group it runs a real `autoscaler.demo.replica` process on a free loopback
  port, and writes the file_sd targets labelled {group, replica=<server id>};
- real HTTP load (autoscaler/loadgen.py) on those processes.

Real Nova here gives every server the same fixed address (192.168.1.30 on "private"), so
the only way metrics reach the right replica is the design's: series carry the server id
in their `replica` label. Conditions are polled with generous timeouts, never timed.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from autoscaler.demo.loadgen import LoadGenerator, constant
from tests.harness.exposition import sample_values
from tests.harness.prometheus import REPO, PrometheusServer, free_port, wait_http
from tests.openstack.real_nova import SKIP_REASON, RealOpenStack, nova_installed

pytestmark = [
    pytest.mark.skipif(not nova_installed(), reason=SKIP_REASON),
    pytest.mark.timeout(300),
]

SLOTS = 4  # work slots of one demo replica = the group's replica_capacity
WORK_SECONDS = 0.5
LOAD_RPS = 12.0  # 12/s x 0.5 s = 6 busy slots: more than one replica's 4
MAX_REPLICAS = 4
SHARED_ADDRESS = "192.168.1.30"  # what the nova wheel's fake Neutron gives every server


# --------------------------------------------------------------------------- helpers
def wait_for(what: str, predicate: Callable[[], bool], timeout: float, details: Callable[[], str]):
    """Poll predicate() until it holds; on timeout fail with `details()` for diagnosis."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
            last_error = ""
        except (requests.RequestException, KeyError, ValueError) as e:
            last_error = f"{type(e).__name__}: {e}"  # a daemon or API between answers
        time.sleep(0.5)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what} {last_error}\n{details()}"
    )


def group_servers(conn: Any, group: str) -> list[Any]:
    """The group's servers that still exist (deleting ones excluded), oldest first."""
    servers = [
        s
        for s in conn.compute.servers(details=True)
        if (s.metadata or {}).get("group") == group
        and (s.task_state or "") != "deleting"
        and (s.status or "").upper() not in ("DELETED", "SOFT_DELETED")
    ]
    return sorted(servers, key=lambda s: (s.created_at or "", s.id))


class ReplicaProcess:
    """One real demo replica: the workload of one Nova server."""

    def __init__(self, server_id: str, created_at: str, group: str, log_dir: Path) -> None:
        self.server_id = server_id
        self.created_at = created_at
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.ready = False
        with open(log_dir / f"replica-{server_id}.log", "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "autoscaler.demo.replica",
                    "--port",
                    str(self.port),
                    "--slots",
                    str(SLOTS),
                    "--work-seconds",
                    str(WORK_SECONDS),
                    "--replica-id",
                    server_id,
                    "--group",
                    group,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def check_ready(self) -> bool:
        """True once it answers /healthz as the replica of this server."""
        if not self.ready:
            try:
                r = requests.get(f"http://{self.address}/healthz", timeout=1)
                self.ready = r.status_code == 200 and r.json().get("replica") == self.server_id
            except (requests.RequestException, ValueError):
                pass
        return self.ready

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(WORK_SECONDS + 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class MetricsSidecar:
    """Stands for the software inside each VM, and for Prometheus's discovery of it.

    Polls Nova; for each ACTIVE server of the group runs a ReplicaProcess, for each server
    gone (or being deleted) stops it; rewrites the file_sd file with the ready processes,
    labelled {group, replica=<server id>}.
    """

    def __init__(self, cloud: RealOpenStack, group: str, sd_file: Path, log_dir: Path) -> None:
        self.cloud = cloud
        self.group = group
        self.sd_file = sd_file
        self.log_dir = log_dir
        self.replicas: dict[str, ReplicaProcess] = {}
        self.seen_ids: set[str] = set()  # every server of the group, in any state
        self.started_ids: list[str] = []
        self.stopped_ids: list[str] = []
        self.crashed: list[str] = []
        self.max_servers = 0
        self.last_error: str | None = None
        self.syncs = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-sidecar", daemon=True)
        self._write_sd()

    def start(self) -> MetricsSidecar:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=30)
        with self._lock:
            for rp in self.replicas.values():
                rp.stop()
            self.replicas.clear()

    def targets(self) -> list[str]:
        """Ready replicas' addresses, oldest server first (for balance="first")."""
        with self._lock:
            ready = [rp for rp in self.replicas.values() if rp.ready]
        return [rp.address for rp in sorted(ready, key=lambda r: (r.created_at, r.server_id))]

    def ready_ids(self) -> set[str]:
        with self._lock:
            return {sid for sid, rp in self.replicas.items() if rp.ready}

    def _run(self) -> None:
        conn = self.cloud.connect(api_timeout=15)
        try:
            while not self._stop.wait(0.5):
                try:
                    self._sync(conn)
                    self.last_error = None
                except Exception as e:  # noqa: BLE001 - keep polling; the test reads it
                    self.last_error = f"{type(e).__name__}: {e}"
        finally:
            conn.close()

    def _sync(self, conn: Any) -> None:
        servers = group_servers(conn, self.group)
        self.max_servers = max(self.max_servers, len(servers))
        self.seen_ids.update(s.id for s in servers)
        active = {s.id: s for s in servers if (s.status or "").upper() == "ACTIVE"}
        with self._lock:
            for sid in set(self.replicas) - set(active):
                self.replicas.pop(sid).stop()
                self.stopped_ids.append(sid)
            for sid, server in active.items():
                if sid not in self.replicas and not self._stop.is_set():
                    rp = ReplicaProcess(sid, server.created_at or "", self.group, self.log_dir)
                    self.replicas[sid] = rp
                    self.started_ids.append(sid)
            for sid, rp in self.replicas.items():
                if rp.proc.poll() is not None and sid not in self.crashed:
                    self.crashed.append(sid)
                rp.check_ready()
            self._write_sd()
            self.syncs += 1

    def _write_sd(self) -> None:
        entries = [
            {"targets": [rp.address], "labels": {"group": self.group, "replica": sid}}
            for sid, rp in sorted(self.replicas.items())
            if rp.ready
        ]
        tmp = self.sd_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries))
        tmp.replace(self.sd_file)  # atomic: Prometheus never reads half a file


class Daemon:
    """`python -m autoscaler run --config FILE` as a subprocess, as tests/harness/stack.py."""

    def __init__(self, config: dict[str, Any], workdir: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.config_path = workdir / "autoscaler.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.config_path.chmod(0o600)  # it holds the cloud password
        self.log_path = workdir / "autoscaler.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "autoscaler", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        wait_http(f"{self.url}/metrics", timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def status(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/status", timeout=5).json()

    def metrics_text(self) -> str:
        return requests.get(f"{self.url}/metrics", timeout=5).text

    def metric(self, name: str, labels: dict[str, str]) -> float:
        """Sum of the daemon's own samples named `name` carrying `labels`."""
        return sum(sample_values(self.metrics_text(), name, labels))


def prometheus_config(autoscaler: str, sd_file: Path) -> str:
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "autoscaler", "static_configs": [{"targets": [autoscaler]}]},
                {
                    "job_name": "replicas",
                    "file_sd_configs": [{"files": [str(sd_file)], "refresh_interval": "1s"}],
                },
            ],
        },
        sort_keys=False,
    )


def openstack_group(cloud: RealOpenStack) -> dict[str, Any]:
    auth = {k: v for k, v in cloud.auth.items() if k != "region_name"}
    return {
        "provider": {
            "type": "openstack",
            "auth": auth,
            "region_name": cloud.auth["region_name"],
            "flavor": cloud.flavor_id,
            "image": cloud.image_id,
            "network": cloud.network_id,
            "request_timeout_seconds": 30,
        },
        "min": 1,
        "max": MAX_REPLICAS,
        "replica_capacity": SLOTS,
        # Server ACTIVE -> process up -> file_sd (~3 s) -> first scrape: about 5-8 s here.
        "warmup_seconds": 15,
        "stale_after_seconds": 10,
        "policies": [{"type": "headroom", "min_available": SLOTS}],
        "scale_up": {"cooldown_seconds": 0, "max_step_replicas": 2},
        "scale_down": {"cooldown_seconds": 2, "stabilization_seconds": 6, "max_step_replicas": 1},
    }


# --------------------------------------------------------------------------- the system
class System:
    """Everything the test started, with the views it asserts on."""

    def __init__(self, cloud: RealOpenStack, workdir: Path) -> None:
        self.cloud = cloud
        self.group = f"e2e-{secrets.token_hex(3)}"
        port = free_port()
        sd_file = workdir / "replicas.json"
        self.sidecar = MetricsSidecar(cloud, self.group, sd_file, workdir)
        self.prometheus = PrometheusServer(
            autoscaler=f"127.0.0.1:{port}",
            config_text=prometheus_config(f"127.0.0.1:{port}", sd_file),
        )
        config = {
            "prometheus": {"url": self.prometheus.url, "timeout_seconds": 3},
            "interval_seconds": 1,
            "listen": f"127.0.0.1:{port}",
            "log_level": "info",
            "groups": {self.group: openstack_group(cloud)},
        }
        self.daemon = Daemon(config, workdir, port)
        self.conn = cloud.connect(api_timeout=15)

    def nova_ids(self) -> set[str]:
        return {s.id for s in group_servers(self.conn, self.group)}

    def status_group(self) -> dict[str, Any]:
        return self.daemon.status()["groups"][self.group]

    def status_ids(self) -> set[str]:
        return {r["id"] for r in self.status_group()["replicas"] if r["state"] != "deleting"}

    def reporting_ids(self) -> set[str]:
        """Replicas the daemon has fresh capacity samples for (matched by server id)."""
        return {
            r["id"]
            for r in self.status_group()["replicas"]
            if r["state"] == "active" and r["capacity"] is not None
        }

    def prometheus_replicas(self) -> set[str]:
        res = self.prometheus.query(f'replica_capacity{{group="{self.group}"}}')
        return {s["metric"]["replica"] for s in res}

    def consistent(self, n: int | None = None) -> bool:
        """Nova, the daemon and the sidecar agree on the group's servers (and all report)."""
        nova = self.nova_ids()
        if n is not None and len(nova) != n:
            return False
        return nova == self.status_ids() == self.reporting_ids() == self.sidecar.ready_ids()

    def details(self) -> str:
        parts = []
        for what, fn in (
            ("nova", lambda: sorted(self.nova_ids())),
            ("status", lambda: self.status_group()),
            ("sidecar ready", lambda: sorted(self.sidecar.ready_ids())),
            ("sidecar error", lambda: self.sidecar.last_error),
        ):
            try:
                parts.append(f"--- {what}: {fn()}")
            except Exception as e:  # noqa: BLE001 - diagnostics only
                parts.append(f"--- {what}: unavailable ({type(e).__name__}: {e})")
        tail = "\n".join(self.daemon.log_text().splitlines()[-40:])
        return "\n".join(parts) + f"\n--- autoscaler log tail ---\n{tail}"

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float) -> None:
        wait_for(what, predicate, timeout, self.details)

    def stop(self) -> None:
        # The daemon first, so nothing creates servers while the rest is torn down.
        try:
            self.daemon.stop()
        finally:
            try:
                self.sidecar.stop()
            finally:
                self.prometheus.cleanup()
                self.conn.close()


@pytest.fixture
def system(real_openstack: RealOpenStack, tmp_path: Path) -> Iterator[System]:
    real_openstack.clean()
    s = System(real_openstack, tmp_path)
    try:
        s.prometheus.start()
        s.sidecar.start()
        s.daemon.start()
        yield s
    finally:
        s.stop()
        real_openstack.clean()


def load(s: System) -> LoadGenerator:
    return LoadGenerator(
        constant(LOAD_RPS),
        s.sidecar.targets,
        balance="first",
        slots_per_target=SLOTS,
        poisson=False,
        targets_refresh_seconds=1.0,
        timeout_seconds=3.0,
    )


# --------------------------------------------------------------------------- the test
def test_scales_nova_servers_up_and_down_on_real_replica_metrics(system: System) -> None:
    s = system
    s.wait("one server in Nova, reporting through Prometheus", lambda: s.consistent(1), 90)
    replica = s.status_group()["replicas"][0]
    assert replica["address"].startswith(SHARED_ADDRESS), "the setup this test relies on"

    with load(s) as gen:
        s.wait("a second server created in Nova", lambda: len(s.nova_ids()) >= 2, 90)
        s.wait(
            "every server listed by the daemon and reporting",
            lambda: len(s.nova_ids()) >= 2 and s.consistent(),
            90,
        )
        up_ids = s.nova_ids()
        # Same address for all, yet each server's own series arrived: matched by server id.
        addresses = {r["address"] for r in s.status_group()["replicas"]}
        assert addresses == {f"{SHARED_ADDRESS}:8080"}
        assert up_ids <= s.prometheus_replicas()
        assert gen.totals().ok > 0, f"the load never reached a replica: {gen.totals().line()}"

    s.wait("idle servers deleted back to min 1", lambda: s.consistent(1), 120)
    assert s.sidecar.max_servers <= MAX_REPLICAS
    assert set(s.sidecar.stopped_ids) >= up_ids - s.nova_ids(), "a deleted server kept its process"

    # Settled: a few more cycles change nothing, and nothing is orphaned in Nova.
    seen = set(s.sidecar.seen_ids)
    beats = s.daemon.metric("autoscaler_heartbeat_total", {})
    s.wait(
        "three more cycles",
        lambda: s.daemon.metric("autoscaler_heartbeat_total", {}) >= beats + 3,
        60,
    )
    assert s.consistent(1), f"Nova and /status disagree once settled\n{s.details()}"
    assert s.sidecar.seen_ids == seen, "a server was created after the group settled"

    creates = s.daemon.metric(
        "autoscaler_provider_requests_total",
        {"group": s.group, "operation": "create", "result": "ok"},
    )
    deletes = s.daemon.metric(
        "autoscaler_provider_requests_total",
        {"group": s.group, "operation": "delete", "result": "ok"},
    )
    assert creates == len(s.sidecar.seen_ids) >= 2, "one create per server Nova ran"
    assert deletes >= creates - 1 >= 1, "every server but the last one deleted"
    assert s.sidecar.crashed == [], f"replica processes died: {s.sidecar.crashed}"

    password = s.cloud.auth["password"]
    assert password not in s.daemon.log_text()
    assert password not in json.dumps(s.daemon.status())
    assert password not in s.daemon.metrics_text()
