"""Plots of replays for a capacity review: demand against capacity with the shortfalls
shaded, replicas and scale events, a shortfall strip per policy and a summary panel.

The file's suffix picks the format (`.png`, `.svg`, `.pdf`). A long trace is drawn in
buckets (demand as its min-max band and mean, replicas as their mean) so 14 days stay
readable; `window` zooms on a stretch (one flash crowd) and the summary panel then gives
that stretch's figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoscaler.simulation.run import Run, Summary, Timeline, short_of, summarize

FORMATS = ("png", "svg", "pdf")
# About one bucket per horizontal pixel pair of the data area: more points only smear.
_MAX_POINTS = 1500
# Above this many scale events per policy in view, markers become bands: say so instead.
_MAX_MARKERS = 150
_SHORT = "#d62728"


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed: it is the optional `plot` extra."""


def plot_format(path: str | Path) -> str:
    """The format the file name asks for; ValueError for one we cannot write."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(
            f"--plot {path}: the name must end in {', '.join('.' + f for f in FORMATS)} "
            f"(got {'.' + suffix if suffix else 'no suffix'})"
        )
    return suffix


def require_matplotlib() -> None:
    """PlotUnavailable now, rather than after a replay of minutes."""
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'autoscaler[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True)
class Window:
    """Seconds since the trace's start: [start, end)."""

    start: float = 0.0
    end: float = math.inf


def sliced(tl: Timeline, lo: int, hi: int) -> Timeline:
    """Ticks [lo, hi) of a timeline."""
    decided = len(tl.code) == len(tl.t)
    return Timeline(
        dt=tl.dt,
        t=tl.t[lo:hi],
        demand=tl.demand[lo:hi],
        active=tl.active[lo:hi],
        building=tl.building[lo:hi],
        failed=tl.failed[lo:hi],
        desired=tl.desired[lo:hi],
        created=tl.created[lo:hi],
        deleted=tl.deleted[lo:hi],
        code=tl.code[lo:hi] if decided else [],
        reason=tl.reason[lo:hi] if decided else [],
    )


def _bounds(tl: Timeline, t0: float, window: Window) -> tuple[int, int]:
    lo = next((i for i, t in enumerate(tl.t) if t - t0 >= window.start), len(tl.t))
    hi = next((i for i, t in enumerate(tl.t) if t - t0 >= window.end), len(tl.t))
    return lo, hi


def window_summary(run: Run, t0: float, window: Window) -> Summary:
    """The run's figures over the window only (the whole run when it covers it)."""
    tl = run.timeline
    lo, hi = _bounds(tl, t0, window)
    if (lo, hi) == (0, len(tl.t)):
        return run.summary
    part = sliced(tl, lo, hi)
    s = run.summary
    ups = sum(1 for c in part.created if c)
    downs = sum(1 for d in part.deleted if d)
    return summarize(
        s.policy, s.trace, part, run.per_replica, ups, downs, slo_seconds=s.slo_seconds
    )


def _mean(values: Sequence[float], k: int) -> list[float]:
    return [sum(values[i : i + k]) / len(values[i : i + k]) for i in range(0, len(values), k)]


