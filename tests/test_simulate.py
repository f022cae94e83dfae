"""Replay, oracle, reports and backtests of `autoscaler simulate`."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler import simulation
from autoscaler.simulation import baselines
from autoscaler.simulation.backtest import parse_time, range_trace
from autoscaler.simulation.oracle import oracle
from autoscaler.simulation.plot import plot
from autoscaler.simulation.replay import replay, tick_demand, tick_seconds
from autoscaler.simulation.report import write_timeline
from autoscaler.simulation.sim_provider import SimProvider
from autoscaler.simulation.spec import ReplicaModel
from autoscaler.simulation.trace import Trace, from_points, load_csv
from tests.harness.prometheus import backfilled

MODEL = ReplicaModel(per_replica=1.0, boot_delay=120)


def wave(minutes: int, base: float = 5.0, amp: float = 15.0, period: float = 240.0) -> Trace:
    demand = tuple(
        round(base + amp * max(0.0, math.sin(2 * math.pi * i / period)), 3) for i in range(minutes)
    )
    return Trace("wave", 0.0, 60.0, demand)


def oracle_for(trace: Trace, model: ReplicaModel, initial: int):
    dt = tick_seconds(trace, model, [])
    return oracle(trace, model, dt, initial, tick_demand(trace, dt))


def figures(run):
    return dataclasses.replace(run.summary, wall_seconds=0.0)


# --- traces -------------------------------------------------------------------------------


def test_load_csv_reads_the_shared_format(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("t_seconds,demand\n0,1.5\n60,2\n120,0\n")
    tr = load_csv(p)
    assert (tr.start, tr.step, tr.demand, tr.name) == (0.0, 60.0, (1.5, 2.0, 0.0), "t")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,value\n0,1\n60,2\n", ":1: expected the header 't_seconds,demand'"),
        ("t_seconds,demand\n0,1\n60,x\n", ":3: expected two numbers"),
        ("t_seconds,demand\n0,1\n60,nan\n", ":3: expected finite t and demand >= 0"),
        ("t_seconds,demand\n0,1\n\n120,-1\n", ":4: expected finite t and demand >= 0"),
        ("t_seconds,demand\n0,1\n60,1\n60,2\n", ":4: t_seconds must increase"),
        ("t_seconds,demand\n", "no data rows"),
        ("t_seconds,demand\n0,1\n", "at least 2 samples"),
    ],
)
def test_load_csv_rejects_bad_files_naming_the_line(tmp_path, text, message):
    """The simulator reads traces with the load generator's strict loader."""
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_csv(p)
    assert str(p) in str(info.value) or "t: a trace" in str(info.value)


def test_gaps_and_unusable_values_become_zero_demand():
    tr = from_points("g", [(0, 1.0), (60, float("nan")), (180, 3.0)])
    assert tr.demand == (1.0, 0.0, 0.0, 3.0)


# --- simulated provider -------------------------------------------------------------------


def test_sim_provider_boots_after_the_delay_and_fails_at_the_given_rate():
    p = SimProvider("g", ReplicaModel(1.0, boot_delay=120), now=0.0)
    ids = p.create(2).succeeded
    p.advance(119)
    assert (p.active, p.building) == (0, 2)
    p.advance(120)
    assert (p.active, p.building) == (2, 0)
    assert p.delete([ids[0], "nope"]).failed == [("nope", "no such replica")]
    assert p.active == 1 and len(p.list()) == 1

    flaky = SimProvider("g", ReplicaModel(1.0, boot_delay=60, failure_rate=0.5, seed=3), 0.0)
    flaky.create(400)
    flaky.advance(60)
    assert flaky.active + flaky.failed == 400
    assert 140 < flaky.failed < 260


# --- replay -------------------------------------------------------------------------------


def test_replay_is_deterministic_with_failures_and_forecasts():
    tr = wave(600)
    model = ReplicaModel(per_replica=1.0, boot_delay=120, failure_rate=0.1, seed=7)
    for spec in (baselines.predictive(model), baselines.hpa(model)):
        a, b = replay(tr, spec, model), replay(tr, spec, model)
        assert figures(a) == figures(b)
        assert a.timeline == b.timeline
        assert a.summary.created > 0 and a.summary.scale_downs > 0


