"""Load generator against real demo replicas, demand curves and traces."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from autoscaler.demo import loadgen
from autoscaler.demo.loadgen import LoadGenerator, ramp_spike_fall, sd_targets
from autoscaler.simulation import traces
from tests.harness.prometheus import http_server
from tests.test_demo_replica import metric, running_replica

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
AZURE = TRACES / "azure_llm_conv_2023-11-16_1s.csv"
NASA = TRACES / "nasa_ksc_1995-07-01_27.5d_1min.csv"


@contextlib.contextmanager
def sd_server(doc: object) -> Iterator[str]:
    """A loopback http_sd endpoint answering `doc` (a list or a callable returning one)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(doc() if callable(doc) else doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with http_server(Handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/sd"


def run_for(gen: LoadGenerator, seconds: float):
    gen.start()
    try:
        time.sleep(seconds)
    finally:
        gen.stop()
    return gen.totals()


def test_sends_about_the_asked_rate_round_robin_over_real_replicas():
    with (
        running_replica(slots=16, work=0.01) as (a, _),
        running_replica(slots=16, work=0.01) as (
            b,
            _,
        ),
    ):
        gen = LoadGenerator(lambda t: 20.0, lambda: [a, b], poisson=False, timeout_seconds=5)
        t = run_for(gen, 4.0)
        # 20/s for ~4 s: loose bounds, the machine is shared
        assert 40 <= t.sent <= 120, t
        assert t.ok == t.sent and t.errors == 0 and t.rejected == 0 and t.dropped == 0
        served_a = metric(a, "replica_requests_total", result="ok")
        served_b = metric(b, "replica_requests_total", result="ok")
        assert served_a + served_b == t.ok
        assert abs(served_a - served_b) <= 1  # round-robin


def test_poisson_rate_and_interval_stats():
    with running_replica(slots=16, work=0.01) as (a, _):
        gen = LoadGenerator(lambda t: 25.0, lambda: [a], seed=7, interval_seconds=2.0)
        gen.start()
        try:
            time.sleep(3.0)
            window = gen.stats()
        finally:
            gen.stop()
        total = gen.totals()
        assert 35 <= total.sent <= 130, total
        assert window.demand == 25.0 and window.interval_seconds == 2.0
        assert 0 < window.sent < total.sent  # only the last 2 s
        assert window.ok == window.sent


def test_full_replica_rejections_are_counted():
    with running_replica(slots=1, work=1.0) as (a, _):
        gen = LoadGenerator(lambda t: 10.0, lambda: [a], poisson=False)
        t = run_for(gen, 2.5)
        assert t.rejected > 0 and t.ok >= 1 and t.errors == 0
        assert metric(a, "replica_requests_total", result="rejected") == t.rejected


def test_unreachable_target_is_an_error_and_no_target_is_counted():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        t = run_for(LoadGenerator(lambda t: 10.0, lambda: [dead], poisson=False), 1.5)
    assert t.errors > 0 and t.ok == 0
    t = run_for(LoadGenerator(lambda t: 10.0, lambda: [], poisson=False), 1.5)
    assert t.sent == 0 and t.no_target > 0


def test_bounded_pool_drops_instead_of_queueing():
    with running_replica(slots=8, work=3.0) as (a, _):
        gen = LoadGenerator(lambda t: 20.0, lambda: [a], workers=2, poisson=False)
        t = run_for(gen, 1.5)
    assert t.dropped > 0


def test_sd_targets_reads_http_sd_and_feeds_the_generator():
    with running_replica(slots=8, work=0.01) as (a, _):
        doc = [
            {"targets": [a], "labels": {"group": "g", "replica": "r1"}},
            {"targets": [], "labels": {}},
            {"labels": {"no": "targets"}},
        ]
        with sd_server(doc) as url:
            assert sd_targets(url, timeout=5) == [a]
            gen = LoadGenerator(
                lambda t: 10.0, lambda: sd_targets(url), poisson=False, targets_refresh_seconds=0.5
            )
            t = run_for(gen, 1.5)
        assert t.ok > 0 and t.errors == 0 and t.targets == 1
    with sd_server({"not": "a list"}) as url, pytest.raises(ValueError, match="JSON list"):
        sd_targets(url, timeout=5)


def test_sd_targets_times_out():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()  # accepts the connection, never answers
        started = time.monotonic()
        with pytest.raises(OSError):
            sd_targets(f"http://127.0.0.1:{s.getsockname()[1]}/sd", timeout=0.5)
        assert time.monotonic() - started < 10


def test_ramp_spike_fall_shape():
    d = ramp_spike_fall(100, base=2, peak=20)
    assert d(0) == 2
    assert d(15) == pytest.approx(6.5)  # halfway up the ramp to 11
    assert d(35) == 20  # spike
    assert d(50) == pytest.approx(11)  # falling
    assert d(80) == 2
    assert d(135) == 20  # repeats
    with pytest.raises(ValueError):
        ramp_spike_fall(0, 1, 2)


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def test_load_shared_traces():
    azure = traces.load_trace(_need(AZURE))
    assert len(azure) == 3503 and azure[0] == (0.0, 1.0)
    assert max(d for _, d in azure) == 19
    nasa = traces.load_trace(_need(NASA))
    assert len(nasa) == 39692 and nasa[1][0] - nasa[0][0] == 60
    assert max(d for _, d in nasa) == pytest.approx(6.75, abs=0.01)
    assert traces.trace_span_seconds(nasa) == 39692 * 60


def test_trace_curve_compresses_and_rescales():
    rows = traces.load_trace(_need(NASA))
    curve = traces.trace_curve(rows, speedup=600, peak_rps=30)
    values = [d for _, d in rows]
    peak = max(values)
    # wall second 1 = trace second 600 = row 10
    assert curve(1.0) == pytest.approx(values[10] * 30 / peak)
    assert curve(0.05) == pytest.approx(values[0] * 30 / peak)  # held within its step
    i = values.index(peak)
    assert curve(i * 60 / 600) == pytest.approx(30)
    span = traces.trace_span_seconds(rows) / 600
    assert curve(span + 1.0) == curve(1.0)  # wraps around
    shifted = traces.trace_curve(rows, speedup=600, peak_rps=30, offset_seconds=600)
    assert shifted(0) == curve(1.0)


def test_trace_curve_small_and_invalid():
    rows = [(0.0, 1.0), (10.0, 4.0), (20.0, 2.0)]
    c = traces.trace_curve(rows, speedup=10, peak_rps=8)
    assert [c(0), c(1), c(2), c(3)] == [2.0, 8.0, 4.0, 2.0]
    assert traces.trace_curve([(0.0, 0.0)], 1, 5)(3) == 0.0
    with pytest.raises(ValueError):
        traces.trace_curve(rows, speedup=0, peak_rps=1)
    with pytest.raises(ValueError):
        traces.trace_curve([], speedup=1, peak_rps=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,value\n0,1\n", ":1: expected the header"),
        ("t_seconds,demand\n0,1\n1,x\n", ":3: expected two numbers"),
        ("t_seconds,demand\n0,1\n1,-2\n", ":3: expected finite t and demand >= 0"),
        ("t_seconds,demand\n0,1\n5,1\n5,2\n", ":4: t_seconds must increase"),
        ("t_seconds,demand\n", "no data rows"),
    ],
)
def test_load_trace_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        traces.load_trace(path)


def _cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    loadgen.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_runs_against_sd_and_reports(capsys):
    with running_replica(slots=8, work=0.01) as (a, _):
        with sd_server([{"targets": [a], "labels": {}}]) as url:
            args = _cli(
                "--sd-url", url, "--pattern", "constant", "--peak-rps", "10",
                "--duration", "2", "--report-every", "1",
            )  # fmt: skip
            assert loadgen.run(args) == 0
        served = metric(a, "replica_requests_total", result="ok")
    out = capsys.readouterr().out
    assert "demand=10.0/s" in out and "targets=1" in out
    total = next(line for line in out.splitlines() if line.startswith("total:"))
    assert f"ok={int(served)}" in total and served > 0


def test_cli_trace_pattern_and_errors(capsys, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("t_seconds,demand\n0,1\n60,3\n")
    with running_replica(slots=8, work=0.01) as (a, _):
        args = _cli(
            "--target", a, "--pattern", "trace", "--trace", str(trace),
            "--peak-rps", "6", "--duration", "1", "--report-every", "0.5",
        )  # fmt: skip
        assert loadgen.run(args) == 0
    assert "total:" in capsys.readouterr().out
    assert loadgen.run(_cli("--pattern", "ramp")) == 2  # no targets at all
    assert loadgen.run(_cli("--target", "x:1", "--pattern", "trace")) == 2  # no --trace
    assert "needs --trace" in capsys.readouterr().out


def test_first_balance_fills_targets_in_order() -> None:
    """`first` sends to the first target until it has `slots_per_target` in flight."""
    from autoscaler.demo.loadgen import LoadGenerator

    gen = LoadGenerator(lambda t: 0.0, lambda: [], balance="first", slots_per_target=2)
    targets = ["a:1", "b:2", "c:3"]
    picks = []
    for _ in range(5):
        t = gen._first_available(targets)
        gen._inflight[t] = gen._inflight.get(t, 0) + 1
        picks.append(t)
    assert picks == ["a:1", "a:1", "b:2", "b:2", "c:3"]
    gen._inflight["a:1"] = 0  # a frees up: the next request goes back to it
    assert gen._first_available(targets) == "a:1"
    gen._inflight = dict.fromkeys(targets, 9)  # all full: least loaded
    gen._inflight["b:2"] = 3
    assert gen._first_available(targets) == "b:2"
