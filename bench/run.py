"""The policy benchmark: every trace in ../shared/traces through baselines, ours and the oracle.

Each trace is scaled so that its peak needs PEAK_REPLICAS replicas at 100 % utilization;
boot delay 2 minutes, evaluation every minute (the HPA baseline syncs every 15 s and
ScaleIt every 5 s, their defaults; ScaleIt never finer than the trace's
step). Prints one table and the replay speed. Run: `.venv/bin/python bench/run.py`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from autoscaler.simulation import baselines
from autoscaler.simulation.oracle import oracle
from autoscaler.simulation.replay import default_initial, replay, tick_demand, tick_seconds
from autoscaler.simulation.run import Summary
from autoscaler.simulation.spec import ReplicaModel
from autoscaler.simulation.trace import Trace, load_csv

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"
PEAK_REPLICAS = 40
BOOT_DELAY = 120.0
INTERVAL = 60.0
POLICIES = ("simplescalevm", "scaleit", "hpa", "reactive", "predictive")


def model_for(trace: Trace) -> ReplicaModel:
    return ReplicaModel(per_replica=trace.peak / PEAK_REPLICAS, boot_delay=BOOT_DELAY)


def _job(path: str, policy: str) -> Summary:
    trace = load_csv(path)
    model = model_for(trace)
    factory = baselines.BUILTIN[policy]
    # HPA and ScaleIt run at their own periods (15 s; 5 s, or the trace's step if coarser);
    # the others every minute.
    spec = factory(model, interval=baselines.period(policy, trace.step, INTERVAL))
    return replay(trace, spec, model, initial=default_initial(trace, model)).summary


def _oracle(path: str) -> Summary:
    trace = load_csv(path)
    model = model_for(trace)
    dt = tick_seconds(trace, model, [])
    return oracle(trace, model, dt, default_initial(trace, model), tick_demand(trace, dt)).summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=Path, default=TRACES)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    paths = sorted(str(p) for p in args.traces.glob("*.csv"))
    if not paths:
        print(f"no traces in {args.traces}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {(p, pol): pool.submit(_job, p, pol) for p in paths for pol in POLICIES}
        oracles = {p: _oracle(p) for p in paths}
        results = {key: f.result() for key, f in futures.items()}
    elapsed = time.perf_counter() - started

    head = (
        f"{'trace':<34} {'policy':<14} {'rep-h/oracle':>12} {'under min':>9} "
        f"{'under area':>10} {'actions':>7} {'sim min/s':>9}"
    )
    print(head)
    print("-" * len(head))
    sim_minutes = busy = 0.0
    for p in paths:
        o = oracles[p]
        for s in [results[(p, pol)] for pol in POLICIES] + [o]:
            rel = s.replica_hours / o.replica_hours if o.replica_hours else float("nan")
            speed = s.simulated_seconds / 60 / s.wall_seconds if s.wall_seconds else float("inf")
            print(
                f"{s.trace[:34]:<34} {s.policy:<14} {rel:>12.3f} {s.under_minutes:>9.1f} "
                f"{s.under_area:>10.0f} {s.scale_ups + s.scale_downs:>7} {speed:>9.0f}"
            )
            if s.policy != "oracle":
                sim_minutes += s.simulated_seconds / 60
                busy += s.wall_seconds
    print(
        f"\nreplay speed: {sim_minutes / busy:,.0f} simulated minutes per second per process "
        f"({len(paths) * len(POLICIES)} replays, {sim_minutes:,.0f} simulated minutes, "
        f"{elapsed:.1f} s wall with {args.jobs} processes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