def test_replay_counts_cost_and_under_provisioning_exactly():
    # 3 minutes of demand 2.5 then 3 minutes of 0.5; ScaleIt starts with 4 replicas.
    tr = Trace("steps", 0.0, 60.0, (2.5, 2.5, 2.5, 0.5, 0.5, 0.5))
    spec = baselines.scaleit(MODEL, interval=60.0)
    run = replay(tr, spec, MODEL, initial=4)
    tl = run.timeline
    assert tl.dt == 60
    # minute 0..3 at 4 replicas (utilization 0.625 -> ceil(4*0.625/0.8)=4... in band? no:
    # 0.625 < 0.8 - 0.1 -> 4 * 0.625 / 0.8 = 3.125 -> 4: holds)
    assert tl.active[:4] == [4, 4, 4, 4]
    # minute 4 sees the mean of minute 3 (0.5): 4 * (0.125/0.8) -> 1 replica
    assert tl.active[4:] == [1, 1]
    s = run.summary
    assert s.replica_hours == pytest.approx((4 * 4 + 2) / 60)
    assert s.under_minutes == 0 and s.under_area == 0
    assert s.over_replica_hours == pytest.approx((3 * 1.5 + 3.5 + 0.5 + 0.5) / 60)
    assert (s.scale_ups, s.scale_downs, s.deleted) == (0, 1, 3)


def test_under_provisioning_while_new_replicas_boot():
    tr = Trace("jump", 0.0, 60.0, (1.0,) * 2 + (3.0,) * 8)
    run = replay(tr, baselines.scaleit(MODEL, interval=60.0), MODEL, initial=2)
    s = run.summary
    # the jump at minute 2 is seen at minute 3; replicas ordered then serve from minute 5
    assert s.under_minutes == 3
    assert s.under_area == pytest.approx(3 * 1.0 * 60)
    assert run.timeline.active[5] >= 3


# --- oracle -------------------------------------------------------------------------------


def test_oracle_keeps_a_replica_through_short_gaps_and_replaces_it_after_long_ones():
    model = ReplicaModel(1.0, boot_delay=120)
    # level 2 is needed at minutes 0-1, 3-4 (gap 1 min <= boot: kept), 12 (gap 7: rebuilt)
    d = [2, 2, 1, 2, 2] + [1] * 7 + [2, 1]
    tr = Trace("gaps", 0.0, 60.0, tuple(float(x) for x in d))
    o = oracle_for(tr, model, initial=2).timeline
    assert [a + b for a, b in zip(o.active, o.building, strict=True)] == (
        [2] * 5 + [1] * 5 + [2, 2, 2, 1]
    )
    assert o.active[12] == 2 and o.building[10:12] == [1, 1]
    assert o.created[10] == 1 and o.deleted[5] == 1 and o.deleted[13] == 1


def test_oracle_is_short_only_before_the_first_boot_delay():
    tr = Trace("jump", 0.0, 60.0, (1.0, 5.0, 5.0, 5.0))
    o = oracle_for(tr, MODEL, initial=1).summary
    assert o.under_minutes == 1  # minute 1; replicas started at 0 are active from minute 2


@settings(max_examples=60, deadline=None)
@given(
    demand=st.lists(st.integers(0, 12), min_size=3, max_size=40),
    policy=st.sampled_from(sorted(baselines.BUILTIN)),
    target=st.sampled_from([0.5, 0.8, 1.0]),
    initial=st.integers(1, 12),
)
def test_no_schedule_without_under_provisioning_is_cheaper_than_the_oracle(
    demand, policy, target, initial
):
    """The oracle bound: any run with zero under-provisioned ticks has at least the
    oracle's replica-hours, on the same trace, model and initial replicas."""
    tr = Trace("r", 0.0, 60.0, tuple(float(x) for x in demand))
    spec = baselines.BUILTIN[policy](MODEL, target)
    run = replay(tr, spec, MODEL, initial=initial).summary
    best = oracle_for(tr, MODEL, initial=max(1, initial))
    if run.under_minutes == 0:
        assert run.replica_hours >= best.summary.replica_hours - 1e-9
    # the oracle is short only before its first replicas can have booted (ticks 0 and 1)
    tl = best.timeline
    assert all(
        a * MODEL.per_replica >= d for d, a in list(zip(tl.demand, tl.active, strict=True))[2:]
    )


def test_oracle_bound_holds_for_generous_policies_on_a_real_trace_slice():
    tr = load_csv(
        Path(__file__).parents[1].parent / "shared/traces/nasa_ksc_1995-07-01_27.5d_1min.csv"
    )
    tr = tr.head(6 * 3600)
    model = ReplicaModel(tr.peak / 30, 120)
    init = 40
    best = oracle_for(tr, model, init).summary
    run = replay(tr, baselines.simple_scale_vm(model, 10 * model.per_replica), model, initial=init)
    assert run.summary.under_minutes == 0
    assert run.summary.replica_hours > best.replica_hours


# --- outputs ------------------------------------------------------------------------------


