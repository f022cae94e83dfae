"""How far can any policy get: the cost / under-provisioning frontier of allocators that
know the demand's rate but not each minute's noise.

Issue 12 asks for <= 1.15x the oracle's replica-hours with <= 1/3 of the HPA's
under-provisioned minutes on the NASA trace. The oracle knows every minute's count, so
it follows the count noise; a policy cannot. This script measures what an allocator
that knows MORE than any causal policy reaches:

- it knows the rate (a non-causal smoother of the counts: the centred mean of the
  neighbouring minutes, the minute itself left out so that its own noise stays
  unknown; or, on the synthetic traces, the true rate), a boot delay ahead;
- it knows the distribution of the count around that rate (negative binomial with the
  overdispersion measured on the trace; on a synthetic trace its generator's own,
  Poisson or gamma-Poisson; or the
  trace's own residuals, binned by rate: in-sample, so fitted to the very noise it is
  scored on);
- per minute it picks the replicas c minimising c + mu * P(count > c * per_replica)
  (a Lagrangian: the cheapest allocation for its expected number of short minutes),
  and the sweep over mu traces the curve.

Each allocation is costed as the simulator costs it: the oracle's own construction
(autoscaler/simulation/oracle.py) turns the per-minute counts into replicas started a
boot delay ahead and kept through gaps no longer than the boot delay, booting time
paid; a minute is short when the trace's demand exceeds the active capacity
(`run.short_of`). With boot delay 0 the cost is the plain sum of replicas.

Beside the bounds: a causal reference (the same allocation from a trailing mean that a
controller has when a replica must start booting), and what-ifs that redraw NASA around
a known rate with a chosen count noise, to show how the goal moves with the noise. Only the
1-minute traces are measured (on per-second traces short ticks score Poisson noise;
the queue is the measure there). Deterministic; runs in seconds. Needs numpy.
Run: `.venv/bin/python bench/frontier.py` (or `make bench-frontier`).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np

from autoscaler.simulation import synthetic
from autoscaler.simulation.oracle import oracle
from autoscaler.simulation.replay import default_initial, tick_demand, tick_seconds
from autoscaler.simulation.run import _REL_EPS
from autoscaler.simulation.spec import ReplicaModel
from autoscaler.simulation.trace import Trace, load_csv

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"
NASA = TRACES / "nasa_ksc_1995-07-01_27.5d_1min.csv"
PEAK_REPLICAS = 40  # as bench/run.py
BOOT_DELAY = 120.0  # as bench/run.py
TARGET_RATIO = 1.15  # issue 12: <= 1.15x the oracle's replica-hours ...
TARGET_SHARE = 1 / 3  # ... with <= 1/3 of the HPA's under-provisioned minutes
# The HPA's (replica-hours, under-provisioned minutes) on each trace, as `make bench`
# measures them (bench/run.py; replaying the HPA at 15 s takes over a minute, so `--hpa`
# recomputes them).
HPA = {
    "nasa_ksc_1995-07-01_27.5d_1min": {"hpa": (5337.3, 2141.5), "hpa-instant": (5450.5, 2070.25)},
    "synthetic_flash_crowd_3d_1min": {"hpa": (450.5, 3.5), "hpa-instant": (450.2, 3.25)},
    "synthetic_diurnal_7d_1min": {"hpa": (4009.7, 0.0), "hpa-instant": (3997.1, 0.0)},
    "synthetic_flash_crowd_b_4d_1min": {"hpa": (673.7, 124.0), "hpa-instant": (685.7, 126.25)},
    "synthetic_diurnal_low_b_7d_1min": {"hpa": (2308.2, 548.25), "hpa-instant": (2355.4, 539.5)},
    "synthetic_diurnal_high_b_5d_1min": {"hpa": (2537.6, 61.25), "hpa-instant": (2560.8, 70.75)},
    "synthetic_c_double_flash_3d_1min": {"hpa": (469.1, 62.75), "hpa-instant": (473.8, 65.25)},
    "synthetic_c_diurnal_gamma_7d_1min": {"hpa": (2906.1, 308.75), "hpa-instant": (2952.7, 321.0)},
    "synthetic_c_slow_ramp_7d_1min": {"hpa": (3385.6, 90.75), "hpa-instant": (3419.3, 94.75)},
}
# ... and `quantile`'s, to place it against the bound at its own cost.
OURS = {
    "nasa_ksc_1995-07-01_27.5d_1min": (5303.9, 1601.0),
    "synthetic_flash_crowd_3d_1min": (446.2, 3.0),
    "synthetic_diurnal_7d_1min": (3643.7, 4.0),
    "synthetic_flash_crowd_b_4d_1min": (644.5, 183.0),
    "synthetic_diurnal_low_b_7d_1min": (2208.2, 508.0),
    "synthetic_diurnal_high_b_5d_1min": (2275.9, 283.0),
    "synthetic_c_double_flash_3d_1min": (461.3, 103.0),
    "synthetic_c_diurnal_gamma_7d_1min": (2686.5, 525.0),
    "synthetic_c_slow_ramp_7d_1min": (3026.1, 429.0),
}
# The overdispersed held-out traces at 1 min (gamma-Poisson counts of a known rate).
OVERDISPERSED = (
    "flash_crowd_b",
    "diurnal_low_b",
    "diurnal_high_b",
    "double_flash_c",
    "diurnal_gamma_c",
    "slow_ramp_c",
)
MUS = tuple(float(x) for x in np.geomspace(0.5, 20000.0, 37))  # the Lagrangian sweep
BINS = 10  # rate bins of the empirical residuals
WHAT_IF_PHI = (1.0, 2.0, 4.0)  # count noise of the NASA what-ifs (NASA's own: about 4-5)


# -- the rate a clairvoyant-of-intensity allocator knows -----------------------------------


def centred_mean(counts: np.ndarray, width: int, leave_out: bool = True) -> np.ndarray:
    """The mean of the `width` minutes centred on each minute (odd width; fewer at the
    ends); with `leave_out`, the minute itself is not part of it (its noise stays unknown)."""
    if width < 1 or width % 2 == 0:
        raise ValueError(f"width must be odd and >= 1, got {width}")
    half = width // 2
    n = len(counts)
    prefix = np.concatenate(([0.0], np.cumsum(counts, dtype=float)))
    idx = np.arange(n)
    lo, hi = np.maximum(0, idx - half), np.minimum(n, idx + half + 1)
    total, size = prefix[hi] - prefix[lo], (hi - lo).astype(float)
    if leave_out:
        total, size = total - counts, size - 1
    return np.divide(total, size, out=np.zeros(n), where=size > 0)


def trailing_mean(counts: np.ndarray, width: int, lead: int) -> np.ndarray:
    """A causal estimate: the mean of the `width` minutes ending `lead` minutes before."""
    n = len(counts)
    prefix = np.concatenate(([0.0], np.cumsum(counts, dtype=float)))
    idx = np.arange(n)
    hi = np.maximum(0, idx - lead + 1)
    lo = np.maximum(0, hi - width)
    size = (hi - lo).astype(float)
    first = counts[0] if n else 0.0  # before any past: the first minute, as the bench starts
    return np.where(size > 0, (prefix[hi] - prefix[lo]) / np.maximum(size, 1), first)


def overdispersion(counts: np.ndarray, rate: np.ndarray) -> float:
    """Variance of the counts around `rate` over their mean: 1 for Poisson noise."""
    keep = rate > 0
    return float(np.sum((counts[keep] - rate[keep]) ** 2) / np.sum(rate[keep]))


# -- the noise model: P(count > K_c) for every minute and replica count c ------------------


def thresholds(per_replica: float, step: float, cmax: int) -> np.ndarray:
    """K_c: the most requests per step that c replicas serve without a short tick."""
    c = np.arange(cmax + 1, dtype=float)
    return np.floor(c * per_replica * step * (1 + _REL_EPS) + 1e-12 * step).astype(int)


def parametric_survival(rate: np.ndarray, phi: float | np.ndarray, ks: np.ndarray) -> np.ndarray:
    """S[t, c] = P(N_t > ks[c]), N_t Poisson(rate[t]) (phi = 1) or negative binomial with
    mean rate[t] and variance phi * rate[t] (phi > 1; one per minute, or one for all).
    One pass over the counts, in logs."""
    if np.any(np.diff(ks) < 0):
        raise ValueError("thresholds must not decrease")
    m = np.maximum(rate, 1e-9)
    phis = np.broadcast_to(np.asarray(phi, dtype=float), m.shape)
    surv = np.ones((len(m), len(ks)), dtype=np.float32)
    if np.all(phis <= 1.0 + 1e-9):
        r, logp, tail = None, -m, np.log(m)
    elif np.all(phis > 1.0 + 1e-9):
        r, q = m / (phis - 1.0), 1.0 / phis
        logp, tail = r * np.log(q), np.log(1 - q)
    else:
        raise ValueError("phi must be 1 for every minute or above 1 for every minute")
    cdf = np.zeros(len(m))
    col = int(np.sum(ks < 0))
    for k in range(int(ks[-1]) + 1):
        cdf += np.exp(logp)
        while col < len(ks) and ks[col] == k:
            surv[:, col] = np.maximum(0.0, 1.0 - cdf)
            col += 1
        # P(k + 1) / P(k): m / (k + 1) for Poisson, (k + r) / (k + 1) * (1 - q) for NB
        logp = logp + tail - math.log(k + 1) + (0.0 if r is None else np.log(k + r))
    return surv


def empirical_survival(
    counts: np.ndarray,
    rate: np.ndarray,
    ks: np.ndarray,
    bins: int = BINS,
    at: np.ndarray | None = None,
) -> np.ndarray:
    """S[i, c] at the rates `at` (default: `rate`) from the trace's own residuals: Pearson
    residuals (N - rate) / sqrt(rate), pooled in `bins` bins of equal size by rate, so
    that their spread may change with the rate. In-sample: each minute's own residual is
    in its pool."""
    at = rate if at is None else at
    z = (counts - rate) / np.sqrt(np.maximum(rate, 1.0))
    edges = np.quantile(rate, np.linspace(0, 1, bins + 1)[1:-1])
    pools = np.searchsorted(edges, rate, side="right")
    which = np.searchsorted(edges, at, side="right")
    scale = np.sqrt(np.maximum(at, 1.0))
    surv = np.zeros((len(at), len(ks)), dtype=np.float32)
    for b in range(bins):
        rows = np.nonzero(which == b)[0]
        pool = np.sort(z[pools == b])
        if not len(rows) or not len(pool):
            continue
        x = (ks[None, :] - at[rows, None]) / scale[rows, None]
        surv[rows] = 1.0 - np.searchsorted(pool, x, side="right") / len(pool)
    return surv


def allocate(surv: np.ndarray, mu: float) -> np.ndarray:
    """Per minute the c minimising c + mu * S[t, c] (the smallest on ties)."""
    return np.argmin(
        np.arange(surv.shape[1], dtype=np.float32)[None, :] + np.float32(mu) * surv, axis=1
    )


# -- costing, as the simulator counts --------------------------------------------------------


def schedule(counts: Sequence[int] | np.ndarray, boot: int, initial: int) -> tuple[int, np.ndarray]:
    """The oracle's construction (autoscaler/simulation/oracle.py) for a per-tick replica
    count: (replica-ticks alive, booting included; active replicas per tick)."""
    c = np.asarray(counts, dtype=int)
    n = len(c)
    active = np.zeros(n + 1, dtype=int)
    alive = 0
    for j in range(1, int(max(c.max(initial=0), 0)) + 1):
        on = np.concatenate(([False], c >= j, [False])).astype(np.int8)
        edges = np.diff(on)
        starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        if not len(starts):
            continue
        # stretches with a gap <= boot between them are one life
        keep = np.concatenate(([True], starts[1:] - ends[:-1] > boot))
        s, e = starts[keep], np.concatenate((ends[:-1][keep[1:]], ends[-1:]))
        begin = np.maximum(0, s - boot)
        live_from = begin + boot
        if j <= initial and s[0] <= boot:  # an initial replica serves until its first gap
            begin[0] = live_from[0] = 0
        alive += int(np.sum(e - begin))
        np.add.at(active, np.minimum(live_from, e), 1)
        np.add.at(active, e, -1)
    return alive, np.cumsum(active)[:n]


@dataclass(frozen=True)
class Point:
    mu: float
    replica_hours: float
    under_minutes: float
    expected_under: float  # what the noise model expects


def score(
    c: np.ndarray, demand: np.ndarray, per: float, dt: float, boot: int, initial: int
) -> tuple[float, float]:
    """(replica-hours, under-provisioned minutes) of allocation `c` against `demand`,
    served as the oracle serves its need (see `schedule`).

    With a boot delay, the replicas kept through a short gap serve it too; whether a gap
    is short depends on the neighbours' allocations, whose centred rate estimates hold
    this minute's count: a small leak of the very noise the bound means to hide, which
    is why the bound without boot delay is the one to read.
    """
    if boot == 0:
        alive, active = int(np.sum(c)), c
    else:
        alive, active = schedule(c, boot, initial)
    short = demand > active * per * (1 + _REL_EPS) + 1e-12  # run.short_of, vectorised
    return alive * dt / 3600, float(np.sum(short)) * dt / 60


def pareto(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both axes, by cost."""
    best: list[Point] = []
    for p in sorted(points, key=lambda p: (p.replica_hours, p.under_minutes)):
        if not best or p.under_minutes < best[-1].under_minutes:
            best.append(p)
    return best


