"""`autoscaler simulate` as a new user meets it: reasons in the timeline, the per-replica
demand said, a config without a provider, the plot's format and window, and a headroom
group behind an even load spread."""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import pytest

from autoscaler import simulation
from autoscaler.core.spec import GroupConfig, HeadroomPolicyConfig, ProviderConfig
from autoscaler.simulation import baselines
from autoscaler.simulation.command import window_bound
from autoscaler.simulation.plot import Window, plot, window_summary
from autoscaler.simulation.replay import replay
from autoscaler.simulation.spec import PolicySpec, ReplicaModel
from autoscaler.simulation.trace import Trace

MODEL = ReplicaModel(per_replica=1.0, boot_delay=120)


def wave(minutes: int, base: float = 5.0, amp: float = 15.0, period: float = 240.0) -> Trace:
    demand = tuple(
        round(base + amp * max(0.0, math.sin(2 * math.pi * i / period)), 3) for i in range(minutes)
    )
    return Trace("wave", 0.0, 60.0, demand)


def _csv(trace: Trace, path: Path) -> Path:
    path.write_text(
        "t_seconds,demand\n"
        + "".join(f"{i * trace.step:g},{d}\n" for i, d in enumerate(trace.demand))
    )
    return path


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    simulation.add_arguments(parser)
    return simulation.run(parser.parse_args(argv))