def test_timeline_csv_and_json_and_png(tmp_path):
    tr = wave(120)
    runs = [replay(tr, baselines.reactive(MODEL), MODEL), oracle_for(tr, MODEL, 5)]
    write_timeline(runs, tmp_path / "t.csv")
    with (tmp_path / "t.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 240 and {r["policy"] for r in rows} == {"reactive", "oracle"}
    first = rows[0]
    assert float(first["capacity"]) == float(first["active"]) * MODEL.per_replica
    write_timeline(runs, tmp_path / "t.json")
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc["runs"][0]["summary"]["policy"] == "reactive"
    assert len(doc["runs"][1]["timeline"]) == 120

    plot(runs, tmp_path / "p.png", title="wave")
    data = (tmp_path / "p.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "p.png").shape[2] in (3, 4)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    simulation.add_arguments(parser)
    return simulation.run(parser.parse_args(argv))


def test_cli_compares_configurations_and_writes_files(tmp_path, capsys):
    trace = tmp_path / "t.csv"
    trace.write_text(
        "t_seconds,demand\n" + "".join(f"{i * 60},{d}\n" for i, d in enumerate(wave(180).demand))
    )
    rc = _cli(
        [
            "--trace",
            str(trace),
            "--peak-replicas",
            "20",
            "--policy",
            "hpa",
            "--policy",
            "predictive",
            "--plot",
            str(tmp_path / "o.png"),
            "--timeline",
            str(tmp_path / "o.json"),
            "--json",
            str(tmp_path / "s.json"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "hpa" in out and "predictive" in out and "oracle" in out and "replay speed" in out
    summaries = json.loads((tmp_path / "s.json").read_text())
    assert [s["policy"] for s in summaries] == ["hpa", "predictive", "oracle"]
    assert (tmp_path / "o.png").stat().st_size > 0
    assert _cli(["--trace", str(trace)]) == 2  # no replica model
    assert "per-replica" in capsys.readouterr().err


def test_parse_time_forms():
    from datetime import UTC, datetime

    now = datetime(2024, 1, 2, tzinfo=UTC)
    assert parse_time("now-1d", now) == datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_time("1700000000").timestamp() == 1700000000
    assert parse_time("2024-01-01T00:00:00Z") == datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_time("now+1d", now)


# --- backtest against a real Prometheus ---------------------------------------------------


@pytest.fixture
def prometheus_with_history(tmp_path):
    """A real Prometheus whose TSDB holds 3 hours of a known series, made by promtool."""
    if not shutil.which("promtool") or not shutil.which("prometheus"):
        pytest.skip("prometheus/promtool not installed: run `make setup`")
    end = (int(time.time()) // 60) * 60 - 600
    start = end - 3 * 3600
    lines = ["# HELP sim_demand Demand.", "# TYPE sim_demand gauge"]
    values = {}
    for t in range(start, end + 1, 60):
        minute = (t - start) // 60
        a, b = 1 + minute % 7, 0.5 * (minute % 3)
        values[t] = a + b
        lines.append(f'sim_demand{{instance="a"}} {a} {t}')
        lines.append(f'sim_demand{{instance="b"}} {b} {t}')
    server = backfilled(lines, tmp_path, config_text="global:\n  scrape_interval: 15s\n")
    try:
        yield server, start, end, values
    finally:
        server.cleanup()


def test_backtest_reads_the_range_query_from_a_real_prometheus(prometheus_with_history, tmp_path):
    server, start, end, values = prometheus_with_history
    from datetime import UTC, datetime

    tr = range_trace(
        server.url,
        "sum(sim_demand)",
        datetime.fromtimestamp(start, UTC),
        datetime.fromtimestamp(end, UTC),
        60,
        timeout=10,
    )
    assert tr.step == 60 and tr.start == start
    assert list(tr.demand) == [pytest.approx(values[t]) for t in range(start, end + 1, 60)]

    out = tmp_path / "bt.csv"
    rc = _cli(
        [
            "--prometheus-url",
            server.url,
            "--query",
            "sum(sim_demand)",
            "--start",
            str(start),
            "--end",
            str(end),
            "--step",
            "60",
            "--per-replica",
            "1",
            "--policy",
            "reactive",
            "--timeline",
            str(out),
        ]
    )
    assert rc == 0
    with out.open() as f:
        rows = [r for r in csv.DictReader(f) if r["policy"] == "reactive"]
    assert len(rows) == len(values)
    assert float(rows[10]["demand"]) == pytest.approx(values[start + 600])


def test_backtest_reports_an_unreachable_prometheus_quickly(capsys):
    from tests.harness.prometheus import free_port

    rc = _cli(
        [
            "--prometheus-url",
            f"http://127.0.0.1:{free_port()}",
            "--query",
            "up",
            "--per-replica",
            "1",
            "--timeout",
            "2",
        ]
    )
    assert rc != 0
