"""The replica queries' shape (newest fresh sample, two labels) against a real Prometheus.

The reader asks for `last_over_time` over a range reaching back exactly to
`now - stale_after_seconds`, aggregated to the group and replica labels except for the
replicas with several series, which come whole. These tests hold it to what reading
the raw range selector (`metric[window]`, the newest sample of each series, judged by
its own timestamp) gives: duplicated series that agree or disagree, a series that ended
(a stale marker) and one older than stale_after, in one or several groups. The fast
decoder is held to the full one on generated answers.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.config import Config, PrometheusConfig
from autoscaler.observe.answer import InvalidAnswer, parse_result, replica_vector
from autoscaler.observe.prometheus import PrometheusReader
from tests.builders import listed as _replicas
from tests.builders import reader_group as _group
from tests.harness.prometheus import PrometheusServer, scraping

# job -> exposition; a job's target serves /metrics?job=NAME
BODIES = {
    "main": """replica_capacity{group="a",replica="a1"} 3
replica_capacity{group="a",replica="a2"} 2
replica_capacity{group="a",replica="a3"} NaN
replica_capacity{group="a",replica="gone"} 1
replica_capacity{group="b",replica="b1"} 4
replica_capacity{group="b",replica="b2"} 1
replica_capacity{replica="nogroup"} 1
replica_termination{group="a",replica="a1"} 0
replica_termination{group="b",replica="b1"} 1
""",
    # a second job scraping some of the same replicas: agreeing for a2 and a3 (NaN is
    # NaN), a stale exporter's 0 for b1
    "old": """replica_capacity{group="a",replica="a2"} 2
replica_capacity{group="a",replica="a3"} NaN
replica_capacity{group="b",replica="b1"} 0
""",
}


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    ready = 'replica_capacity{job="old",replica="b1"}'
    with scraping(lambda job: BODIES.get(job, ""), jobs=list(BODIES), ready=ready) as prom:
        prom.wait_for('replica_capacity{job="main",replica="gone"}')
        # `gone` stops being exposed: Prometheus ends its series with a stale marker, so an
        # instant selector no longer sees it, while its last sample is seconds old.
        BODIES["main"] = BODIES["main"].replace(
            'replica_capacity{group="a",replica="gone"} 1\n', ""
        )
        prom.wait_for('replica_capacity{replica="gone"}', lambda res: not res, timeout=20)
        yield prom


LISTED = {
    "a": _replicas("a", "a1", "a2", "a3", "gone", "silent"),
    "b": _replicas("b", "b1", "b2"),
}


def _by_range_selector(
    prom: PrometheusServer, metric: str, now: float, stale: float
) -> dict[tuple[str, str], list[float]]:
    """What the raw range selector gives: the newest sample of each series, kept when at
    or after now - stale (the reader's semantics before it asked for less)."""
    window = f"{math.ceil(stale) + 5}s"
    reply = requests.get(
        f"{prom.url}/api/v1/query", params={"query": f"{metric}[{window}]"}, timeout=5
    )
    out: dict[tuple[str, str], list[float]] = {}
    for s in reply.json()["data"]["result"]:
        labels = s["metric"]
        ts, value = s["values"][-1]
        if "group" in labels and "replica" in labels and ts >= now - stale:
            out.setdefault((labels["group"], labels["replica"]), []).append(float(value))
    return out


def _same(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))


def test_values_duplicates_and_an_ended_series_read_as_the_range_selector_reads_them(
    prometheus,
) -> None:
    groups = (_group("a"), _group("b"))
    invalid: list = []
    reader = PrometheusReader(
        Config(prometheus=PrometheusConfig(url=prometheus.url, timeout_seconds=5), groups=groups),
        on_invalid=invalid.append,
    )
    now = time.time()
    obs = reader.observe(groups, LISTED, now)
    assert reader.queries_last_cycle == 2
    a, b = obs["a"].metrics, obs["b"].metrics
    assert a["a1"].capacity == 3 and a["a1"].termination == 0
    assert a["a2"].capacity == 2  # two series that agree: one value, no conflict
    assert math.isnan(a["a3"].capacity)  # NaN and NaN agree
    assert a["gone"].capacity == 1  # ended seconds ago: its last sample is still fresh
    assert "silent" not in a
    assert b["b1"].capacity is None and b["b1"].termination == 1  # 4 and 0 disagree
    assert b["b2"].capacity == 1
    assert [(i.group, i.signal, i.replica, i.reason) for i in invalid] == [
        ("b", "capacity", "b1", "conflict")
    ]
    assert "2 series with different values" in invalid[0].detail
    # Replica by replica, what the range selector gives.
    raw = _by_range_selector(prometheus, "replica_capacity", now, 30.0)
    for group, listed in LISTED.items():
        for r in listed:
            values = raw.get((group, r.id), [])
            agreed = values[0] if values and all(_same(v, values[0]) for v in values) else None
            got = obs[group].metrics.get(r.id)
            assert _same(got.capacity if got else None, agreed), (group, r.id, values, got)