def under_at_cost(front: Sequence[Point], cost: float) -> float:
    """Under-provisioned minutes reachable at `cost` (linear between frontier points)."""
    xs = [p.replica_hours for p in front]
    if not front or cost < xs[0]:
        return math.inf
    for a, b in zip(front, front[1:], strict=False):
        if a.replica_hours <= cost <= b.replica_hours:
            w = (cost - a.replica_hours) / (b.replica_hours - a.replica_hours)
            return a.under_minutes + w * (b.under_minutes - a.under_minutes)
    return front[-1].under_minutes


def cost_at_under(front: Sequence[Point], under: float) -> float:
    """Replica-hours needed for at most `under` minutes (linear between frontier points)."""
    for a, b in zip(front, front[1:], strict=False):
        if a.under_minutes >= under >= b.under_minutes:
            w = (a.under_minutes - under) / (a.under_minutes - b.under_minutes)
            return a.replica_hours + w * (b.replica_hours - a.replica_hours)
    if front and front[0].under_minutes <= under:
        return front[0].replica_hours
    return math.inf


# -- the bounds ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    source: str  # a trace file, or `synthetic:<name>` as bench/run.py takes it
    trace: Trace
    rate: np.ndarray | None  # the true rate per step (synthetic traces), else unknown
    phi: float = 1.0  # the true overdispersion of the count around `rate`
    goal_of: str = ""  # the trace whose HPA figures set the goal (default: this one)
    peak: float = 0.0  # the peak that sets per_replica (default: the trace's)
    shape: float = 0.0  # > 0: instead, gamma-Poisson noise of this shape (phi = 1 + rate / k)

    @property
    def per_replica(self) -> float:
        return (self.peak or self.trace.peak) / PEAK_REPLICAS


