"""The policy benchmark: every trace in ../shared/traces, and eleven held-out synthetic ones
(three sets, `synthetic.ALL_HELD_OUT`), through the baselines, ours and the oracle.

Each trace is scaled so that its peak needs PEAK_REPLICAS replicas at 100 % utilization;
boot delay 2 minutes, evaluation every minute (the HPA baselines sync every 15 s and
ScaleIt every 5 s, their defaults; ScaleIt never finer than the trace's step). Prints one
table, the verdict of the shipped policy against both HPA variants, and the replay speed.
Deterministic: same traces, same figures. Run: `.venv/bin/python bench/run.py`
(`--trace nasa --trace _b` for a subset).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from autoscaler.simulation import baselines, synthetic
from autoscaler.simulation.oracle import oracle
from autoscaler.simulation.queueing import DEFAULT_SLO_SECONDS
from autoscaler.simulation.replay import default_initial, replay, tick_demand, tick_seconds
from autoscaler.simulation.run import Summary
from autoscaler.simulation.spec import ReplicaModel
from autoscaler.simulation.trace import Trace, load_csv

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"
PEAK_REPLICAS = 40
BOOT_DELAY = 120.0
INTERVAL = 60.0
POLICIES = (
    "simplescalevm",
    "scaleit",
    "hpa",
    "hpa-instant",
    "reactive",
    "predictive",
    "quantile",
)
OURS = "quantile"  # ours, checked against both HPA variants
# The held-out synthetic traces skip the two baselines that are slowest to replay and
# furthest from the question (ScaleIt at 5 s over 2 hours of bursts piles up thousands
# of replicas); they are there to check ours against the HPA.
SYNTHETIC_POLICIES = tuple(p for p in POLICIES if p not in ("simplescalevm", "scaleit"))
HPAS = ("hpa", "hpa-instant")


def model_for(trace: Trace) -> ReplicaModel:
    return ReplicaModel(per_replica=trace.peak / PEAK_REPLICAS, boot_delay=BOOT_DELAY)


def load(source: str) -> Trace:
    """A trace CSV, or `synthetic:<name>` for a held-out synthetic trace."""
    if source.startswith("synthetic:"):
        return synthetic.ALL_HELD_OUT[source.split(":", 1)[1]]()
    return load_csv(source)


def policies_for(source: str) -> tuple[str, ...]:
    return SYNTHETIC_POLICIES if source.startswith("synthetic:") else POLICIES


def run_policy(source: str, policy: str) -> Summary:
    trace = load(source)
    model = model_for(trace)
    factory = baselines.BUILTIN[policy]
    # HPA and ScaleIt run at their own periods (15 s; 5 s, or the trace's step if coarser);
    # the others every minute.
    spec = factory(model, interval=baselines.period(policy, trace.step, INTERVAL))
    return replay(trace, spec, model, initial=default_initial(trace, model)).summary


def run_oracle(source: str) -> Summary:
    trace = load(source)
    model = model_for(trace)
    dt = tick_seconds(trace, model, [])
    return oracle(trace, model, dt, default_initial(trace, model), tick_demand(trace, dt)).summary


def shortfall(s: Summary, step: float) -> tuple[str, float]:
    """What a user feels: on a per-second trace the queue's delayed share, else both the
    under-provisioned minutes and the delayed share must be lower."""
    return ("delayed", s.delayed_share) if step < 60 else ("under min", s.under_minutes)


def _ratio(mine: float, theirs: float) -> str:
    if theirs == 0:
        return "= (both 0)" if mine == 0 else f"{mine:g} vs 0"
    return f"{mine / theirs:.3f}x"


def verdict(results: dict[str, Summary], step: float) -> str:
    """Does ours beat each HPA variant on cost and on what a user feels (see shortfall)?"""
    ours = results[OURS]
    parts = []
    ok = True
    for h in HPAS:
        base = results[h]
        what, mine = shortfall(ours, step)
        _, theirs = shortfall(base, step)
        cheaper = ours.replica_hours < base.replica_hours
        safer = mine <= theirs and ours.delayed_share <= base.delayed_share
        ok = ok and cheaper and safer
        text = f"vs {h}: rep-h {_ratio(ours.replica_hours, base.replica_hours)}"
        text += f", {what} {_ratio(mine, theirs)}"
        if what != "delayed":
            text += f", delayed {_ratio(ours.delayed_share, base.delayed_share)}"
        parts.append(text)
    head = "dominates" if ok else "does NOT dominate"
    return f"{head} both HPA variants ({'; '.join(parts)})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=Path, default=TRACES)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--no-synthetic", action="store_true", help="only the trace files")
    ap.add_argument(
        "--trace", action="append", default=[], help="only traces whose name contains this"
    )
    args = ap.parse_args(argv)
    sources = sorted(str(p) for p in args.traces.glob("*.csv"))
    if not sources:
        print(f"no traces in {args.traces}", file=sys.stderr)
        return 1
    if not args.no_synthetic:
        sources += [f"synthetic:{name}" for name in synthetic.ALL_HELD_OUT]
    if args.trace:
        sources = [p for p in sources if any(t in p for t in args.trace)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            (p, pol): pool.submit(run_policy, p, pol) for p in sources for pol in policies_for(p)
        }
        oracle_futures = {p: pool.submit(run_oracle, p) for p in sources}
        results = {key: f.result() for key, f in futures.items()}
        oracles = {p: f.result() for p, f in oracle_futures.items()}
    elapsed = time.perf_counter() - started

    head = (
        f"{'trace':<34} {'policy':<13} {'rep-h':>8} {'/oracle':>7} {'under min':>9} "
        f"{'delayed %':>9} {'p99 wait s':>10} {'actions':>7} {'sim min/s':>9}"
    )
    print(head)
    print("-" * len(head))
    sim_minutes = busy = 0.0
    verdicts = []
    for p in sources:
        o = oracles[p]
        for s in [results[(p, pol)] for pol in policies_for(p)] + [o]:
            rel = s.replica_hours / o.replica_hours if o.replica_hours else float("nan")
            speed = s.simulated_seconds / 60 / s.wall_seconds if s.wall_seconds else float("inf")
            print(
                f"{s.trace[:34]:<34} {s.policy:<13} {s.replica_hours:>8.1f} {rel:>7.3f} "
                f"{s.under_minutes:>9.1f} {100 * s.delayed_share:>9.2f} {s.p99_wait:>10.1f} "
                f"{s.scale_ups + s.scale_downs:>7} {speed:>9.0f}"
            )
            if s.policy != "oracle":
                sim_minutes += s.simulated_seconds / 60
                busy += s.wall_seconds
        step = load(p).step
        mine = verdict({pol: results[(p, pol)] for pol in policies_for(p)}, step)
        verdicts.append(f"{o.trace}: {OURS} {mine}")
    print(
        f"\nrep-h: replica-hours, booting and failed replicas included (absolute; /oracle "
        f"its ratio to the oracle lower bound). under min: minutes with demand above the "
        f"active capacity, counted per tick (per second on 1 s traces: Poisson noise). "
        f"delayed % and p99 wait: the FIFO queue, requests waiting longer than "
        f"{DEFAULT_SLO_SECONDS:g} s (what a user feels; the measure on per-second traces)."
    )
    print("\n" + "\n".join(verdicts))
    print(
        f"\nreplay speed: {sim_minutes / busy:,.0f} simulated minutes per second per process "
        f"({len(results)} replays, {sim_minutes:,.0f} simulated minutes, "
        f"{elapsed:.1f} s wall with {args.jobs} processes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