def test_freshness_is_judged_per_group_from_the_observation_time(prometheus) -> None:
    # Two stale_after values: one pair of queries each, still not one per group.
    groups = (_group("a", stale=30.0), _group("b", stale=2.0))
    reader = PrometheusReader(
        Config(prometheus=PrometheusConfig(url=prometheus.url, timeout_seconds=5), groups=groups)
    )
    later = time.time() + 10  # seen from 10 s on, b's samples are older than 2 s
    obs = reader.observe(groups, LISTED, later)
    assert reader.queries_last_cycle == 4
    assert obs["a"].metrics["a1"].capacity == 3
    assert obs["b"].metrics == {}
    assert obs["a"].prometheus_ok and obs["b"].prometheus_ok
    # Far in the future nothing is fresh; far in the past (an observation time before
    # the samples) everything since then is.
    assert reader.observe(groups, LISTED, time.time() + 3600)["a"].metrics == {}
    assert reader.observe(groups, LISTED, time.time() - 5)["a"].metrics["a1"].capacity == 3


def test_the_answer_is_small(prometheus) -> None:
    """Only the two labels for a replica with one series: the whole series only for the
    replicas with several (b1's two jobs, and a2's, a3's)."""
    reader = PrometheusReader(
        Config(
            prometheus=PrometheusConfig(url=prometheus.url, timeout_seconds=5),
            groups=(_group("a"),),
        )
    )
    ms = 30_000
    expr = reader._replica_expr("replica_capacity", ms)  # noqa: SLF001 - the shape itself
    reply = requests.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=5)
    labels = [s["metric"] for s in reply.json()["data"]["result"]]
    whole = sorted(m["replica"] for m in labels if "job" in m)
    assert whole == ["a2", "a2", "a3", "a3", "b1", "b1"]
    assert all(set(m) <= {"group", "replica"} for m in labels if "job" not in m)


# --- the fast decoder reads what the full one reads -----------------------------------------

_labels = st.dictionaries(
    st.sampled_from(["group", "replica", "job"]),
    st.sampled_from(["a", "b", "", "r1"]) | st.integers(0, 3),
    max_size=3,
)
_value = st.one_of(
    st.sampled_from(["1", "NaN", "+Inf", "-1", "2.5", "x", "", "1_0", " 3 "]),
    st.integers(-2, 2),
)
_ts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=False), st.integers(0, 10**20), st.just(True)
)
_row = st.fixed_dictionaries(
    {"metric": _labels, "value": st.lists(_ts | _value, min_size=1, max_size=3)}
) | st.fixed_dictionaries({"metric": _labels, "value": st.tuples(_ts, _value).map(list)})
_doc = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["success", "error"]),
        "data": st.fixed_dictionaries(
            {
                "resultType": st.sampled_from(["vector", "matrix"]),
                "result": st.lists(_row, max_size=4),
            }
        ),
    }
)


@settings(max_examples=300, deadline=None)
@given(doc=_doc, code=st.sampled_from([200, 200, 400]))
def test_fast_decoder_agrees_with_the_full_one(doc: dict, code: int) -> None:
    body = json.dumps(doc).encode()
    fast = replica_vector(body, code, "group", "replica")
    try:
        kind, series = parse_result(body, code, ("vector", "matrix"))
    except InvalidAnswer:
        assert fast is None, "the fast decoder accepted an answer the full one refuses"
        return
    if fast is None:
        return  # left to the full one: always allowed
    assert kind == "vector"
    full: dict[tuple[str, str], list[float]] = {}
    for s in series:
        g, r = s.labels.get("group"), s.labels.get("replica")
        if g is not None and r is not None:
            full.setdefault((g, r), []).append(s.samples[-1][1])
    got = {(g, r): fast.get(g, r) for g, by in fast.values.items() for r in by}
    assert set(got) == set(full)
    for key, values in full.items():
        assert json.dumps(got[key]) == json.dumps(values), key  # NaN-safe comparison
