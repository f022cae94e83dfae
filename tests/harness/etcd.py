"""A real etcd (Debian's etcd-server) on free loopback ports, its data in a temporary
directory; `stop` and `start` again keep the data, as an etcd restarted by an operator."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from tests.harness.prometheus import free_port, stop_process


def missing() -> str | None:
    return None if shutil.which("etcd") else "etcd is not installed (make setup-debs)"


class EtcdServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="etcd-"))
        self.port = free_port()
        self.peer_port = free_port()
        while self.peer_port == self.port:
            self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "etcd.log"

    def start(self, timeout: float = 20.0) -> EtcdServer:
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                "etcd",
                "--name=test",
                f"--data-dir={self.dir / 'data'}",
                f"--listen-client-urls={self.url}",
                f"--advertise-client-urls={self.url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=test={peer}",
                "--log-level=error",
                # A single member elects itself faster after a restart (leases need
                # TTL >= 1.5 election timeouts: 0.3 s here).
                "--heartbeat-interval=50",
                "--election-timeout=250",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).json().get("health") == "true":
                    return self
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"etcd not healthy after {timeout}s")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
