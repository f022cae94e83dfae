"""A real Docker-compatible engine for tests: Podman's API service on a private socket.

Each `PodmanEngine` has its own storage (`--root`, `--runroot`, vfs driver: no overlay
mounts left behind) and its own socket in a temporary directory, so two engines are two
independent "availability zones". The tiny image `localhost/busybox:test` is imported
from busybox-static without any registry. `stop()` force-removes every container of
the engine, stops the service and removes the directory.

Settings this machine needs (../shared/MACHINE-NOTES.md): runtime runc (crun fails on
cgroups here) and explicit default ulimits (raising rlimits fails otherwise).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests

IMAGE = "localhost/busybox:test"
BUSYBOX = Path("/bin/busybox")
CONTAINERS_CONF = """\
[engine]
runtime = "runc"
events_logger = "file"

[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
"""


def missing() -> str | None:
    """Why no engine can be started here (for pytest.skip), or None."""
    if shutil.which("podman") is None:
        return "podman is not installed (make setup-debs installs podman runc busybox-static)"
    if not BUSYBOX.is_file():
        return "busybox-static is not installed (/bin/busybox)"
    return None


def _rootfs(target: Path) -> None:
    """bin/busybox plus one link per applet: enough for sh, httpd, sleep."""
    bindir = target / "bin"
    bindir.mkdir(parents=True)
    shutil.copy2(BUSYBOX, bindir / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True, timeout=10
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (bindir / applet).symlink_to("busybox")
    (target / "tmp").mkdir()


class PodmanEngine:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="podman-"))
        self.socket = self.dir / "podman.sock"
        self.base_url = f"unix://{self.socket}"
        self.conf = self.dir / "containers.conf"
        self.conf.write_text(CONTAINERS_CONF)
        self.env = dict(os.environ, CONTAINERS_CONF=str(self.conf))
        self.proc: subprocess.Popen[bytes] | None = None

    def _podman(self) -> list[str]:
        return [
            "podman",
            "--root", str(self.dir / "root"),
            "--runroot", str(self.dir / "run"),
            "--storage-driver", "vfs",
            "--tmpdir", str(self.dir / "tmp"),
        ]  # fmt: skip

    def start(self) -> PodmanEngine:
        rootfs = self.dir / "rootfs"
        _rootfs(rootfs)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            [*self._podman(), "import", "-", IMAGE],
            stdin=tar.stdout,
            capture_output=True,
            check=True,
            env=self.env,
            timeout=60,
        )
        tar.wait(10)
        shutil.rmtree(rootfs)
        log = open(self.dir / "service.log", "ab")
        self.proc = subprocess.Popen(
            [*self._podman(), "system", "service", "--time=0", self.base_url],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"podman service exited: {self.log_text()[-2000:]}")
            if self.socket.exists() and self.ping():
                return self
            time.sleep(0.05)
        raise TimeoutError(f"podman service not ready: {self.log_text()[-2000:]}")

    def ping(self) -> bool:
        import docker

        try:
            client = docker.DockerClient(base_url=self.base_url, timeout=2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (docker.errors.DockerException, requests.RequestException):
            return False

    def client(self, timeout: float = 30):  # -> docker.DockerClient
        import docker

        return docker.DockerClient(base_url=self.base_url, timeout=timeout)

    def log_text(self) -> str:
        p = self.dir / "service.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def remove_all(self) -> None:
        """Force-remove every container of this engine (the service must be up)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        client = self.client()
        try:
            for c in client.containers.list(all=True, sparse=True):
                try:
                    c.remove(force=True)
                except Exception:  # noqa: BLE001 - best effort, the CLI sweep follows
                    pass
        finally:
            client.close()

    def stop(self) -> None:
        try:
            self.remove_all()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            # anything the API could not remove (service already dead): the CLI, same storage
            subprocess.run(
                [*self._podman(), "rm", "--all", "--force", "--time", "0"],
                capture_output=True,
                env=self.env,
                timeout=60,
            )
            self._unmount()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _unmount(self) -> None:
        prefix = str(self.dir) + "/"
        try:
            mounts = [
                line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
            ]
        except OSError:
            return
        for m in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True, timeout=10)

    def __enter__(self) -> PodmanEngine:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
