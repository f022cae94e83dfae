"""The demo replica as a real process on loopback."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.prometheus import free_port, wait_http


@contextlib.contextmanager
def running_replica(
    *extra: str, slots: int = 2, work: float = 0.2
) -> Iterator[tuple[str, subprocess.Popen]]:
    """A demo replica process; killed at the end whatever happens."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "autoscaler.demo.replica", "--port", str(port),
        "--slots", str(slots), "--work-seconds", str(work),
        "--replica-id", "r1", "--group", "g", *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    address = f"127.0.0.1:{port}"
    try:
        wait_http(f"http://{address}/metrics", timeout=20)
        yield address, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def get(address: str, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metrics(address: str) -> dict[tuple[str, tuple], float]:
    _, body = get(address, "/metrics")
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(address: str, name: str, **labels: str) -> float:
    return metrics(address)[(name, tuple(sorted(labels.items())))]


def wait_until(fn, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout}s")
        time.sleep(0.05)
    return value


def test_work_status_and_idle_metrics():
    with running_replica(slots=3) as (address, _):
        status, body = get(address, "/status")
        assert status == 200
        assert json.loads(body) == {"capacity": 3.0, "termination": False}
        assert get(address, "/work") == (200, b"ok\n")
        m = metrics(address)
        assert m[("replica_slots", ())] == 3
        assert m[("replica_termination", ())] == 0
        assert m[("replica_requests_total", (("result", "ok"),))] == 1
        assert m[("replica_requests_total", (("result", "rejected"),))] == 0
        assert not any(name.endswith("_created") for name, _ in m)
        assert get(address, "/nope")[0] == 404


def test_full_replica_rejects_and_metrics_show_busy_slots():
    with running_replica(slots=2, work=6.0) as (address, _):
        results: list[int] = []
        workers = [
            threading.Thread(target=lambda: results.append(get(address, "/work")[0]))
            for _ in range(2)
        ]
        for w in workers:
            w.start()
        try:
            # the 2 s mean reaches 2 only once both slots have been busy for 2 s
            wait_until(lambda: metric(address, "replica_busy_slots") == 2.0)
            assert metric(address, "replica_capacity") == 0.0
            assert json.loads(get(address, "/status")[1])["capacity"] == 0.0
            assert get(address, "/work", timeout=3) == (503, b"busy\n")
        finally:
            for w in workers:
                w.join(timeout=30)
        assert results == [200, 200]
        assert metric(address, "replica_requests_total", result="ok") == 2
        assert metric(address, "replica_requests_total", result="rejected") == 1
        # busy drains back to free capacity once the work is done
        wait_until(lambda: metric(address, "replica_capacity") == 2.0)


def test_terminate_endpoint_sets_the_flag():
    with running_replica() as (address, _):
        req = urllib.request.Request(f"http://{address}/terminate", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["termination"] is True
        assert metric(address, "replica_termination") == 1
        assert json.loads(get(address, "/status")[1])["termination"] is True


def test_terminate_after_option():
    with running_replica("--terminate-after", "0.5") as (address, _):
        wait_until(lambda: metric(address, "replica_termination") == 1)


def test_sigterm_finishes_in_flight_work_and_exits_zero():
    with running_replica(slots=1, work=2.0) as (address, proc):
        result: list[int] = []
        worker = threading.Thread(target=lambda: result.append(get(address, "/work")[0]))
        worker.start()
        wait_until(lambda: metric(address, "replica_busy_slots") > 0)
        proc.send_signal(signal.SIGTERM)
        worker.join(timeout=30)
        assert result == [200]
        assert proc.wait(timeout=20) == 0
        _, err = proc.communicate(timeout=5)
        assert err == b""  # quiet: no per-request logs, no traceback
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://{address}/metrics", timeout=2)


def test_bad_arguments_are_refused():
    out = subprocess.run(
        [sys.executable, "-m", "autoscaler.demo.replica", "--port", "1", "--slots", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "--slots must be >= 1" in out.stderr
