"""Properties of every policy and of the capacity assessment over the whole float range.

1e308, subnormals, NaN, +-inf, negative zero and negative numbers, in samples, signals,
settings and histories: nothing raises, no count is negative, no scale-down is proposed
on missing data, and float noise at a documented edge never moves a count (issue #9).
"""

from __future__ import annotations

import math
from decimal import Decimal

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from autoscaler.core.capacity import (
    Assessment,
    assess,
    available_capacity,
    ceil_count,
    valid_capacity,
)
from autoscaler.core.model import (
    Code,
    Observation,
    PlannerState,
    Proposal,
    Replica,
    ReplicaMetrics,
    ReplicaState,
)
from autoscaler.core.planner import plan
from autoscaler.core.policies import headroom, predictive, target
from autoscaler.core.spec import (
    GroupConfig,
    HeadroomPolicyConfig,
    PredictivePolicyConfig,
    ProviderConfig,
    ScalingBehavior,
    TargetPolicyConfig,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = 1_000_000.0
MAX = 1.7976931348623157e308

EDGES = st.sampled_from(
    [
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        2.2250738585072014e-308,
        1e-300,
        1.0,
        0.5,
        4.0,
        1e15,
        2.0**53,
        1e300,
        1e308,
        MAX,
        -1.0,
        -1e308,
        float("nan"),
        float("inf"),
        float("-inf"),
    ]
)
# Every float hypothesis can make (subnormals, NaN, infinities included), plus the edges.
ANY = st.one_of(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True), EDGES)
SAMPLE = st.one_of(st.none(), ANY)
NO_COUNT = {Code.NO_DATA, Code.NOT_COMPUTABLE}


def group(slot: float, policies: tuple = (), **kw: object) -> GroupConfig:
    return GroupConfig(
        name="g",
        provider=ProviderConfig("local"),
        min=0,
        max=1000,
        replica_capacity=slot,
        policies=policies,
        scale_up=ScalingBehavior(),
        scale_down=ScalingBehavior(),
        warmup_seconds=60.0,
        **kw,  # type: ignore[arg-type]
    )


@st.composite
def observations(draw: st.DrawFn, signals: dict[str, float | None] | None = None) -> Observation:
    n = draw(st.integers(0, 8))
    replicas = []
    metrics = {}
    for i in range(n):
        state = draw(st.sampled_from([ReplicaState.ACTIVE] * 4 + list(ReplicaState)))
        age = draw(st.sampled_from([5.0, 3600.0, 3600.0]))
        replicas.append(Replica(f"r{i}", "g", state, NOW - age))
        if draw(st.integers(0, 4)):  # mostly reporting
            termination = draw(st.sampled_from([None, 0.0, 0.0, 1.0, float("nan")]))
            metrics[f"r{i}"] = ReplicaMetrics(capacity=draw(SAMPLE), termination=termination)
    return Observation(
        group="g",
        at=NOW,
        replicas=tuple(replicas),
        metrics=metrics,
        signals=signals or {},
        prometheus_ok=draw(st.sampled_from([True, True, True, False])),
    )


def check_count(p: Proposal, a: Assessment) -> None:
    """What every proposal must be: no count with a reason, or a count >= 0."""
    assert p.reason
    if p.desired is None:
        assert p.code in NO_COUNT, p
        return
    assert isinstance(p.desired, int) and p.desired >= 0, p
    assert p.code not in NO_COUNT, p


# ---------------------------------------------------------------- capacity assessment


@SETTINGS
@given(data=st.data(), slot=ANY)
def test_assessment_never_raises_and_invalid_is_missing(data: st.DataObject, slot: float) -> None:
    o = data.draw(observations())
    expect = data.draw(st.sampled_from([True, True, False]))
    g = group(slot, expect_capacity=expect)
    a = assess(o, g)
    healthy = {r.id for r in a.healthy}
    slot_ok = math.isfinite(slot) and slot > 0
    for rid, cap in a.capacity.items():
        assert rid in healthy
        assert slot_ok and 0 <= cap <= slot, (rid, cap, slot)
    for r in a.healthy:
        raw = o.metrics.get(r.id, ReplicaMetrics()).capacity
        warm = r.id in a.warming
        if raw is not None and (not math.isfinite(raw) or raw < 0 or raw > slot * (1 + 1e-9)):
            # NaN, inf, negative or above replica_capacity: never a value, never idle
            assert r.id not in a.capacity and r.id in a.invalid
            assert r not in a.idle
            assert warm or r.id in a.missing
        if raw is None and not warm:
            assert r.id in a.missing
    assert set(a.missing) <= healthy and set(a.invalid) <= healthy
    assert not set(a.missing) & a.warming
    assert a.known == a.current - len(a.missing)
    # No replica reporting is the worst case of partial data: when the group's replicas
    # export the gauge, every silent one blocks scale-in.
    if a.expected:
        assert a.unreported == a.missing
    else:
        assert a.unreported == ()
    # Expected unless the group says its replicas export none and none reports one.
    reports = any(m.capacity is not None for m in o.metrics.values())
    assert a.expected is (expect or reports)
    free = available_capacity(o, a)
    assert free is None or (math.isfinite(free) and free >= 0)
    assert not math.isnan(a.available) or not slot_ok


