"""The system under test and its ground truth: a real Prometheus behind the fault proxy,
the real daemon as a subprocess (restartable, killable), replica processes it creates.

Ground truth is read from outside the daemon: the replica processes actually running
(found by the local provider's environment marker in /proc), the provider's records
(state files), the calls the daemon made (the faulty provider's event log), and what the
daemon says (/status, /healthz, /metrics).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from autoscaler.chaos import control
from autoscaler.chaos.provider import real_time
from autoscaler.chaos.proxy import FaultProxy
from autoscaler.testing.prometheus import REPO, PrometheusServer, free_port, wait_http

GROUP = "web"
SLOTS = 4
MIN_AVAILABLE = 8  # two idle replicas: the steady state
STEADY = MIN_AVAILABLE // SLOTS
INTERVAL = 1.0
QUERY_TIMEOUT = 1.0
DOWN_COOLDOWN = 5.0
DOWN_STABILIZATION = 5.0


def group_config(run_dir: Path, ctl: Path, events: Path) -> dict[str, Any]:
    return {
        "provider": {
            "type": "chaos",
            "control": str(ctl),
            "events": str(events),
            "run_dir": str(run_dir),
            "stop_timeout_seconds": 2,
            "command": [
                sys.executable,
                "-m",
                "autoscaler.chaos.replica",
                "--port",
                "{port}",
                "--replica-id",
                "{replica_id}",
                "--control",
                str(ctl),
            ],
        },  # fmt: skip
        "min": 1,
        "max": 6,
        "replica_capacity": SLOTS,
        # Covers a daemon restart + Prometheus discovery (http_sd pushes at most every 5 s)
        # + a scrape: shorter, a replica created just before a restart looks unreported.
        "warmup_seconds": 15,
        "stale_after_seconds": 3,
        "policies": [{"type": "headroom", "min_available": MIN_AVAILABLE}],
        "scale_up": {"cooldown_seconds": 0, "max_step_replicas": 2},
        "scale_down": {
            "cooldown_seconds": DOWN_COOLDOWN,
            "stabilization_seconds": DOWN_STABILIZATION,
            "max_step_replicas": 1,
        },
    }


@dataclass
class Truth:
    """The suite's own knowledge at one instant: which replicas it broke, what they report."""

    victims: frozenset[str] = frozenset()  # killed, hung or reporting garbage
    capacity: tuple[tuple[str, float], ...] = ()  # replica -> true free slots (default SLOTS)

    def free(self, rid: str) -> float:
        return dict(self.capacity).get(rid, float(SLOTS))


class World:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-"))
        self.run_dir = self.dir / "run"
        self.control_path = self.dir / "control.json"
        self.events_path = self.dir / "events.jsonl"
        self.log_path = self.dir / "autoscaler.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.control: dict[str, Any] = {"capacity": SLOTS, "replicas": {}, "provider": {}}
        self.timeline: list[tuple[float, Truth]] = [(0.0, Truth())]
        self.prometheus = PrometheusServer(autoscaler=f"127.0.0.1:{self.port}")
        self.proxy: FaultProxy | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.config_path = self.dir / "autoscaler.yaml"
        self.session = requests.Session()

    # --- processes ------------------------------------------------------------------
    def start(self) -> World:
        self.write_control()
        self.events_path.touch()
        self.prometheus.start()
        self.proxy = FaultProxy(self.prometheus.url, delay=QUERY_TIMEOUT * 3).start()
        config = {
            "prometheus": {"url": self.proxy.url, "timeout_seconds": QUERY_TIMEOUT},
            "interval_seconds": INTERVAL,
            "listen": f"127.0.0.1:{self.port}",
            "log_level": "info",
            "state_dir": str(self.dir / "state"),
            "groups": {GROUP: group_config(self.run_dir, self.control_path, self.events_path)},
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.start_daemon()
        return self

    def start_daemon(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "autoscaler.chaos.daemon", "run", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=dict(os.environ, **{control.ENV: str(self.control_path)}),
            )
        wait_http(f"{self.url}/metrics", timeout=30)

    def signal_daemon(self, sig: int, timeout: float = 20.0) -> int | None:
        """Send `sig` and wait for the exit; its exit code (None if it was not running)."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -999  # did not exit in time

    def stop(self) -> None:
        self.signal_daemon(signal.SIGTERM)
        pids = {pid for found in self.processes().values() for pid in found}
        for rec in self.records().values():  # and the provider's word, in case
            pid = rec.get("pid")
            if isinstance(pid, int) and _cmdline_has(pid, str(self.control_path)):
                pids.add(pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)  # a hung (SIGSTOPped) one too
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.proxy is not None:
            self.proxy.stop()
        self.prometheus.cleanup()
        self.session.close()

    def cleanup(self, keep: bool = False) -> None:
        """Stop everything; `keep` leaves the directory (logs, events) for a look."""
        self.stop()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- the suite's levers -------------------------------------------------------------
    def write_control(self) -> None:
        control.write(self.control_path, self.control)

    def set_provider(self, **faults: Any) -> None:
        self.control["provider"] = faults
        self.write_control()

    def set_clock_offset(self, seconds: float) -> None:
        self.control["clock_offset"] = seconds
        self.write_control()
        time.sleep(0.2)  # the daemon re-reads the file every 0.1 s

    def report(self, values: dict[str, Any], victims: frozenset[str] = frozenset()) -> None:
        """Replicas report `values` (numbers: their true free slots; text: garbage)."""
        self.control["replicas"] = dict(values)
        self.write_control()
        true = tuple((rid, float(v)) for rid, v in values.items() if isinstance(v, int | float))
        self.timeline.append((real_time(), Truth(frozenset(victims), true)))

    def truth_at(self, t: float) -> Truth:
        current = self.timeline[0][1]
        for at, truth in self.timeline:
            if at <= t:
                current = truth
        return current

    # --- ground truth -------------------------------------------------------------------
    def processes(self) -> dict[str, list[int]]:
        """Replica id -> live (non-zombie) pids carrying the provider's marker."""
        needle = f"AUTOSCALER_REPLICA={GROUP}/".encode()
        out: dict[str, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                env = (entry / "environ").read_bytes()
                cmdline = (entry / "cmdline").read_bytes()
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat[stat.rfind(")") + 2 :].split()[:1] == ["Z"]:
                continue
            for var in env.split(b"\0"):
                if var.startswith(needle) and str(self.control_path).encode() in cmdline:
                    out.setdefault(var[len(needle) :].decode(), []).append(int(entry.name))
        return out

    def records(self) -> dict[str, dict[str, Any]]:
        out = {}
        for p in (self.run_dir / GROUP).glob("*.json"):
            try:
                out[p.stem] = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
        return out

    def events(self) -> list[dict[str, Any]]:
        lines = self.events_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    # --- the daemon's word --------------------------------------------------------------
    def get(self, path: str, timeout: float = 3.0) -> requests.Response:
        return self.session.get(self.url + path, timeout=timeout)

    def status(self) -> dict[str, Any]:
        return self.get("/status").json()

    def group(self) -> dict[str, Any]:
        return self.status()["groups"][GROUP]

    def healthz(self) -> int:
        return self.get("/healthz").status_code

    def heartbeat(self) -> float:
        for line in self.get("/metrics").text.splitlines():
            if line.startswith("autoscaler_heartbeat_total "):
                return float(line.split()[1])
        return 0.0

    def log_tail(self, n: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-n:])


def _cmdline_has(pid: int, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
