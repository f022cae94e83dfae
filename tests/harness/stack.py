"""A whole system on loopback for integration tests.

Real Prometheus (the project's prometheus.yml, 1 s scrapes) + the autoscaler daemon as a
subprocess (`python -m autoscaler run`, so tests can SIGKILL and restart it) + local
replica processes created by the daemon. Everything it starts, it stops: replicas are
found through their state files in the run directory and killed at cleanup.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.harness.exposition import sample_values
from tests.harness.prometheus import REPO, PrometheusServer, free_port, wait_http


def local_group(run_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A small local-provider group with short windows, suitable for tests."""
    group: dict[str, Any] = {
        "provider": {"type": "local", "run_dir": str(run_dir), "slots": 4, "work_seconds": 0.5},
        "min": 1,
        "max": 6,
        "replica_capacity": 4,
        "warmup_seconds": 6,
        "stale_after_seconds": 8,
        "policies": [{"type": "headroom", "min_available": 4}],
        "scale_up": {"cooldown_seconds": 0, "max_step_replicas": 2},
        "scale_down": {"cooldown_seconds": 2, "stabilization_seconds": 6, "max_step_replicas": 1},
    }
    group.update(overrides)
    return group


class Stack:
    def __init__(
        self,
        groups: dict[str, dict[str, Any]] | Callable[[Path], dict[str, Any]] | None = None,
        *,
        interval: float = 1.0,
        extra: dict[str, Any] | None = None,
        alertmanager: str | None = None,
        bridge: str | None = None,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="stack-"))
        self.run_dir = self.dir / "run"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prometheus = PrometheusServer(
            autoscaler=f"127.0.0.1:{self.port}", alertmanager=alertmanager, bridge=bridge
        )
        # Two free_port() calls may return the same port: Prometheus would then hold the
        # daemon's, and answer the daemon's /metrics wait itself.
        while self.prometheus.port == self.port:
            self.prometheus.cleanup()
            self.prometheus = PrometheusServer(
                autoscaler=f"127.0.0.1:{self.port}", alertmanager=alertmanager, bridge=bridge
            )
        self.config_path = self.dir / "autoscaler.yaml"
        config: dict[str, Any] = {
            "prometheus": {"url": self.prometheus.url, "timeout_seconds": 2},
            "interval_seconds": interval,
            "listen": f"127.0.0.1:{self.port}",
            "log_level": "info",
            # A callable gets the run directory, for local groups built by the test.
            "groups": groups(self.run_dir)
            if callable(groups)
            else groups or {"web": local_group(self.run_dir)},
        }
        if bridge:
            config["bridge_address"] = bridge
        config.update(extra or {})
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.interval = interval
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "autoscaler.log"
        self.env = dict(os.environ)
        self.run_args: list[str] = []  # more `autoscaler run` options (--watch-config 1)

    # --- processes ------------------------------------------------------------------
    def start(self) -> Stack:
        planned = self.prometheus.url
        self.prometheus.start()
        if self.prometheus.url != planned:  # its port was taken: it started on another
            if self.prometheus.port == self.port:
                raise RuntimeError(f"Prometheus moved to the daemon's port {self.port}")
            doc = yaml.safe_load(self.config_path.read_text())
            if doc.get("prometheus", {}).get("url") == planned:
                doc["prometheus"]["url"] = self.prometheus.url
                self.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.start_autoscaler()
        return self

    def start_autoscaler(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "autoscaler",
                "run",
                "--config",
                str(self.config_path),
                *self.run_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=self.env,
        )
        log.close()
        # /sd is the daemon's own (another server on the port would not answer it), and
        # the daemon exiting (its port taken, a bad config) ends the wait at once.
        wait_http(f"{self.url}/sd", timeout=20, proc=self.proc)

    def kill_autoscaler(self, sig: int = signal.SIGKILL) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()
        return None

    def replica_pids(self) -> list[int]:
        pids = []
        for f in self.run_dir.rglob("*.json"):
            try:
                pid = json.loads(f.read_text()).get("pid")
            except (OSError, ValueError):
                continue
            if isinstance(pid, int):
                pids.append(pid)
        return pids

    def cleanup(self) -> None:
        self.kill_autoscaler(signal.SIGTERM)
        for pid in self.replica_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.prometheus.cleanup()

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- reading the autoscaler -------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/status", timeout=5).json()

    def group(self, name: str = "web") -> dict[str, Any]:
        return self.status()["groups"][name]

    def replica_ids(self, name: str = "web") -> list[str]:
        return sorted(r["id"] for r in self.group(name)["replicas"] if r["state"] != "deleting")

    def healthz(self) -> int:
        return requests.get(f"{self.url}/healthz", timeout=5).status_code

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Sum of the autoscaler's own samples named `name` matching `labels`."""
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        return sum(sample_values(text, name, labels))

    def sd_targets(self) -> list[str]:
        doc = requests.get(f"{self.url}/sd?via=direct", timeout=5).json()
        return [t for entry in doc for t in entry["targets"]]

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 60.0) -> float:
        """Poll until predicate() holds; returns the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            try:
                if predicate():
                    return time.monotonic() - start
            except (requests.RequestException, KeyError, ValueError):
                pass  # the daemon may be restarting
            time.sleep(0.25)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}\n--- autoscaler log tail ---\n"
            + "\n".join(self.log_text().splitlines()[-40:])
        )
