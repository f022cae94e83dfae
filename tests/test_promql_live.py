"""Every PromQL expression in grafana/dashboards/ and rules/ against a real Prometheus.

1. It parses: Prometheus's query API accepts it (dashboard variables substituted the
   way Grafana would).
2. It returns data after a short scaling scenario: a real autoscaler daemon with two
   local groups (one headroom, one target tracking, so every panel has something to
   show), real replica processes under real HTTP load, and a short Prometheus outage so
   the failure counters exist too. A panel or recording rule that would stay empty
   fails. Alerting rules are conditions that are normally false, so for them every
   series they read must exist instead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import requests
import yaml

from autoscaler.demo.loadgen import LoadGenerator, constant
from tests.harness.prometheus import PrometheusServer, wait_http
from tests.harness.stack import Stack, local_group
from tests.test_dashboards import dashboard_docs, dashboard_exprs, metric_names, rule_exprs

HEADROOM, TARGET = "web", "tgt"
RATE_INTERVAL = "5s"  # Grafana: max(4 x scrape interval, interval + scrape); scrapes are 1 s
# Series no part of this scenario produces, and what would.
NOT_IN_SCENARIO = {
    "replica_probe_success": "a via_bridge group scraped through `autoscaler bridge`",
    # only with --web.config.file: tests/test_web_config.py has Prometheus scrape both
    "autoscaler_web_config_last_reload_successful": "a daemon with --web.config.file",
    "bridge_web_config_last_reload_successful": "a bridge with --web.config.file, scraped",
}


def substitute(expr: str, range_seconds: int) -> str:
    """Replace Grafana's variables as Grafana would for this scenario."""
    for var, value in (
        ("$__rate_interval", RATE_INTERVAL),
        ("$__interval", "1s"),
        ("$__range", f"{range_seconds}s"),
        ("$group", f"{HEADROOM}|{TARGET}"),  # "All" of a multi-value variable
    ):
        expr = expr.replace(var, value)
    # ($1 of label_replace is PromQL's own, not a Grafana variable)
    assert not re.search(r"\$\{?[A-Za-z_]", expr), f"unknown variable left in {expr!r}"
    return expr


def query_api(url: str, path: str, params: dict[str, str]) -> dict:
    r = requests.get(f"{url}/api/v1/{path}", params=params, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", (
        f"{params.get('query')!r}: {body.get('errorType')}: {body.get('error')}"
    )
    return body["data"]


