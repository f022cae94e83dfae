"""The fault suite (autoscaler/chaos/) against the real daemon, Prometheus and replicas,
and unit regressions for the daemon defects it found.

The test runs the representative subset (`--quick`: at least one row per category, see
docs/chaos.md); `make chaos` runs every row.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autoscaler.chaos import suite
from autoscaler.core.spec import HeadroomPolicyConfig, ScalingBehavior
from tests.fake_daemon import daemon, group
from tests.harness.prometheus import POLL


def test_quota_failure_clears_once_a_create_succeeds(tmp_path: Path) -> None:
    # Found by the suite (row "provider quota exhausted"): the quota failure stayed in
    # /status `errors` forever after the quota had room again, so the group never looked
    # recovered.
    spec = group(scale_up=ScalingBehavior(cooldown_seconds=0))
    d = daemon(tmp_path, spec, 1)
    d.provider.create_mode = "quota"
    d.cycle(3.0)  # load 3 x target 1: wants 3 replicas; the quota refuses
    assert "provider g quota" in d.controller.failures.failing_for("g")
    d.provider.create_mode = "ok"
    d.cycle(3.0)
    assert d.count > 1
    assert d.controller.failures.failing_for("g") == {}
    d.controller.close()


def test_a_lost_create_answer_clears_once_nothing_is_left_to_create(tmp_path: Path) -> None:
    # Found by the suite (row "provider create succeeds, answer lost"): the create worked,
    # its answer was lost, the next cycle listed the replica and needed nothing more; the
    # create failure stayed in /status `errors` until some later create succeeded.
    spec = group(scale_up=ScalingBehavior(cooldown_seconds=0))
    d = daemon(tmp_path, spec, 1)
    real_create = d.provider.create

    def lost(count: int) -> object:
        real_create(count)
        raise RuntimeError("connection reset by peer")

    d.provider.create = lost  # type: ignore[method-assign]
    d.cycle(2.0)  # wants 2: the replica is created, the answer lost
    assert d.count == 2 and "provider g create" in d.controller.failures.failing_for("g")
    d.provider.create = real_create  # type: ignore[method-assign]
    d.cycle(1.0)  # 2 replicas at target: nothing to create, no duplicate
    assert d.count == 2
    assert d.controller.failures.failing_for("g") == {}
    d.controller.close()


def _prometheus_stub():
    """A loopback stand-in answering every query with one fresh sample per query (its own,
    unshifted clock), with the `Date` header every HTTP server sends."""
    import json
    import threading
    import time as _time
    from email.utils import formatdate
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    real = _time.time

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def date_time_string(self, timestamp=None):  # Prometheus's clock, not the test's
            return formatdate(real(), usegmt=True)

        def do_GET(self):
            value = "0" if "termination" in self.path else "3"
            series = {"metric": {"group": "g", "replica": "r1"}, "values": [[real(), value]]}
            body = json.dumps(
                {"status": "success", "data": {"resultType": "matrix", "result": [series]}}
            ).encode()
            self.send_response(200)  # adds Date from the real clock
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL}, daemon=True
    ).start()
    return server


@pytest.mark.parametrize("offset", [3600.0, -3600.0, 0.0])
def test_sample_ages_are_judged_on_prometheus_clock(monkeypatch, offset: float) -> None:
    # Found by the suite (row "wall clock +1 h"): with the daemon's clock 1 h ahead every
    # sample looked stale, every replica "without data", and the group grew to max.
    import time

    from autoscaler.config import Config, PrometheusConfig
    from autoscaler.core.model import Replica, ReplicaState
    from autoscaler.observe.prometheus import PrometheusReader

    server = _prometheus_stub()
    try:
        spec = group(policies=(HeadroomPolicyConfig("headroom", min_available=2.0),))
        url = f"http://127.0.0.1:{server.server_address[1]}"
        cfg = Config(prometheus=PrometheusConfig(url=url), groups=(spec,))
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + offset)
        reader = PrometheusReader(cfg)
        replica = Replica("r1", "g", ReplicaState.ACTIVE, created_at=0.0)
        for _ in range(2):  # the first answer measures the offset, the second uses it
            obs = reader.observe([spec], {"g": [replica]}, time.time())["g"]
        monkeypatch.undo()
        assert obs.prometheus_ok
        assert obs.metrics["r1"].capacity == 3.0
        assert abs(reader.skew.seconds - offset) <= 1.5
        reader.close()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(420)
@pytest.mark.skipif(not shutil.which("prometheus"), reason="needs Debian's prometheus")
def test_fault_suite_representative_subset() -> None:
    selected = [s for s in suite.scenarios() if s.quick]
    assert {s.category for s in selected} == {s.category for s in suite.scenarios()}
    lines: list[str] = []
    rows = suite.run(selected, lines.append)
    table = suite.table(rows)
    print(table)
    assert len(rows) == len(selected), "\n".join(lines)
    assert all(r.ok() for r in rows), table + "\n" + "\n".join(lines)