def _intervals(
    flags: Sequence[bool], x: Sequence[float], width: float
) -> list[tuple[float, float]]:
    """(start, length) of each run of True, for broken_barh."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    for flag, xi in zip(flags, x, strict=True):
        if flag and start is None:
            start = xi
        elif not flag and start is not None:
            out.append((start, xi - start))
            start = None
    if start is not None:
        out.append((start, x[-1] + width - start))
    return out


def plot(
    runs: Sequence[Run],
    path: str | Path,
    title: str = "",
    window: Window = Window(),
) -> None:
    """Write the plot of `runs` (policies, and an `oracle` run drawn as a reference)."""
    fmt = plot_format(path)
    plt = _pyplot()
    if not runs or not runs[0].timeline.t:
        raise ValueError("nothing to plot: the replay has no ticks")
    first = runs[0].timeline
    t0 = first.t[0]
    lo, hi = _bounds(first, t0, window)
    if hi <= lo:
        raise ValueError(
            f"--from/--to select no tick of the trace (it lasts {first.t[-1] - t0 + first.dt:g} s)"
        )
    start, end = first.t[lo] - t0, first.t[hi - 1] - t0 + first.dt
    span = end - start
    unit, per = ("days", 86400.0) if span > 3 * 86400 else ("hours", 3600.0)
    if span <= 3 * 3600:
        unit, per = "minutes", 60.0
    bucket = max(first.dt, span / _MAX_POINTS)  # seconds one drawn point stands for

    views = [_View.of(r, t0, window, bucket, per) for r in runs]
    policies = [v for v in views if v.run.summary.policy != "oracle"]
    best = next((v for v in views if v.run.summary.policy == "oracle"), None)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    fig = plt.figure(figsize=(15, 10), dpi=110)
    grid = fig.add_gridspec(
        4, 1, height_ratios=[3.2, 2.2, 0.3 + 0.22 * len(policies), 0.4 + 0.22 * len(views)]
    )
    top = fig.add_subplot(grid[0])
    mid = fig.add_subplot(grid[1], sharex=top)
    strip = fig.add_subplot(grid[2], sharex=top)
    panel = fig.add_subplot(grid[3])

    # Demand: its band inside each bucket and its mean, drawn above everything else.
    v0 = views[0]
    demand = v0.tl.demand
    if v0.k > 1:
        low = [min(demand[i : i + v0.k]) for i in range(0, len(demand), v0.k)]
        high = [max(demand[i : i + v0.k]) for i in range(0, len(demand), v0.k)]
        top.fill_between(
            v0.x,
            low,
            high,
            step="post",
            color="0.55",
            alpha=0.35,
            linewidth=0,
            label="demand (min-max per point)",
            zorder=4,
        )
    top.step(
        v0.x,
        _mean(demand, v0.k),
        where="post",
        color="black",
        linewidth=1.0,
        label="demand" + (" (mean)" if v0.k > 1 else ""),
        zorder=5,
    )
    many = False
    shares: list[tuple[int, _View, list[float]]] = []
    for i, v in enumerate(policies):
        color = colors[i % len(colors)]
        tl, name = v.tl, v.run.summary.policy
        cap = [a * v.run.per_replica for a in tl.active]
        short = [short_of(d, c) for d, c in zip(tl.demand, cap, strict=True)]
        top.step(
            v.x,
            _mean(cap, v.k),
            where="post",
            color=color,
            linewidth=1.1,
            label=f"capacity: {name}",
            zorder=3,
        )
        # Shortfalls shaded between capacity and demand, at tick resolution.
        top.fill_between(
            v.ticks,
            cap,
            tl.demand,
            where=short,
            step="post",
            color=color,
            alpha=0.3,
            linewidth=0,
            zorder=2,
        )
        alive = [a + b for a, b in zip(tl.active, tl.building, strict=True)]
        mid.step(
            v.x,
            _mean(alive, v.k),
            where="post",
            color=color,
            linewidth=1.1,
            label=f"replicas: {name}",
            zorder=3,
        )
        ups = [(x, n) for x, c, n in zip(v.ticks, tl.created, alive, strict=True) if c]
        downs = [(x, n) for x, c, n in zip(v.ticks, tl.deleted, alive, strict=True) if c]
        if len(ups) + len(downs) > _MAX_MARKERS:
            many = True
        else:
            if ups:
                mid.scatter(*zip(*ups, strict=True), marker="^", s=16, color=color, zorder=4)
            if downs:
                mid.scatter(*zip(*downs, strict=True), marker="v", s=16, color=color, zorder=4)
        shares.append((i, v, _mean([1.0 if f else 0.0 for f in short], v.k)))
    if best is not None:
        alive = [a + b for a, b in zip(best.tl.active, best.tl.building, strict=True)]
        mid.step(
            best.x,
            _mean(alive, best.k),
            where="post",
            color="0.35",
            linewidth=0.9,
            linestyle=(0, (4, 2)),
            label="replicas: oracle (lower bound)",
            zorder=2,
        )

    # The strip: per point, the share of its time that was short, as a bar centred on
    # the policy's row; the tallest share of all sets the full height.
    tallest = max((max(sh, default=0.0) for _, _, sh in shares), default=0.0)
    for i, v, share in shares:
        bars = [(x, h / tallest) for x, h in zip(v.x, share, strict=True) if h > 0]
        if bars:
            strip.bar(
                [x for x, _ in bars],
                [0.8 * h for _, h in bars],
                width=v.width,
                bottom=[i - 0.4 * h for _, h in bars],
                align="edge",
                color=_SHORT,
                linewidth=0,
            )
    strip.set_yticks(range(len(policies)), [v.run.summary.policy for v in policies])
    strip.set_ylim(len(policies) - 0.5, -0.5)
    strip.set_title(
        "under-provisioned: share of each point's time short of capacity"
        + (f" (full height: {tallest:.0%})" if tallest else " (never)"),
        fontsize="small",
        loc="left",
        color="0.3",
    )
    strip.grid(axis="x", alpha=0.3)
    top.set_ylabel("demand / capacity")
    mid.set_ylabel("replicas")
    strip.set_xlabel(f"{unit} since the trace's start")
    for ax in (top, mid):
        ax.grid(alpha=0.3)
        ax.tick_params(labelbottom=False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small", frameon=False)
    mid.set_title(
        "scale events: too many to mark here (zoom with --from/--to)"
        if many
        else "\u25b2 scale-up, \u25bc scale-down",
        fontsize="small",
        loc="right",
        color="0.3",
    )
    top.set_xlim(start / per, end / per)
    heading = title or runs[0].summary.trace
    if (lo, hi) != (0, len(first.t)):
        heading += f"  [{start / per:g} to {end / per:g} {unit}]"
    top.set_title(heading, loc="left")
    _summary_panel(panel, runs, t0, window)
    fig.subplots_adjust(left=0.08, right=0.82, top=0.96, bottom=0.02, hspace=0.25)
    fig.savefig(Path(path), format=fmt)
    plt.close(fig)


@dataclass(frozen=True)
class _View:
    """One run's ticks inside the window, and its points of `k` ticks each."""

    run: Run
    tl: Timeline  # the window's ticks
    k: int  # ticks per drawn point
    ticks: list[float]  # each tick's x, in the plot's unit
    x: list[float]  # each point's x
    width: float  # one point's width, in the plot's unit

    @staticmethod
    def of(run: Run, t0: float, window: Window, bucket: float, per: float) -> _View:
        full = run.timeline
        lo, hi = _bounds(full, t0, window)
        tl = sliced(full, lo, hi)
        k = max(1, round(bucket / tl.dt))
        ticks = [(t - t0) / per for t in tl.t]
        return _View(run, tl, k, ticks, ticks[::k], tl.dt * k / per)


def _summary_panel(ax: Any, runs: Sequence[Run], t0: float, window: Window) -> None:
    ax.axis("off")
    best = next((r for r in runs if r.summary.policy == "oracle"), None)
    ref = window_summary(best, t0, window) if best else None
    slo = runs[0].summary.slo_seconds
    head = (
        "policy",
        "replica-h",
        "x oracle",
        "under-provisioned min",
        f"delayed > {slo:g} s",
        "p99 wait",
        "ups",
        "downs",
    )
    cells = []
    for r in runs:
        s = window_summary(r, t0, window)
        rel = f"{s.replica_hours / ref.replica_hours:.2f}" if ref and ref.replica_hours else "-"
        cells.append(
            (
                s.policy,
                f"{s.replica_hours:,.1f}",
                rel,
                f"{s.under_minutes:,.1f}",
                f"{s.delayed_share:.2%}",
                f"{s.p99_wait:.1f} s",
                str(s.scale_ups),
                str(s.scale_downs),
            )
        )
    table = ax.table(cellText=cells, colLabels=head, loc="center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(8.5)
    table.scale(1, 1.15)
    for (row, _col), cell in table.get_celld().items():
        cell.set_edgecolor("0.85")
        if row == 0:
            cell.set_text_props(weight="bold")
