"""`autoscaler simulate`: replay a trace or a Prometheus range query through the planner."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from autoscaler.config import Config, ConfigError
from autoscaler.providers.registry import load_config
from autoscaler.simulation import baselines
from autoscaler.simulation.backtest import parse_time, range_trace
from autoscaler.simulation.oracle import oracle
from autoscaler.simulation.plot import (
    PlotUnavailable,
    Window,
    plot,
    plot_format,
    require_matplotlib,
    window_summary,
)
from autoscaler.simulation.queueing import DEFAULT_SLO_SECONDS
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
    pol.add_argument(
        "--config",
        type=Path,
        help="an autoscaler config file: one run per group, at the file's interval_seconds "
        "(its provider block is optional and unused)",
    )
    pol.add_argument("--compare", type=Path, nargs="+", default=[], help="more config files")
    pol.add_argument(
        "--signal",
        choices=[s.value for s in Signal],
        default=Signal.UTILIZATION_HEALTHY.value,
        help="what the target policies of --config groups read",
    )
    pol.add_argument("--target", type=float, default=0.8, help="utilization of built-ins")
    model = parser.add_argument_group("replica model")
    model.add_argument(
        "--per-replica",
        type=float,
        help="demand one replica serves (default with --config: its groups' replica_capacity)",
    )
    model.add_argument(
        "--peak-replicas",
        type=int,
        help="instead of --per-replica: scale so that the peak needs this many replicas "
        "(the per-replica demand this gives is printed)",
    )
    model.add_argument("--boot-delay", type=float, default=120.0, help="seconds (default 120)")
    model.add_argument("--failure-rate", type=float, default=0.0, help="boot failure probability")
    model.add_argument("--seed", type=int, default=0)
    model.add_argument("--initial", type=int, help="replicas running at the start")
    parser.add_argument(
        "--step",
        type=float,
        default=60.0,
        help="evaluation interval (s) of the built-in --policy runs, and the step of a "
        "backtest's range query (default 60); --config groups are evaluated every "
        "interval_seconds of their file, and hpa/scaleit at their own periods",
    )
    parser.add_argument(
        "--sensor-window",
        type=float,
        default=SENSOR_WINDOW_SECONDS,
        metavar="SECONDS",
        help="policies see the demand's mean over this long, like rate(x[1m]) "
        f"(default {SENSOR_WINDOW_SECONDS:g}, whatever the trace's step)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        help="write a plot here; the suffix picks the format: .png, .svg or .pdf "
        "(needs matplotlib: pip install 'autoscaler[plot]')",
    )
    parser.add_argument(
        "--from",
        dest="window_from",
        metavar="WHEN",
        help="plot (and an extra table) from here: an offset from the trace's start "
        "(90m, 36h, 2d, 3600) or a time (RFC 3339, unix seconds)",
    )
    parser.add_argument(
        "--to", dest="window_to", metavar="WHEN", help="... up to here (same forms as --from)"
    )
    parser.add_argument(
        "--slo",
        type=float,
        default=DEFAULT_SLO_SECONDS,
        metavar="SECONDS",
        help="queue model: a request waiting longer than this counts as delayed "
        f"(default {DEFAULT_SLO_SECONDS:g})",
    )
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


def _config_files(args: argparse.Namespace) -> list[Path]:
    return ([args.config] if args.config else []) + list(args.compare)


def _configs(args: argparse.Namespace) -> list[tuple[Path, Config]]:
    # A simulation uses no provider: the block may be left out, and is not checked.
    return [(path, load_config(path, provider_required=False)) for path in _config_files(args)]


def _model(
    args: argparse.Namespace, trace: Trace, configs: list[tuple[Path, Config]]
) -> tuple[ReplicaModel, list[str]]:
    """The replica model, and the lines that say where its per-replica demand came from."""
    slots = sorted({g.replica_capacity for _, c in configs for g in c.groups})
    if args.per_replica is not None:
        per, how = args.per_replica, "--per-replica"
    elif args.peak_replicas:
        if args.peak_replicas <= 0:
            raise ValueError(f"--peak-replicas must be > 0, got {args.peak_replicas}")
        per = trace.peak / args.peak_replicas
        how = f"trace peak {trace.peak:g} / --peak-replicas {args.peak_replicas}"
    elif len(slots) == 1:
        per, how = slots[0], "replica_capacity of the configuration"
    else:
        raise ValueError("give --per-replica N or --peak-replicas N")
    notes = [f"per-replica demand: {per:g} ({how})"]
    for path, config in configs:
        for g in config.groups:
            if g.replica_capacity != per and any(p.reads_capacity for p in g.policies):
                notes.append(
                    f"note: {path}: group {g.name}: replica_capacity {g.replica_capacity:g} "
                    f"slots stand for a demand of {per:g}: its replicas report free "
                    f"capacity in slots (1 slot = {per / g.replica_capacity:g} of demand)"
                )
    return ReplicaModel(per, args.boot_delay, args.failure_rate, args.seed), notes


_OFFSET = re.compile(r"(\d+(?:\.\d*)?)([smhd]?)")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def window_bound(text: str, trace: Trace) -> float:
    """Seconds since the trace's start for --from/--to: an offset or an absolute time."""
    m = _OFFSET.fullmatch(text.strip())
    if m and not (m.group(2) == "" and float(m.group(1)) >= 1e9 and trace.start >= 1e9):
        return float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return parse_time(text).timestamp() - trace.start
    except ValueError:
        raise ValueError(
            f"--from/--to {text!r}: use an offset from the trace's start (90m, 36h, 2d, "
            "3600) or a time (RFC 3339, unix seconds)"
        ) from None