def with_true_rate(name: str) -> Case:
    """A synthetic trace, its true rate per step and its noise, caught from the generator's
    call: Poisson counts, or (the overdispersed held-out sets) Poisson counts of the rate
    times a gamma draw of shape k per step, negative binomial with variance
    rate * (1 + rate / k)."""
    caught: list[tuple[Callable[[float], float], float]] = []
    counted, gamma_counted, overdispersed = (
        synthetic._counted,
        synthetic._gamma_counted,
        synthetic._overdispersed,
    )

    def spy(name: str, step: float, n: int, rate: Callable[[float], float], seed: int) -> Trace:
        caught.append((rate, 0.0))
        return counted(name, step, n, rate, seed)

    def spy_gamma(
        name: str, step: float, n: int, rate: Callable[[float], float], shape: float, seed: int
    ) -> Trace:
        caught.append((rate, shape))
        return gamma_counted(name, step, n, rate, shape, seed)

    def spy_over(
        name: str, step: float, n: int, rate: Callable[[float], float], seed: int, k: float
    ) -> Trace:
        caught.append((rate, k))
        return overdispersed(name, step, n, rate, seed, k)

    with (
        mock.patch.object(synthetic, "_counted", spy),
        mock.patch.object(synthetic, "_gamma_counted", spy_gamma),
        mock.patch.object(synthetic, "_overdispersed", spy_over),
    ):
        trace = synthetic.ALL_HELD_OUT[name]()
    rate, shape = caught[0]
    return Case(
        f"synthetic:{name}",
        trace,
        np.array([rate(i * trace.step) * trace.step for i in range(len(trace.demand))]),
        shape=shape,
    )


