"""PNG plots of replays: demand against served capacity, replicas, scale events."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from autoscaler.simulation.run import Run


def plot(runs: Sequence[Run], path: str | Path, title: str = "") -> None:
    """Demand and capacity (top), replicas and scale events (bottom), hours on the x axis."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(12, 7), dpi=100)
    first = runs[0].timeline
    t0 = first.t[0] if first.t else 0.0
    hours = [(t - t0) / 3600 for t in first.t]
    top.plot(hours, first.demand, color="black", linewidth=0.8, label="demand")
    for run in runs:
        tl = run.timeline
        h = [(t - t0) / 3600 for t in tl.t]
        name = run.summary.policy
        top.step(
            h,
            [a * run.per_replica for a in tl.active],
            where="post",
            linewidth=0.9,
            label=f"capacity ({name})",
        )
        line = bottom.step(
            h,
            [a + b for a, b in zip(tl.active, tl.building, strict=True)],
            where="post",
            linewidth=0.9,
            label=f"replicas ({name})",
        )[0]
        if len(runs) == 1:
            bottom.step(
                h,
                tl.active,
                where="post",
                linewidth=0.6,
                linestyle="--",
                color=line.get_color(),
                label="active",
            )
        ups = [
            (x, a + b)
            for x, c, a, b in zip(h, tl.created, tl.active, tl.building, strict=True)
            if c
        ]
        downs = [
            (x, a + b)
            for x, d, a, b in zip(h, tl.deleted, tl.active, tl.building, strict=True)
            if d
        ]
        if ups:
            bottom.scatter(*zip(*ups, strict=True), marker="^", s=12, color=line.get_color())
        if downs:
            bottom.scatter(*zip(*downs, strict=True), marker="v", s=12, color=line.get_color())
    top.set_ylabel("demand / capacity")
    bottom.set_ylabel("replicas (▲ up, ▼ down)")
    bottom.set_xlabel("hours since start")
    top.legend(loc="upper right", fontsize="small")
    bottom.legend(loc="upper right", fontsize="small")
    if title:
        top.set_title(title)
    fig.tight_layout()
    fig.savefig(Path(path), format="png")
    plt.close(fig)
