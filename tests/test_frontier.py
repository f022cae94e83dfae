"""bench/frontier.py: its pure parts, and that it costs allocations as the simulator does."""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from autoscaler.simulation.oracle import oracle
from autoscaler.simulation.run import Timeline, short_of, summarize
from autoscaler.simulation.spec import ReplicaModel
from autoscaler.simulation.trace import Trace

_PATH = Path(__file__).resolve().parents[1] / "bench" / "frontier.py"
_spec = importlib.util.spec_from_file_location("bench_frontier", _PATH)
assert _spec and _spec.loader
frontier = importlib.util.module_from_spec(_spec)
sys.modules["bench_frontier"] = frontier
_spec.loader.exec_module(frontier)


def test_centred_mean_leaves_the_minute_out_and_shrinks_at_the_ends() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    assert frontier.centred_mean(x, 3).tolist() == [2.0, 2.0, 3.0, 6.5, 4.0]
    assert frontier.centred_mean(x, 3, leave_out=False).tolist() == [1.5, 2.0, 3.0, 17 / 3, 7.0]
    assert frontier.centred_mean(np.array([5.0]), 3).tolist() == [0.0]  # no neighbour
    with pytest.raises(ValueError):
        frontier.centred_mean(x, 4)


def test_trailing_mean_sees_only_the_past_lead_minutes_back() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    # minute t: the mean of minutes t-3 and t-4 (width 2, lead 3); before any: minute 0
    assert frontier.trailing_mean(x, 2, 3).tolist() == [1.0, 1.0, 1.0, 1.0, 1.5, 2.5]


@pytest.mark.parametrize("rate", [0.3, 4.7, 47.0, 400.0])
def test_poisson_survival_matches_the_closed_form(rate: float) -> None:
    ks = np.array(sorted({-1, 0, 3, int(rate), int(rate * 1.3) + 1}))
    got = frontier.parametric_survival(np.array([rate]), 1.0, ks)[0]
    for k, s in zip(ks, got, strict=True):
        cdf = sum(math.exp(-rate + j * math.log(rate) - math.lgamma(j + 1)) for j in range(k + 1))
        assert s == pytest.approx(1.0 - cdf, abs=1e-6)


def test_negative_binomial_survival_has_the_asked_mean_and_variance() -> None:
    rate, phi = 30.0, 4.0
    ks = np.arange(0, 600)
    surv = frontier.parametric_survival(np.array([rate]), phi, ks)[0].astype(float)
    pmf = -np.diff(np.concatenate(([1.0], surv)))  # P(N = k) for k = 0 .. 599
    k = np.arange(len(pmf))
    mean = float(np.sum(k * pmf))
    assert mean == pytest.approx(rate, rel=1e-3)
    assert float(np.sum((k - mean) ** 2 * pmf)) == pytest.approx(phi * rate, rel=1e-3)


def test_negative_binomial_survival_takes_one_overdispersion_per_minute() -> None:
    """Gamma-Poisson of shape k: variance rate * (1 + rate / k), a phi per minute."""
    rates, k = np.array([5.0, 30.0, 120.0]), 10.0
    ks = np.arange(0, 1500)
    surv = frontier.parametric_survival(rates, 1.0 + rates / k, ks).astype(float)
    for rate, row in zip(rates, surv, strict=True):
        pmf = -np.diff(np.concatenate(([1.0], row)))
        j = np.arange(len(pmf))
        mean = float(np.sum(j * pmf))
        assert mean == pytest.approx(rate, rel=1e-3)
        assert float(np.sum((j - mean) ** 2 * pmf)) == pytest.approx(
            rate * (1 + rate / k), rel=1e-3
        )
    with pytest.raises(ValueError):
        frontier.parametric_survival(rates, np.array([1.0, 2.0, 3.0]), ks)