def estimators(case: Case, counts: np.ndarray) -> dict[str, np.ndarray]:
    est = {
        "centred 3 (self out)": centred_mean(counts, 3),
        "centred 5 (self out)": centred_mean(counts, 5),
        "centred 15 (self out)": centred_mean(counts, 15),
        "centred 5 (self in)": centred_mean(counts, 5, leave_out=False),
        # a causal reference, not a bound: what is known when a replica must start booting
        "causal mean 10, 3 ahead": trailing_mean(counts, 10, 3),
    }
    if case.goal_of:  # a what-if: only the truth matters
        est = {}
    if case.rate is not None:
        est = {"true rate": case.rate, **est}
    return est


@dataclass(frozen=True)
class Curve:
    estimator: str
    noise: str
    boot_delay: float
    phi: float
    front: list[Point]


def curves(case: Case, boot_delays: Sequence[float] = (BOOT_DELAY, 0.0)) -> list[Curve]:
    trace = case.trace
    step = trace.step
    per = case.per_replica
    demand = np.asarray(trace.demand, dtype=float)
    counts = np.rint(demand * step)
    cmax = int(1.4 * PEAK_REPLICAS)  # room above the peak for the noise
    ks = thresholds(per, step, cmax)
    out = []
    for name, rate in estimators(case, counts).items():
        phi = overdispersion(counts, rate)
        # S[t, c] depends on the minute's rate only: computed once per distinct rate
        rates, back = np.unique(rate, return_inverse=True)
        models = {"empirical": empirical_survival(counts, rate, ks, at=rates)}
        if name == "true rate":
            exact = "poisson" if case.phi == 1.0 and not case.shape else "neg-binomial"
            true_phi = 1.0 + rates / case.shape if case.shape else case.phi
            models = {exact: parametric_survival(rates, true_phi, ks), **models}
        else:
            models["neg-binomial"] = parametric_survival(rates, max(1.0, phi), ks)
        for noise, surv in models.items():
            allocations = [(mu, allocate(surv, mu)[back]) for mu in MUS]
            for boot_delay in boot_delays:
                model = ReplicaModel(per_replica=per, boot_delay=boot_delay)
                dt = tick_seconds(trace, model, [])
                if dt != step:
                    raise ValueError(f"{trace.name}: the frontier needs ticks of one step")
                initial = default_initial(trace, model)
                points = []
                for mu, c in allocations:
                    rep_h, under = score(c, demand, per, dt, int(boot_delay // dt), initial)
                    expected = float(surv[back, c].sum()) * dt / 60
                    points.append(Point(mu, rep_h, under, expected))
                out.append(Curve(name, noise, boot_delay, phi, pareto(points)))
    return out


def oracle_hours(case: Case, boot_delay: float) -> float:
    trace = case.trace
    model = ReplicaModel(per_replica=case.per_replica, boot_delay=boot_delay)
    dt = tick_seconds(trace, model, [])
    run = oracle(trace, model, dt, default_initial(trace, model), tick_demand(trace, dt))
    return run.summary.replica_hours


def hpa_figures(case: Case, recompute: bool) -> dict[str, tuple[float, float]]:
    if case.goal_of or (not recompute and case.trace.name in HPA):
        return HPA[case.goal_of or case.trace.name]
    return {h: bench_figures(case.source, h) for h in ("hpa", "hpa-instant")}


def bench_figures(source: str, policy: str) -> tuple[float, float]:
    """(replica-hours, under-provisioned minutes) of `policy` replayed as `make bench` does."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as bench_run  # bench/run.py: the benchmark's own setup

    r = bench_run.run_policy(source, policy)
    return r.replica_hours, r.under_minutes


def cases(traces: Path) -> list[Case]:
    found = [Case(str(p), load_csv(p), None) for p in sorted(traces.glob("*.csv"))]
    found = [c for c in found if c.trace.step == 60]
    nasa = [c.trace for c in found if c.trace.name == NASA.stem]
    what_ifs = [what_if(nasa[0], phi) for phi in WHAT_IF_PHI] if nasa else []
    synthetic_cases = [with_true_rate(n) for n in ("flash_crowd", "diurnal", *OVERDISPERSED)]
    return found + what_ifs + synthetic_cases


def what_if(trace: Trace, phi: float, seed: int = 12) -> Case:
    """NASA redrawn around a known rate (its centred 15-minute mean) with count noise of
    overdispersion `phi` (Poisson for 1, else negative binomial): how far the bound gets
    when the rate is known exactly and the noise is this much."""
    rate = centred_mean(np.rint(np.asarray(trace.demand) * trace.step), 15, leave_out=False)
    rng = np.random.default_rng(seed)
    if phi == 1.0:
        counts = rng.poisson(rate)
    else:
        r = np.maximum(rate, 1e-9) / (phi - 1.0)
        counts = np.where(rate > 0, rng.negative_binomial(r, 1.0 / phi), 0)
    name = f"what-if: NASA rate, phi {phi:g}"
    demand = tuple(float(x) for x in counts / trace.step)
    # per_replica stays NASA's, so that only the noise differs
    return Case(
        name, Trace(name, trace.start, trace.step, demand), rate, phi, NASA.stem, trace.peak
    )


def residual_acf(counts: np.ndarray, lags: Sequence[int], width: int = 31) -> list[float]:
    """Autocorrelation of the counts' Pearson residuals around a wide centred mean: how
    much one minute's noise tells about the next ones (a causal policy sees 3 back)."""
    rate = centred_mean(counts, width)
    z = (counts - rate) / np.sqrt(np.maximum(rate, 1.0))
    return [float(np.corrcoef(z[:-k], z[k:])[0, 1]) for k in lags]


def calibration(front: Sequence[Point], lo: float = 10.0, hi: float = 2000.0) -> list[Point]:
    """Up to four frontier points whose expected short minutes lie in [lo, hi]."""
    inside = [p for p in front if lo <= p.expected_under <= hi]
    if len(inside) <= 4:
        return inside
    return [inside[round(i * (len(inside) - 1) / 3)] for i in range(4)]


def _fmt(x: float, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if not math.isfinite(x) else f"{x:>{width}.{digits}f}"


def report(case: Case, recompute_hpa: bool = False) -> list[str]:
    trace = case.trace
    o = oracle_hours(case, BOOT_DELAY)
    budget = TARGET_RATIO * o
    hpa = hpa_figures(case, recompute_hpa)
    goals = {h: TARGET_SHARE * u for h, (_, u) in hpa.items()}
    hpa_cost = min(c for c, _ in hpa.values())  # what-ifs: another trace's, not shown
    loose, strict = max(goals.values()), min(goals.values())
    counts = np.rint(np.asarray(trace.demand) * trace.step)
    head = (
        f"\n{trace.name}: mean {counts.mean():.1f} requests per {trace.step:g} s, one replica "
        f"serves {case.per_replica * trace.step:.2f}"
    )
    if case.rate is None:  # on a drawn trace the smoother's lag would show, not the noise's
        acf = residual_acf(counts, (1, 2, 3))
        head += "; residual autocorrelation at lag 1, 2, 3: " + ", ".join(f"{a:.2f}" for a in acf)
    lines = [
        head,
        f"  oracle {o:.1f} rep-h (boot {BOOT_DELAY:g} s; {oracle_hours(case, 0.0):.1f} with "
        f"boot 0), {TARGET_RATIO:g}x = {budget:.1f}; HPA under min "
        + ", ".join(f"{h} {u:g} (at {c:.0f} rep-h)" for h, (c, u) in hpa.items())
        + f": the goal is <= {loose:.0f} min (<= {strict:.0f} for the stricter)",
    ]
    head = (
        f"  {'rate known':<24} {'noise':<12} {'boot':>4} {'phi':>5} {'fewest':>6} "
        f"{'under @1.15x':>12} {'rep-h @goal':>11} {'/oracle':>7} {'strict':>7} "
        f"{'@HPA rep-h':>10} {'exp/real':>8}"
    )
    lines += [head, "  " + "-" * (len(head) - 2)]
    found = sorted(curves(case), key=lambda cv: cv.boot_delay)
    for cv in found:
        f = cv.front
        need = cost_at_under(f, loose)
        near = min(f, key=lambda p: abs(p.replica_hours - budget))
        calib = near.expected_under / near.under_minutes if near.under_minutes else math.nan
        lines.append(
            f"  {cv.estimator:<24} {cv.noise:<12} {cv.boot_delay:>4.0f} {cv.phi:>5.2f} "
            f"{f[-1].under_minutes:>6.0f} {_fmt(under_at_cost(f, budget), 12, 0)} "
            f"{_fmt(need, 11, 0)} {_fmt(need / o, 7, 3)} "
            f"{_fmt(cost_at_under(f, strict) / o, 7, 3)} "
            f"{_fmt(math.inf if case.goal_of else under_at_cost(f, hpa_cost), 10, 0)} "
            f"{_fmt(calib, 8, 2)}"
        )
    ours = OURS.get(trace.name)
    if ours is not None and not case.goal_of:
        for cv in found:
            if cv.noise == "empirical" or cv.boot_delay != BOOT_DELAY:
                continue
            if cv.estimator in ("true rate", "centred 5 (self out)"):
                lines.append(
                    f"  quantile (`make bench`) {ours[0]:.1f} rep-h, {ours[1]:g} under min; "
                    f"{cv.estimator}, {cv.noise}: {_fmt(under_at_cost(cv.front, ours[0]), 0, 0)}"
                    " under min at that cost"
                )
    for cv in found:
        if cv.estimator == "true rate" and cv.noise != "empirical":
            pts = ", ".join(
                f"{p.replica_hours:.0f} rep-h: {p.expected_under:.0f} / {p.under_minutes:.0f}"
                for p in calibration(cv.front)
            )
            lines.append(
                f"  sanity, true rate and {cv.noise} noise, boot {cv.boot_delay:g}: expected / "
                f"measured short minutes at {pts}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=Path, default=TRACES)
    ap.add_argument(
        "--hpa",
        action="store_true",
        help="replay the HPA (slow) instead of the figures of `make bench`",
    )
    args = ap.parse_args(argv)
    for case in cases(args.traces):
        print("\n".join(report(case, args.hpa)))
    print(
        "\nrate known: what the allocator knows of each minute, a boot delay ahead (centred "
        "means leave the minute itself out unless 'self in'; 'causal' knows only the past: "
        "a reference, not a bound). noise: its model of the count around that rate "
        "(empirical: the trace's own residuals, in-sample). boot 0 is the bound to read: "
        "no allocation costs less than its replicas' active time. phi: variance / mean of "
        "the count around the rate (1: Poisson). fewest: the fewest short minutes of the "
        "sweep. under @1.15x: short minutes at 1.15x the oracle's replica-hours. rep-h "
        "@goal, /oracle: replica-hours for 1/3 of the HPA's short minutes and their ratio "
        "to the oracle; strict: that ratio for 1/3 of the stricter HPA variant. @HPA rep-h: "
        "short minutes at the cheaper HPA variant's replica-hours. exp/real: "
        "short minutes the noise model expects over those measured, near 1.15x (a "
        "calibration check of the model). '-': not reached by the sweep."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
