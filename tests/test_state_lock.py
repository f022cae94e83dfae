"""Issue 11: without etcd, a second instance on the same state directory refuses to act.

Real `autoscaler run` processes on one configuration (local provider, a stand-in
Prometheus answering no data): the first creates the group's replica; the second exits 2
at start naming the first; `once` refuses too (`once --dry-run` runs); after the first is
SIGKILLed (the kernel drops its flock) a restart takes over without a duplicate.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from autoscaler.providers.registry import build_provider
from autoscaler.runtime import config_source
from autoscaler.runtime.state_lock import StateDirLocked, acquire
from tests.harness.prometheus import free_port
from tests.harness.stack import local_group
from tests.test_regressions_observe import fake_prometheus, ok_matrix  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def test_the_lock_is_exclusive_names_its_holder_and_is_freed(tmp_path: Path) -> None:
    held = acquire(tmp_path / "state")
    with pytest.raises(StateDirLocked, match=f"pid {os.getpid()} on "):
        acquire(tmp_path / "state")
    held.release()
    acquire(tmp_path / "state").release()


@pytest.fixture
def setup(fake_prometheus, tmp_path: Path) -> Iterator[tuple[Path, Callable[..., object]]]:  # noqa: F811
    prom = fake_prometheus(lambda q: ok_matrix([]))
    group = local_group(tmp_path / "run", min=1, max=1)
    group["policies"] = [{"type": "headroom", "min_available": 0}]
    config = {
        "prometheus": {"url": prom.url, "timeout_seconds": 2},
        "interval_seconds": 0.5,
        "listen": f"127.0.0.1:{free_port()}",
        "groups": {"web": group},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    loaded = config_source.load(str(path), {}).config
    provider = build_provider(loaded.groups[0], loaded)
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autoscaler", *args, "--config", str(path)],
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        return proc

    yield path, start, provider  # type: ignore[misc]
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    provider.delete([r.id for r in provider.list()])  # replicas outlive the daemon
    provider.close()


def _heartbeats(url: str) -> float:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    lines = [x for x in text.splitlines() if x.startswith("autoscaler_heartbeat_total ")]
    return float(lines[0].split()[1]) if lines else 0.0


def _wait(cond: Callable[[], bool], timeout: float = 60.0) -> bool:
    """cond() within `timeout`: generous, as a loaded machine starts a daemon slowly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_a_second_daemon_on_the_same_state_dir_refuses_and_a_restart_takes_over(
    setup,
) -> None:
    path, start, provider = setup
    first = start("run")
    assert _wait(lambda: len(provider.list()) == 1), "the first daemon never acted"

    second = start("run")
    assert second.wait(timeout=60) == 2
    said = second.stdout.read()
    assert f"in use by another autoscaler (pid {first.pid} on " in said, said
    assert "only one instance may act" in said

    once = start("once")
    assert once.wait(timeout=60) == 2 and f"pid {first.pid}" in once.stdout.read()
    dry = start("once", "--dry-run")
    assert dry.wait(timeout=60) in (0, 1)
    assert "in use by another autoscaler" not in dry.stdout.read()

    first.send_signal(signal.SIGKILL)  # no clean exit: the kernel frees the lock
    first.wait(timeout=10)
    third = start("run")
    lock = path.parent / "run" / "autoscaler.lock"
    assert _wait(lambda: f'"pid": {third.pid}' in lock.read_text()), "restart never locked"
    # It cycles (acts) on the group it found at its size: no duplicate.
    url = f"http://{yaml.safe_load(path.read_text())['listen']}/metrics"
    assert _wait(lambda: _heartbeats(url) >= 3), "the restart never cycled"
    assert third.poll() is None and len(provider.list()) == 1
    third.send_signal(signal.SIGTERM)
    assert third.wait(timeout=60) == 0
