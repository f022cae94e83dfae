"""A real etcd (Debian's etcd-server) on free loopback ports, its data in a temporary
directory; `stop` and `start` again keep the data, as an etcd restarted by an operator."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from tests.harness.pki import Pki
from tests.harness.prometheus import free_port, stop_process


def missing() -> str | None:
    return None if shutil.which("etcd") else "etcd is not installed (make setup-debs)"


class EtcdServer:
    """With `pki`, etcd serves https:// with a certificate of that CA and asks every client
    for one (`--client-cert-auth`); `client` is the certificate this harness uses."""

    def __init__(self, pki: Pki | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="etcd-"))
        self.port = free_port()
        self.peer_port = free_port()
        while self.peer_port == self.port:
            self.peer_port = free_port()
        self.pki = pki
        self.url = f"{'https' if pki else 'http'}://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "etcd.log"
        self.tls: list[str] = []
        self.client: tuple[Path, Path] | None = None
        if pki is not None:
            cert, key = pki.issue(f"etcd-{self.port}", also_client=True)
            self.client = pki.issue(f"etcd-client-{self.port}", client=True)
            self.tls = [
                f"--cert-file={cert}",
                f"--key-file={key}",
                f"--trusted-ca-file={pki.ca_file}",
                "--client-cert-auth",
            ]

    def healthy(self) -> bool:
        # verify and cert per request: a session's would lose to REQUESTS_CA_BUNDLE
        tls: dict[str, object] = {}
        if self.pki is not None and self.client is not None:
            tls = {"verify": str(self.pki.ca_file), "cert": tuple(map(str, self.client))}
        answer = requests.get(f"{self.url}/health", timeout=1, **tls)  # type: ignore[arg-type]
        return bool(answer.json().get("health") == "true")

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
                *self.tls,
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
                if self.healthy():
                    return self
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"etcd not healthy after {timeout}s")

    def etcdctl(self, *args: str, user: str | None = None) -> str:
        """Run etcdctl against this server (as `user`, "name:password"), its output."""
        tls = []
        if self.pki is not None and self.client is not None:
            cert, key = self.client
            tls = [f"--cacert={self.pki.ca_file}", f"--cert={cert}", f"--key={key}"]
        cmd = ["etcdctl", f"--endpoints={self.url}", *tls, *([f"--user={user}"] if user else [])]
        done = subprocess.run(
            [*cmd, *args],
            env={"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")},
            capture_output=True,
            text=True,
            timeout=20,
        )
        if done.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {done.stderr.strip()[-500:]}")
        return done.stdout

    def enable_auth(self, user: str, password: str, prefix: str) -> None:
        """etcd users on: root, and `user` with read-write on keys under `prefix` only."""
        root_password = "root-" + password
        self.etcdctl("user", "add", "root", f"--new-user-password={root_password}")
        self.etcdctl("auth", "enable")
        root = f"root:{root_password}"
        self.etcdctl("user", "add", user, f"--new-user-password={password}", user=root)
        self.etcdctl("role", "add", user, user=root)
        self.etcdctl(
            "role", "grant-permission", user, "--prefix=true", "readwrite", prefix, user=root
        )
        self.etcdctl("user", "grant-role", user, user, user=root)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