def rule_kinds() -> dict[str, str]:
    """where -> "record" or "alert", for the rule_exprs() labels."""
    from tests.test_dashboards import REPO

    out = {}
    for path in sorted((REPO / "rules").glob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            for rule in group.get("rules", []):
                kind = "record" if "record" in rule else "alert"
                out[f"{path.name} {group['name']}/{rule.get(kind)}"] = kind
    return out


def selectors(expr: str) -> list[str]:
    """Each vector selector of an expression, with its label matchers."""
    out = []
    for name in sorted(metric_names(expr)):
        pattern = rf"(?<![A-Za-z0-9_:]){re.escape(name)}(?![A-Za-z0-9_:(])\s*(\{{[^}}]*\}})?"
        out += [name + (m.group(1) or "") for m in re.finditer(pattern, expr)]
    return out


def all_exprs() -> list[tuple[str, str]]:
    return dashboard_exprs() + rule_exprs()


# ---------------------------------------------------------------- 1. parsing


@pytest.fixture(scope="module")
def empty_prometheus() -> Iterator[PrometheusServer]:
    with PrometheusServer(autoscaler="127.0.0.1:1") as prom:
        yield prom


@pytest.mark.parametrize(("where", "expr"), all_exprs(), ids=[w for w, _ in all_exprs()])
def test_expression_parses(empty_prometheus: PrometheusServer, where: str, expr: str) -> None:
    query_api(empty_prometheus.url, "query", {"query": substitute(expr, 300)})


def test_there_are_expressions_to_check() -> None:
    kinds = rule_kinds()
    assert len(dashboard_exprs()) >= 20
    assert "record" in kinds.values() and "alert" in kinds.values()


# ---------------------------------------------------------------- 2. data after scaling


@pytest.fixture(scope="module")
def scenario() -> Iterator[tuple[Stack, float]]:
    """Both groups scaled up under load, then a Prometheus outage; yields (stack, start)."""
    stack = Stack(interval=1.0)
    # The default config has one group; give it a headroom and a target-tracking group,
    # both under the stack's run_dir so its cleanup stops their replicas.
    doc = yaml.safe_load(stack.config_path.read_text())
    doc["groups"] = {
        HEADROOM: local_group(stack.run_dir, max=5),
        TARGET: local_group(
            stack.run_dir,
            max=5,
            policies=[
                {
                    "type": "target",
                    "name": "busy",
                    "query": f'avg by (group) (replica_busy_slots{{group="{TARGET}"}}'
                    f' / replica_slots{{group="{TARGET}"}})',
                    "target": 0.5,
                    "tolerance": 0.1,
                }
            ],
        ),
    }
    stack.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    start = time.time()
    load: LoadGenerator | None = None
    with stack:
        prom = stack.prometheus
        for g in (HEADROOM, TARGET):  # replicas up and scraped through /sd
            prom.wait_for(f'replica_capacity{{group="{g}"}}', timeout=60)
        # ~12 req/s of 0.5 s work over 2 replicas of 4 slots: both groups run short.
        load = LoadGenerator(constant(12.0), stack.sd_targets, timeout_seconds=3, seed=1)
        try:
            load.start()
            for g in (HEADROOM, TARGET):
                prom.wait_for(f'autoscaler_desired_replicas{{group="{g}"}} > 1', timeout=90)
            # An outage: the autoscaler's queries fail and it counts them.
            prom.stop()
            stack.wait(
                "a failed Prometheus query",
                lambda: stack.metric("requests_failures_total", {"endpoint": "prometheus"}) > 0,
                timeout=30,
            )
            prom.start()
            prom.wait_for("requests_failures_total", timeout=60)
            prom.wait_for(f'replica_capacity{{group="{TARGET}"}}', timeout=60)
            time.sleep(6)  # more than the rate window of samples after the outage
        finally:
            load.stop()
        yield stack, start


def _range(stack: Stack, expr: str, start: float) -> list[dict]:
    end = time.time()
    return query_api(
        stack.prometheus.url,
        "query_range",
        {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1s"},
    )["result"]


@pytest.mark.timeout(600)
def test_every_dashboard_query_returns_data(scenario: tuple[Stack, float]) -> None:
    stack, start = scenario
    seconds = int(time.time() - start) + 1
    empty = [
        f"{where}: {expr}"
        for where, expr in dashboard_exprs()
        if not _range(stack, substitute(expr, seconds), start)
    ]
    assert not empty, "panels that would stay empty:\n" + "\n".join(empty)


def test_group_variable_lists_both_groups(scenario: tuple[Stack, float]) -> None:
    stack, _ = scenario
    (var,) = [
        v
        for doc in dashboard_docs().values()
        for v in doc["templating"]["list"]
        if v["name"] == "group"
    ]
    m = re.fullmatch(r"label_values\((\w+), *(\w+)\)", var["query"])
    assert m, var["query"]
    values = query_api(stack.prometheus.url, f"label/{m.group(2)}/values", {"match[]": m.group(1)})
    assert {HEADROOM, TARGET} <= set(values)


def test_every_recording_rule_returns_data(scenario: tuple[Stack, float]) -> None:
    stack, start = scenario
    kinds = rule_kinds()
    empty = []
    for where, expr in rule_exprs():
        if kinds[where] != "record":
            continue
        if not _range(stack, expr, start):
            empty.append(f"{where}: {expr}")
        recorded = where.rsplit("/", 1)[1]
        if not _range(stack, recorded, start):
            empty.append(f"{where}: Prometheus never recorded {recorded}")
    assert not empty, "recording rules without data:\n" + "\n".join(empty)


def test_every_series_an_alert_reads_exists(scenario: tuple[Stack, float]) -> None:
    stack, start = scenario
    kinds = rule_kinds()
    missing = []
    for where, expr in rule_exprs():
        if kinds[where] != "alert":
            continue
        for sel in selectors(expr):
            if sel.split("{")[0] in NOT_IN_SCENARIO:
                continue
            if not _range(stack, sel, start):
                missing.append(f"{where}: {sel}")
    assert not missing, "alerts reading series that never exist:\n" + "\n".join(missing)


def test_autoscaler_health_endpoint_answers(scenario: tuple[Stack, float]) -> None:
    """The endpoint the image's HEALTHCHECK asks."""
    stack, _ = scenario
    wait_http(f"{stack.url}/healthz", timeout=30)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('rate(a_total{job="x"}[5m]) > 0', ['a_total{job="x"}']),
        ("absent(b)", ["b"]),
        ("c / on (group) d", ["c", "d"]),
    ],
)
def test_selector_extraction(expr: str, expected: list[str]) -> None:
    assert selectors(expr) == expected
