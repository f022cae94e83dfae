"""`autoscaler simulate`: replay a trace or a Prometheus range query through the planner."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

from autoscaler.config import ConfigError
from autoscaler.providers.registry import load_config
from autoscaler.simulation import baselines
from autoscaler.simulation.backtest import parse_time, range_trace
from autoscaler.simulation.oracle import oracle
from autoscaler.simulation.plot import plot
from autoscaler.simulation.replay import (
    SENSOR_WINDOW_SECONDS,
    default_initial,
    replay,
    tick_demand,
    tick_seconds,
)
from autoscaler.simulation.report import table, write_timeline
from autoscaler.simulation.run import Run
from autoscaler.simulation.spec import PolicySpec, ReplicaModel, Signal
from autoscaler.simulation.trace import Trace, load_csv


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("demand source (one of)")
    src.add_argument("--trace", type=Path, help="CSV with header t_seconds,demand")
    src.add_argument("--prometheus-url", help="backtest: Prometheus base URL")
    src.add_argument("--query", help="backtest: PromQL of the group's demand, e.g. sum(rate(...))")
    src.add_argument("--start", default="now-2d", help="backtest start (RFC 3339, unix, now-2d)")
    src.add_argument("--end", default="now", help="backtest end")
    src.add_argument("--timeout", type=float, default=30.0, help="backtest query timeout (s)")
    pol = parser.add_argument_group("policies (default: every built-in)")
    pol.add_argument(
        "--policy",
        action="append",
        choices=sorted(baselines.BUILTIN),
        help="a built-in configuration; repeat to compare",
    )
    pol.add_argument("--config", type=Path, help="an autoscaler config file: one run per group")
    pol.add_argument("--compare", type=Path, nargs="+", default=[], help="more config files")
    pol.add_argument(
        "--signal",
        choices=[s.value for s in Signal],
        default=Signal.UTILIZATION_HEALTHY.value,
        help="what the target policies of --config groups read",
    )
    pol.add_argument("--target", type=float, default=0.8, help="utilization of built-ins")
    model = parser.add_argument_group("replica model")
    model.add_argument("--per-replica", type=float, help="demand one replica serves")
    model.add_argument(
        "--peak-replicas",
        type=int,
        help="instead of --per-replica: scale so that the peak needs this many replicas",
    )
    model.add_argument("--boot-delay", type=float, default=120.0, help="seconds (default 120)")
    model.add_argument("--failure-rate", type=float, default=0.0, help="boot failure probability")
    model.add_argument("--seed", type=int, default=0)
    model.add_argument("--initial", type=int, help="replicas running at the start")
    parser.add_argument("--step", type=float, default=60.0, help="evaluation interval (s)")
    parser.add_argument(
        "--sensor-window",
        type=float,
        default=SENSOR_WINDOW_SECONDS,
        metavar="SECONDS",
        help="policies see the demand's mean over this long, like rate(x[1m]) "
        f"(default {SENSOR_WINDOW_SECONDS:g}, whatever the trace's step)",
    )
    parser.add_argument("--plot", type=Path, help="write a PNG plot here")
    parser.add_argument("--timeline", type=Path, help="write the timeline (.csv or .json)")
    parser.add_argument("--json", type=Path, help="write the summaries as JSON")
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle lower bound")


def _trace(args: argparse.Namespace) -> Trace:
    if args.trace and args.prometheus_url:
        raise ValueError("give either --trace or --prometheus-url, not both")
    if args.trace:
        return load_csv(args.trace)
    if args.prometheus_url and args.query:
        start, end = parse_time(args.start), parse_time(args.end)
        if end <= start:
            raise ValueError(f"--end {args.end} is not after --start {args.start}")
        return range_trace(args.prometheus_url, args.query, start, end, args.step, args.timeout)
    raise ValueError("give --trace FILE, or --prometheus-url URL with --query")


def _model(args: argparse.Namespace, trace: Trace) -> ReplicaModel:
    if args.per_replica is not None:
        per = args.per_replica
    elif args.peak_replicas:
        per = trace.peak / args.peak_replicas
    else:
        raise ValueError("give --per-replica N or --peak-replicas N")
    return ReplicaModel(per, args.boot_delay, args.failure_rate, args.seed)


def _specs(args: argparse.Namespace, model: ReplicaModel, trace_step: float) -> list[PolicySpec]:
    specs: list[PolicySpec] = []
    files = ([args.config] if args.config else []) + list(args.compare)
    for path in files:
        config = load_config(path)
        for g in config.groups:
            name = g.name if len(files) == 1 else f"{path.stem}:{g.name}"
            specs.append(
                PolicySpec(
                    name,
                    g,
                    interval_seconds=config.interval_seconds,
                    signal=Signal(args.signal),
                )
            )
    for name in args.policy or ([] if specs else list(baselines.BUILTIN)):
        factory = baselines.BUILTIN[name]
        interval = baselines.period(name, trace_step, args.step)
        specs.append(factory(model, args.target, interval=interval))
    return specs


def simulate(args: argparse.Namespace) -> tuple[list[Run], Run | None]:
    trace = _trace(args)
    model = _model(args, trace)
    specs = _specs(args, model, trace.step)
    initial = args.initial if args.initial is not None else default_initial(trace, model)
    runs = [
        replay(trace, s, model, initial=initial, window_seconds=args.sensor_window) for s in specs
    ]
    best = None
    if not args.no_oracle:
        dt = tick_seconds(trace, model, [])
        best = oracle(trace, model, dt, initial, tick_demand(trace, dt))
    return runs, best


def run(args: argparse.Namespace) -> int:
    try:
        runs, best = simulate(args)
    except (ValueError, OSError, ConfigError) as e:
        print(f"simulate: {e}", file=sys.stderr)
        return 2
    summaries = [r.summary for r in runs] + ([best.summary] if best else [])
    print(table(summaries, best.summary if best else None))
    total = sum(r.summary.simulated_seconds for r in runs) / 60
    wall = sum(r.summary.wall_seconds for r in runs)
    if wall > 0:
        print(f"replay speed: {total / wall:,.0f} simulated minutes per second")
    everything = runs + ([best] if best else [])
    if args.timeline:
        write_timeline(everything, args.timeline)
    if args.plot:
        plot(everything, args.plot, title=runs[0].summary.trace if runs else "")
    if args.json:
        doc = [
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in dataclasses.asdict(s).items()
            }
            for s in summaries
        ]
        args.json.write_text(json.dumps(doc, indent=2))
    return 0