@SETTINGS
@given(value=SAMPLE, slot=ANY)
def test_valid_capacity_is_within_zero_and_replica_capacity(
    value: float | None, slot: float
) -> None:
    cap = valid_capacity(value, slot)
    assert cap is None or 0 <= cap <= slot


@SETTINGS
@given(x=ANY)
def test_ceil_count_never_raises(x: float) -> None:
    n = ceil_count(x)
    assert n is None or (isinstance(n, int) and n >= 0)
    assert (n is None) == (not math.isfinite(x))


def test_headroom_group_with_no_replica_reporting_is_missing_everywhere() -> None:
    o = Observation(
        "g", NOW, tuple(Replica(f"r{i}", "g", ReplicaState.ACTIVE, 0) for i in range(4)), {}, {}
    )
    a = assess(o, group(4.0, (HeadroomPolicyConfig("h", 1.0),)))
    assert len(a.unreported) == 4


# ---------------------------------------------------------------- headroom


@SETTINGS
@given(data=st.data(), slot=ANY, need=ANY)
def test_headroom_never_raises_nor_scales_down_on_missing_data(
    data: st.DataObject, slot: float, need: float
) -> None:
    pol = HeadroomPolicyConfig("h", need)
    g = group(slot, (pol,))
    o = data.draw(observations())
    a = assess(o, g)
    p = headroom.propose(pol, o, g, a)
    check_count(p, a)
    if p.desired is not None and a.missing:
        assert p.desired >= a.current and p.partial, p
    if p.desired is not None and p.desired < a.current:
        assert p.code is Code.HEADROOM_SURPLUS and a.current - p.desired <= len(a.idle)


@SETTINGS
@given(
    parts=st.lists(st.integers(0, 99), min_size=0, max_size=5),
    idle=st.integers(0, 5),
    slot_units=st.integers(1, 300),
)
def test_headroom_exact_minimum_in_decimals_removes_every_idle_replica(
    parts: list[int], idle: int, slot_units: int
) -> None:
    """min_available equal (in decimals) to what stays free: all idle replicas go."""
    slot = slot_units / 100
    busy = [min(p, slot_units - 1) / 100 for p in parts]
    assume(all(b < slot for b in busy))
    need = float(sum((Decimal(str(b)) for b in busy), Decimal(0)))
    caps = busy + [slot] * idle
    replicas = tuple(Replica(f"r{i}", "g", ReplicaState.ACTIVE, 0) for i in range(len(caps)))
    samples = {r.id: ReplicaMetrics(c) for r, c in zip(replicas, caps, strict=True)}
    o = Observation("g", NOW, replicas, samples, {})
    pol = HeadroomPolicyConfig("h", need)
    g = group(slot, (pol,))
    p = headroom.propose(pol, o, g, assess(o, g))
    assert p.desired == len(busy), (caps, need, p.reason)


# ---------------------------------------------------------------- target


@SETTINGS
@given(
    data=st.data(),
    value=SAMPLE,
    tgt=ANY,
    up=st.one_of(st.floats(0, 1), ANY),
    down=st.one_of(st.floats(0, 1), ANY),
)
def test_target_never_raises(
    data: st.DataObject, value: float | None, tgt: float, up: float, down: float
) -> None:
    pol = TargetPolicyConfig("t", "q", tgt, tolerance_up=up, tolerance_down=down)
    o = data.draw(observations({"t": value}))
    g = group(4.0, (pol,))
    a = assess(o, g)
    p = target.propose(pol, o, g, a)
    check_count(p, a)
    if value is None or not math.isfinite(value) or value < 0 or not o.prometheus_ok:
        assert p.desired is None  # missing data: no proposal, so never a scale-down
    if p.desired is not None and p.code is Code.TARGET_ABOVE:
        assert p.desired >= a.current
    if p.desired is not None and p.code is Code.TARGET_BELOW:
        assert p.desired <= a.current