def test_the_overdispersed_traces_come_with_their_rate_and_gamma_shape() -> None:
    case = frontier.with_true_rate("diurnal_low_b")
    assert case.shape == 10.0 and case.rate is not None  # synthetic.diurnal_low_b's shape
    counts = np.rint(np.asarray(case.trace.demand) * case.trace.step)
    # the counts scatter around the caught rate as gamma-Poisson noise of that shape
    ratio = np.sum((counts - case.rate) ** 2) / np.sum(case.rate * (1 + case.rate / case.shape))
    assert ratio == pytest.approx(1.0, abs=0.1)
    assert frontier.with_true_rate("flash_crowd").shape == 0.0  # Poisson


def test_empirical_survival_is_the_share_of_residuals_above_the_threshold() -> None:
    counts = np.array([8.0, 9.0, 10.0, 11.0, 12.0])
    rate = np.full(5, 10.0)
    surv = frontier.empirical_survival(counts, rate, np.array([7, 9, 11, 12]), bins=1)
    assert surv[0].tolist() == pytest.approx([1.0, 0.6, 0.2, 0.0])


def test_allocate_is_the_lagrangian_argmin_and_grows_with_mu() -> None:
    surv = np.array([[1.0, 0.5, 0.1, 0.0], [1.0, 1.0, 0.9, 0.2]], dtype=np.float32)
    assert frontier.allocate(surv, 0.5).tolist() == [0, 0]
    assert frontier.allocate(surv, 3.0).tolist() == [2, 0]
    assert frontier.allocate(surv, 100.0).tolist() == [3, 3]
    last = np.zeros(2)
    for mu in frontier.MUS:
        c = frontier.allocate(surv, mu)
        assert np.all(c >= last)
        last = c


@pytest.mark.parametrize("seed", range(6))
def test_schedule_costs_an_allocation_as_the_oracle_and_the_simulator_do(seed: int) -> None:
    rng = random.Random(seed)
    n, boot, per = 300, rng.choice([1, 2, 3]), 2.5
    counts = [max(0, round(4 + 3 * math.sin(i / 9) + rng.gauss(0, 1.5))) for i in range(n)]
    initial = rng.choice([0, 2, 6])
    model = ReplicaModel(per_replica=per, boot_delay=60.0 * boot)
    trace = Trace("t", 0.0, 60.0, tuple(c * per for c in counts))
    run = oracle(trace, model, 60, initial, list(trace.demand))
    alive, active = frontier.schedule(counts, boot, initial)
    assert alive * 60 / 3600 == pytest.approx(run.summary.replica_hours)
    assert active.tolist() == run.timeline.active
    # the short minutes against some demand: as run.summarize counts them
    demand = [max(0.0, c * per + rng.gauss(0, 2)) for c in counts]
    tl = run.timeline
    tl2 = Timeline(60.0, tl.t, demand, tl.active, tl.building, tl.failed)
    expected = summarize("x", "t", tl2, per, 0, 0)
    rep_h, under = frontier.score(np.array(counts), np.array(demand), per, 60.0, boot, initial)
    assert rep_h == pytest.approx(expected.replica_hours)
    assert under == expected.under_minutes
    assert under == sum(short_of(d, a * per) for d, a in zip(demand, tl.active, strict=True))


def test_score_without_boot_delay_is_the_sum_of_replicas() -> None:
    c = np.array([0, 2, 3, 1])
    rep_h, under = frontier.score(c, np.array([0.0, 5.0, 3.0, 2.5]), 2.0, 60.0, 0, 0)
    assert rep_h == pytest.approx(6 / 60)
    assert under == 2.0  # 5 > 2 * 2 and 2.5 > 1 * 2


def test_thresholds_are_the_most_requests_c_replicas_serve() -> None:
    ks = frontier.thresholds(per_replica=0.16875, step=60.0, cmax=8)
    assert ks.tolist() == [0, 10, 20, 30, 40, 50, 60, 70, 81]
    for c, k in enumerate(ks):
        assert not short_of(k / 60.0, c * 0.16875)
        assert short_of((k + 1) / 60.0, c * 0.16875)