def test_timeline_carries_the_planners_codes_and_reasons(tmp_path, capsys) -> None:
    trace = _csv(wave(240), tmp_path / "t.csv")
    out = tmp_path / "tl.csv"
    argv = ["--trace", str(trace), "--per-replica", "1", "--policy", "reactive"]
    assert _cli([*argv, "--timeline", str(out)]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    decided = [r for r in rows if r["policy"] == "reactive" and r["code"]]
    assert decided, "no evaluation tick carries a code"
    assert {"target_above", "target_below"} & {r["code"] for r in decided}
    assert all(r["reason"] for r in decided)
    scaled = [r for r in rows if r["policy"] == "reactive" and int(r["created"])]
    assert scaled and all(r["code"] for r in scaled)  # an action always says why
    assert all(r["code"] == "" for r in rows if r["policy"] == "oracle")


def test_peak_replicas_prints_the_per_replica_demand(tmp_path, capsys) -> None:
    trace = _csv(wave(120), tmp_path / "t.csv")
    assert _cli(["--trace", str(trace), "--peak-replicas", "10", "--policy", "hpa"]) == 0
    out = capsys.readouterr().out
    assert "per-replica demand: 2 (trace peak 20 / --peak-replicas 10)" in out


def test_config_without_provider_and_its_replica_capacity(tmp_path, capsys) -> None:
    trace = _csv(wave(120), tmp_path / "t.csv")
    cfg = tmp_path / "g.yaml"
    cfg.write_text(
        "interval_seconds: 60\n"
        "groups:\n"
        "  web:\n"
        "    min: 1\n"
        "    max: 40\n"
        "    replica_capacity: 4\n"
        "    policies:\n"
        "      - {type: headroom, min_available: 4, scale_in: spread}\n"
    )
    # no provider block, no --per-replica: the group's replica_capacity is the demand
    assert _cli(["--trace", str(trace), "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "per-replica demand: 4 (replica_capacity of the configuration)" in out
    # a different per-replica demand: said, and the slots scaled to it
    assert _cli(["--trace", str(trace), "--config", str(cfg), "--per-replica", "2"]) == 0
    out = capsys.readouterr().out
    assert "replica_capacity 4 slots stand for a demand of 2" in out
    assert "web" in out
    # a provider block that is there is not checked: its SDK need not be installed
    cfg.write_text(
        cfg.read_text().replace("  web:\n", "  web:\n    provider: {type: nosuch, x: 1}\n")
    )
    assert _cli(["--trace", str(trace), "--config", str(cfg)]) == 0


def test_step_help_says_what_it_applies_to() -> None:
    parser = argparse.ArgumentParser()
    simulation.add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "built-in --policy runs" in text and "interval_seconds of their file" in text


@pytest.mark.parametrize(
    "suffix,magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF")]
)
def test_plot_writes_the_format_its_name_asks(tmp_path, suffix, magic) -> None:
    runs = [replay(wave(240), baselines.reactive(MODEL), MODEL)]
    path = tmp_path / f"p{suffix}"
    plot(runs, path, title="wave")
    data = path.read_bytes()
    assert data.startswith(magic)
    if suffix == ".svg":
        assert b"<svg" in data[:1000]


def test_plot_unknown_suffix_fails_before_the_replay(tmp_path, capsys) -> None:
    trace = _csv(wave(60), tmp_path / "t.csv")
    rc = _cli(["--trace", str(trace), "--per-replica", "1", "--plot", str(tmp_path / "p.jpg")])
    assert rc == 2
    err = capsys.readouterr().err
    assert ".png, .svg, .pdf" in err and "got .jpg" in err
    assert not (tmp_path / "p.jpg").exists()


def test_window_forms() -> None:
    tr = wave(60)
    assert window_bound("90m", tr) == 5400
    assert window_bound("2d", tr) == 172800
    assert window_bound("3600", tr) == 3600
    absolute = Trace("abs", 1_700_000_000.0, 60.0, (1.0,) * 10)
    assert window_bound("1700000600", absolute) == 600
    assert window_bound("2023-11-14T22:23:20Z", absolute) == 600
    with pytest.raises(ValueError, match="offset"):
        window_bound("yesterday", tr)


def test_window_zooms_plot_and_table(tmp_path, capsys) -> None:
    tr = wave(24 * 60, period=24 * 60.0)
    trace = _csv(tr, tmp_path / "t.csv")
    png = tmp_path / "z.png"
    argv = ["--trace", str(trace), "--per-replica", "1", "--policy", "hpa", "--plot", str(png)]
    assert _cli([*argv, "--from", "6h", "--to", "8h"]) == 0
    out = capsys.readouterr().out
    assert "from 21600 s to 28800 s after the start:" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    # the window's figures are the window's: 2 h of the 24 h run
    run = replay(tr, baselines.hpa(MODEL, interval=15.0), MODEL)
    part = window_summary(run, 0.0, Window(6 * 3600, 8 * 3600))
    assert part.simulated_seconds == 2 * 3600
    assert part.replica_hours < run.summary.replica_hours
    assert _cli([*argv, "--from", "8h", "--to", "6h"]) == 2
    assert "is not after" in capsys.readouterr().err
    assert _cli([*argv, "--from", "30h"]) == 2


def _headroom_spec(scale_in: str) -> PolicySpec:
    group = GroupConfig(
        name=f"headroom-{scale_in}",
        provider=ProviderConfig(type="none"),
        min=1,
        max=100,
        replica_capacity=1.0,
        policies=(HeadroomPolicyConfig("free", 2.0, scale_in=scale_in),),
    )
    return PolicySpec(group.name, group, interval_seconds=60.0)


def test_headroom_behind_an_even_spread_scales_in_only_with_spread() -> None:
    # Demand rises then falls back; the simulated load balancer spreads it evenly, so no
    # replica is ever fully idle while there is demand.
    tr = wave(8 * 60, base=2.0, amp=20.0, period=480.0)
    idle = replay(tr, _headroom_spec("idle"), MODEL, initial=3)
    spread = replay(tr, _headroom_spec("spread"), MODEL, initial=3)
    assert idle.summary.scale_downs == 0  # the documented limit of `idle`
    assert spread.summary.scale_downs > 0
    assert spread.summary.replica_hours < 0.8 * idle.summary.replica_hours
    # and still keeps its headroom: never short while idle is not short either
    assert spread.summary.under_minutes <= idle.summary.under_minutes + 10


def test_slo_sets_the_queue_models_delay_threshold(tmp_path, capsys) -> None:
    trace = _csv(wave(240), tmp_path / "t.csv")
    argv = ["--trace", str(trace), "--per-replica", "1", "--policy", "hpa", "--no-oracle"]
    assert _cli([*argv, "--slo", "5"]) == 0
    assert ">5s %" in capsys.readouterr().out
    assert _cli([*argv, "--slo", "0"]) == 2
    assert "--slo must be" in capsys.readouterr().err
