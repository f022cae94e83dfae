"""Tables and timeline files for simulation results."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from autoscaler.simulation.run import Run, Summary

COLUMNS = (
    "t",
    "demand",
    "capacity",
    "active",
    "building",
    "failed",
    "desired",
    "created",
    "deleted",
    "code",
    "reason",
)


def rows(run: Run) -> list[dict[str, float | int | str]]:
    """One row per tick; `code` and `reason` are the planner's on evaluation ticks ("" in
    between, and for the oracle, which has no planner)."""
    tl = run.timeline
    decided = len(tl.code) == len(tl.t)
    return [
        {
            "t": tl.t[i],
            "demand": tl.demand[i],
            "capacity": tl.active[i] * run.per_replica,
            "active": tl.active[i],
            "building": tl.building[i],
            "failed": tl.failed[i],
            "desired": tl.desired[i],
            "created": tl.created[i],
            "deleted": tl.deleted[i],
            "code": tl.code[i] if decided else "",
            "reason": tl.reason[i] if decided else "",
        }
        for i in range(len(tl.t))
    ]


def write_timeline(runs: Sequence[Run], path: str | Path) -> None:
    """One row per tick and policy: CSV, or JSON when the file name ends in .json."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        doc = {
            "runs": [{"summary": dataclasses.asdict(r.summary), "timeline": rows(r)} for r in runs]
        }
        path.write_text(json.dumps(doc, separators=(",", ":")))
        return
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("policy", *COLUMNS))
        for r in runs:
            for row in rows(r):
                w.writerow((r.summary.policy, *(row[c] for c in COLUMNS)))


def table(summaries: Sequence[Summary], oracle: Summary | None = None) -> str:
    """A fixed-width table; cost relative to the oracle when one is given. `under min` is
    time short of capacity; `delayed` and `p99 wait` come from the FIFO queue model
    (requests beyond capacity wait and are served later, in order)."""
    slo = summaries[0].slo_seconds if summaries else 1.0
    head = (
        f"{'trace':<32} {'policy':<14} {'rep-h':>9} {'/oracle':>7} {'under min':>9} "
        f"{f'>{slo:g}s %':>8} {'p99 wait':>8} {'over rep-h':>10} {'ups':>5} {'downs':>5}"
    )
    lines = [head, "-" * len(head)]
    for s in summaries:
        rel = (
            f"{s.replica_hours / oracle.replica_hours:.3f}"
            if oracle and oracle.replica_hours
            else "-"
        )
        lines.append(
            f"{s.trace[:32]:<32} {s.policy[:14]:<14} {s.replica_hours:>9.1f} {rel:>7} "
            f"{s.under_minutes:>9.1f} {100 * s.delayed_share:>8.2f} {s.p99_wait:>7.1f}s "
            f"{s.over_replica_hours:>10.1f} {s.scale_ups:>5} {s.scale_downs:>5}"
        )
    return "\n".join(lines)
