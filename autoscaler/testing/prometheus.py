"""Run a real Prometheus (Debian's `prometheus`) on a free loopback port.

Used by `autoscaler demo` and by the tests (tests/harness/prometheus.py re-exports it).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from autoscaler.testing import promconfig

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessExited(RuntimeError):
    """The process that was to serve the URL exited before it answered."""


def wait_http(
    url: str,
    timeout: float = 60.0,
    proc: subprocess.Popen[bytes] | None = None,
    verify: str | bool = True,
) -> None:
    """Poll `url` until it answers 200: generous, a loaded machine starts a process slowly.

    With `proc`, its exit ends the wait at once (`ProcessExited`) rather than at `timeout`.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ProcessExited(f"exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=1, verify=verify).status_code == 200:
                return
        except requests.RequestException as e:  # not up yet
            last = e
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PrometheusServer:
    """A Prometheus process with the project's own prometheus.yml, 1 s scrape interval."""

    def __init__(
        self,
        *,
        autoscaler: str,
        alertmanager: str | None = None,
        bridge: str | None = None,
        config_text: str | None = None,
        extra_args: list[str] | None = None,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        """`tls`: (certificate, key, the CA that signed it): Prometheus serves https://."""
        self.port = free_port()
        self._picked = self.port  # a caller may set another port before start()
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="prom-"))
        self.verify: str | bool = str(tls[2]) if tls else True
        if tls:
            web = self.dir / "web.yml"
            server = {"cert_file": str(tls[0]), "key_file": str(tls[1])}
            web.write_text(json.dumps({"tls_server_config": server}))  # YAML reads JSON
            extra_args = [*(extra_args or []), f"--web.config.file={web}"]
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(
            config_text
            or promconfig.render(
                REPO / "prometheus.yml",
                autoscaler=autoscaler,
                alertmanager=alertmanager,
                bridge=bridge,
                scrape_interval="1s",
                evaluation_interval="1s",
            )
        )
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        binary = shutil.which("prometheus")
        if not binary:
            raise RuntimeError(
                "prometheus is not installed: run `make setup` (Debian package prometheus)"
            )
        self.log = open(self.dir / "prometheus.log", "wb")
        # The port was free when picked, but another process may bind it before Prometheus
        # does (many servers start at once on a loaded machine): then Prometheus exits at
        # once, and it is started again on another free port (never one the caller chose).
        for attempt in range(3 if self.port == self._picked else 1):
            if attempt:
                self.port = free_port()
                self.url = f"{self.scheme}://127.0.0.1:{self.port}"
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    "--rules.alert.resend-delay=1s",
                    *self.extra_args,
                ],
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_http(f"{self.url}/-/ready", proc=self.proc, verify=self.verify)
                return self
            except ProcessExited:
                continue  # most likely its port was taken: try another one
            except TimeoutError:
                break  # alive but never ready: not a port clash
        self.stop()
        raise RuntimeError(f"Prometheus did not start; its log: {self.dir / 'prometheus.log'}")

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def query(self, expr: str) -> list[dict]:
        r = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict]], bool] = bool,
        timeout: float = 30.0,
        interval: float = 0.1,  # scrapes land every second: 0.5 s polls wasted ~0.25 s a wait
    ) -> list[dict]:
        """Poll an instant query until predicate(result) is true; returns the result."""
        deadline = time.monotonic() + timeout
        res: list[dict] = []
        while time.monotonic() < deadline:
            res = self.query(expr)
            if predicate(res):
                return res
            time.sleep(interval)
        raise TimeoutError(f"{expr!r} never satisfied the condition; last result {res}")

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