def test_pareto_and_the_interpolations() -> None:
    pts = [
        frontier.Point(1, 10.0, 100.0, 0),
        frontier.Point(2, 12.0, 40.0, 0),
        frontier.Point(3, 11.0, 120.0, 0),  # dominated
        frontier.Point(4, 20.0, 0.0, 0),
    ]
    front = frontier.pareto(pts)
    assert [p.mu for p in front] == [1, 2, 4]
    assert frontier.under_at_cost(front, 11.0) == pytest.approx(70.0)
    assert frontier.under_at_cost(front, 9.0) == math.inf
    assert frontier.under_at_cost(front, 99.0) == 0.0
    assert frontier.cost_at_under(front, 20.0) == pytest.approx(16.0)
    assert frontier.cost_at_under(front, 500.0) == 10.0
    assert frontier.cost_at_under([frontier.Point(1, 5.0, 9.0, 0)], 1.0) == math.inf


def test_with_the_true_rate_the_poisson_model_predicts_the_short_minutes() -> None:
    """The method's sanity check: on a synthetic trace of known Poisson rate the model's
    expected short minutes are the measured ones, within the Poisson error."""
    case = frontier.with_true_rate("flash_crowd")
    assert case.rate is not None and len(case.rate) == len(case.trace.demand)
    curves = frontier.curves(case, boot_delays=(0.0,))
    exact = next(cv for cv in curves if cv.estimator == "true rate" and cv.noise == "poisson")
    assert exact.phi == pytest.approx(1.0, abs=0.1)
    checked = frontier.calibration(exact.front)
    assert checked
    for p in checked:
        assert abs(p.under_minutes - p.expected_under) <= 4 * math.sqrt(p.expected_under) + 2
    # and knowing the rate beats the cheapest smoother at the same cost
    budget = 1.15 * frontier.oracle_hours(case, frontier.BOOT_DELAY)
    causal = next(cv for cv in curves if cv.estimator.startswith("causal"))
    assert frontier.under_at_cost(exact.front, budget) <= frontier.under_at_cost(
        causal.front, budget
    )


def test_the_report_of_a_short_trace_has_a_row_per_curve_and_the_sanity_line() -> None:
    full = frontier.with_true_rate("flash_crowd")
    n = 720  # the first half day: quick, and no HPA replay (goal from the full trace's)
    assert full.rate is not None
    trace = frontier.Trace(full.trace.name, 0.0, 60.0, full.trace.demand[:n])
    case = frontier.Case("synthetic:flash_crowd", trace, full.rate[:n])
    lines = frontier.report(case)
    models = (" poisson ", " empirical ", " neg-binomial ")
    rows = [ln for ln in lines if any(m in ln for m in models) and "sanity" not in ln]
    # two boot delays; the true rate with 2 noise models, 5 estimators with 2 each
    assert len(rows) == 2 * (2 + 5 * 2)
    assert any(line.startswith("  sanity, true rate and poisson noise, boot 0") for line in lines)
    assert lines == frontier.report(case)  # deterministic


def test_the_what_if_keeps_the_rate_and_the_replica_size_and_draws_the_asked_noise() -> None:
    rng = np.random.default_rng(0)
    base = Trace("b", 0.0, 60.0, tuple(float(x) / 60 for x in rng.poisson(40.0, 3000)))
    case = frontier.what_if(base, 3.0)
    assert case.per_replica == base.peak / frontier.PEAK_REPLICAS
    assert case.rate is not None
    counts = np.rint(np.asarray(case.trace.demand) * 60)
    assert frontier.overdispersion(counts, case.rate) == pytest.approx(3.0, rel=0.15)
    assert frontier.what_if(base, 3.0).trace == case.trace  # seeded


@pytest.mark.parametrize("name", ["flash_crowd", "double_flash_c"])
def test_the_quantile_figures_it_places_are_those_the_benchmark_measures(name: str) -> None:
    """OURS caches `make bench`'s figures (a NASA replay is slow); the two 3-day traces
    replay in seconds and catch a policy change that left the cache behind."""
    rep_h, under = frontier.bench_figures(f"synthetic:{name}", "quantile")
    trace = frontier.synthetic.ALL_HELD_OUT[name]()
    assert (round(rep_h, 1), under) == frontier.OURS[trace.name]