def _window(args: argparse.Namespace, trace: Trace) -> Window | None:
    if args.window_from is None and args.window_to is None:
        return None
    start = window_bound(args.window_from, trace) if args.window_from is not None else 0.0
    end = window_bound(args.window_to, trace) if args.window_to is not None else math.inf
    if end <= start:
        raise ValueError(f"--to {args.window_to} is not after --from {args.window_from}")
    if start >= trace.step * len(trace.demand):
        raise ValueError(f"--from {args.window_from} is past the trace's end")
    return Window(start, end)


def _specs(
    args: argparse.Namespace,
    model: ReplicaModel,
    trace_step: float,
    configs: list[tuple[Path, Config]],
) -> list[PolicySpec]:
    specs: list[PolicySpec] = []
    for path, config in configs:
        for g in config.groups:
            name = g.name if len(configs) == 1 else f"{path.stem}:{g.name}"
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


@dataclass
class Simulation:
    runs: list[Run]
    oracle: Run | None
    notes: list[str] = field(default_factory=list)  # printed before the table
    window: Window | None = None


def simulate(args: argparse.Namespace) -> Simulation:
    if not (args.slo > 0 and math.isfinite(args.slo)):
        raise ValueError(f"--slo must be a number of seconds > 0, got {args.slo:g}")
    trace = _trace(args)
    if args.plot:
        plot_format(args.plot)  # a bad name fails before minutes of replay
        require_matplotlib()  # and so does a missing matplotlib (the `plot` extra)
    window = _window(args, trace)
    configs = _configs(args)
    model, notes = _model(args, trace, configs)
    specs = _specs(args, model, trace.step, configs)
    initial = args.initial if args.initial is not None else default_initial(trace, model)
    runs = [
        replay(
            trace,
            s,
            model,
            initial=initial,
            window_seconds=args.sensor_window,
            slo_seconds=args.slo,
        )
        for s in specs
    ]
    best = None
    if not args.no_oracle:
        dt = tick_seconds(trace, model, [])
        best = oracle(trace, model, dt, initial, tick_demand(trace, dt), slo_seconds=args.slo)
    return Simulation(runs, best, notes, window)


def run(args: argparse.Namespace) -> int:
    try:
        sim = simulate(args)
    except (ValueError, OSError, ConfigError, PlotUnavailable) as e:
        print(f"simulate: {e}", file=sys.stderr)
        return 2
    runs, best = sim.runs, sim.oracle
    for line in sim.notes:
        print(line)
    summaries = [r.summary for r in runs] + ([best.summary] if best else [])
    print(table(summaries, best.summary if best else None))
    everything = runs + ([best] if best else [])
    if sim.window is not None and everything:
        t0 = everything[0].timeline.t[0]
        print(f"\nfrom {sim.window.start:g} s to {sim.window.end:g} s after the start:")
        part = [window_summary(r, t0, sim.window) for r in everything]
        print(table(part, window_summary(best, t0, sim.window) if best else None))
    total = sum(r.summary.simulated_seconds for r in runs) / 60
    wall = sum(r.summary.wall_seconds for r in runs)
    if wall > 0:
        print(f"replay speed: {total / wall:,.0f} simulated minutes per second")
    if args.timeline:
        write_timeline(everything, args.timeline)
    if args.plot:
        try:
            plot(
                everything,
                args.plot,
                title=runs[0].summary.trace if runs else "",
                window=sim.window or Window(),
            )
        except (PlotUnavailable, ValueError) as e:
            print(f"simulate: {e}", file=sys.stderr)
            return 2
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