@SETTINGS
@given(
    current=st.integers(1, 1000),
    t_units=st.integers(1, 10_000),
    tol_units=st.integers(0, 99),
    side=st.sampled_from(["up", "down"]),
)
def test_target_band_edges_hold_despite_float_noise(
    current: int, t_units: int, tol_units: int, side: str
) -> None:
    """value = target x (1 +- tolerance) computed in decimals: exactly on the edge, holds."""
    t, tol = Decimal(t_units) / 100, Decimal(tol_units) / 100
    edge = t * (1 + tol) if side == "up" else t * (1 - tol)
    pol = TargetPolicyConfig("t", "q", float(t), tolerance_up=float(tol), tolerance_down=float(tol))
    replicas = tuple(Replica(f"r{i}", "g", ReplicaState.ACTIVE, 0) for i in range(current))
    o = Observation("g", NOW, replicas, {}, {"t": float(edge)})
    g = group(4.0, (pol,))
    p = target.propose(pol, o, g, assess(o, g))
    assert (p.desired, p.code) == (current, Code.IN_BAND), p.reason


# ---------------------------------------------------------------- predictive


@st.composite
def predictive_configs(draw: st.DrawFn) -> PredictivePolicyConfig:
    setting = st.one_of(st.floats(0.01, 1000), ANY)
    return PredictivePolicyConfig(
        name="p",
        query="q",
        demand_per_replica=draw(setting),
        target=draw(st.one_of(st.floats(0.05, 1), ANY)),
        horizon_seconds=draw(st.one_of(st.sampled_from([0.0, 60.0, 180.0]), ANY)),
        season_seconds=draw(st.one_of(st.sampled_from([600.0, 3600.0]), ANY)),
        seasons=draw(st.integers(0, 3)),
        level_seconds=draw(st.one_of(st.sampled_from([60.0, 300.0]), ANY)),
        trend_seconds=draw(st.one_of(st.sampled_from([0.0, 300.0, 600.0]), ANY)),
        max_growth=draw(st.one_of(st.sampled_from([1.0, 4.0]), ANY)),
    )


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[float, float]]:
    step = draw(st.sampled_from([1.0, 15.0, 60.0]))
    n = draw(st.integers(0, 40))
    span = draw(st.sampled_from([0.0, 600.0, 3600.0, 7200.0]))
    values = draw(st.lists(ANY, min_size=n, max_size=n))
    start = NOW - span - n * step
    return [
        (start + i * step if i < n // 2 else NOW - (n - i) * step, v) for i, v in enumerate(values)
    ]


@SETTINGS
@given(history=histories(), cfg=predictive_configs())
def test_forecast_never_raises_and_is_never_nan(
    history: list[tuple[float, float]], cfg: PredictivePolicyConfig
) -> None:
    history.sort(key=lambda p: p[0])
    f = predictive.forecast(history, NOW, cfg)
    if f is not None:
        assert not math.isnan(f.value) and f.value >= 0, f
    p = predictive.propose(history, NOW, cfg)
    assert p.desired is None or (isinstance(p.desired, int) and p.desired >= 0)
    assert (p.desired is None) == (p.code in NO_COUNT)


@SETTINGS
@given(data=st.data(), value=SAMPLE, cfg=predictive_configs())
def test_predictive_observed_never_raises(
    data: st.DataObject, value: float | None, cfg: PredictivePolicyConfig
) -> None:
    o = data.draw(observations({"p": value}))
    g = group(4.0, (cfg,))
    a = assess(o, g)
    p = predictive.propose_observed(cfg, o, g, a)
    check_count(p, a)
    if value is None or math.isnan(value) or value < 0 or not o.prometheus_ok:
        assert p.desired is None


def test_forecast_of_huge_values_is_inf_not_an_exception() -> None:
    cfg = PredictivePolicyConfig("p", "q", demand_per_replica=1.0, target=0.5, seasons=0)
    rising = [(NOW - 60 * (10 - k), MAX / 10 * k) for k in range(1, 11)]  # a line up to MAX
    f = predictive.forecast(rising, NOW, cfg)
    assert f is not None and f.value == math.inf
    p = predictive.propose(rising, NOW, cfg)
    assert (p.desired, p.code) == (None, Code.NOT_COMPUTABLE)


# ---------------------------------------------------------------- the planner on top


@SETTINGS
@given(data=st.data(), slot=ANY, need=ANY, value=SAMPLE, forecast=SAMPLE, tgt=ANY)
def test_plan_never_raises_on_any_float(
    data: st.DataObject,
    slot: float,
    need: float,
    value: float | None,
    forecast: float | None,
    tgt: float,
) -> None:
    pols = (
        HeadroomPolicyConfig("h", need),
        TargetPolicyConfig("t", "q", tgt),
        PredictivePolicyConfig("p", "q", demand_per_replica=data.draw(ANY), target=data.draw(ANY)),
    )
    chosen = tuple(p for p in pols if data.draw(st.booleans()))
    g = group(slot, chosen)
    o = data.draw(observations({"t": value, "p": forecast}))
    d, _ = plan(g, o, PlannerState(), NOW)
    assert g.min <= d.desired <= g.max
    a = assess(o, g)
    if a.unreported and d.desired < a.current:
        assert d.desired == g.max  # only a hard limit goes below with missing data
