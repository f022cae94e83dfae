"""The Grafana dashboards are generated, complete and consistent with the exporter.

The committed JSON must be exactly what grafana/build_dashboards.py produces; every
panel must query Prometheus through the provisioned datasource; every metric a query
names must be one the autoscaler, the replicas or the recording rules actually export;
and every per-group series must follow the dashboard's `group` variable.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from autoscaler.config import Config, PrometheusConfig
from autoscaler.runtime.metrics import Metrics

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS = REPO / "grafana" / "dashboards"
GROUP_FILTER = 'group=~"$group"'


def load_generator() -> ModuleType:
    path = REPO / "grafana" / "build_dashboards.py"
    spec = importlib.util.spec_from_file_location("build_dashboards", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_dashboards", module)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- shared with test_promql_live


def dashboard_docs() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(doc: dict) -> Iterator[dict]:
    for p in doc.get("panels", []):
        yield p
        yield from p.get("panels", [])  # panels inside collapsed rows


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) for every panel query and Prometheus annotation of every dashboard."""
    out = []
    for name, doc in dashboard_docs().items():
        for p in panels(doc):
            for t in p.get("targets", []):
                out.append((f"{name} panel {p['id']} {p['title']!r} {t['refId']}", t["expr"]))
        for a in doc.get("annotations", {}).get("list", []):
            if a.get("expr"):
                out.append((f"{name} annotation {a['name']!r}", a["expr"]))
    return out


def rule_exprs() -> list[tuple[str, str]]:
    """(where, expr) for every recording and alerting rule in rules/*.yml."""
    out = []
    for path in sorted((REPO / "rules").glob("*.yml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                name = rule.get("record") or rule.get("alert")
                out.append((f"{path.name} {group['name']}/{name}", str(rule["expr"])))
    return out


def recorded_names() -> set[str]:
    names = set()
    for path in sorted((REPO / "rules").glob("*.yml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for group in doc.get("groups", []):
            names |= {r["record"] for r in group.get("rules", []) if "record" in r}
    return names


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
             "or", "unless", "offset", "inf", "nan"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (functions and keywords excluded)."""
    s = _STRING.sub('""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range and subquery durations
    s = _CLAUSE.sub(" ", s)
    s = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        if m.start() > 0 and (s[m.start() - 1].isdigit() or s[m.start() - 1] == "."):
            continue  # the exponent of a number such as 1e3
        if s[m.end() :].lstrip().startswith("(") or m.group(0).lower() in _KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def exported() -> tuple[set[str], set[str]]:
    """(every series name the autoscaler and replicas export, those with a group label)."""
    metrics = Metrics()
    names: set[str] = set()
    grouped: set[str] = set()
    for collector, family_names in metrics.registry._collector_to_names.items():
        labels = set(getattr(collector, "_labelnames", ()))
        kind = getattr(collector, "_type", "")
        base = getattr(collector, "_name", "")
        series = set(family_names)
        if kind == "histogram":
            series |= {f"{base}_bucket", f"{base}_count", f"{base}_sum"}
        names |= series
        if "group" in labels:
            grouped |= series
    defaults = Config(prometheus=PrometheusConfig(), groups=())
    replica = {defaults.capacity_metric, defaults.termination_metric}
    return names | replica, grouped | replica


# ---------------------------------------------------------------- tests


def test_committed_json_is_exactly_what_the_generator_produces() -> None:
    rendered = load_generator().render()
    on_disk = {p.name for p in DASHBOARDS.glob("*.json")}
    assert on_disk == set(rendered), "grafana/dashboards/ holds files the generator does not make"
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text() == text, (
            f"{name} is out of date: run .venv/bin/python grafana/build_dashboards.py"
        )


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    gen = load_generator()
    assert gen.main(["--out", str(tmp_path)]) == 0
    assert gen.main(["--check", "--out", str(tmp_path)]) == 0
    first = next(tmp_path.glob("*.json"))
    first.write_text(first.read_text().replace("Autoscaler overview", "Hand edited"))
    assert gen.main(["--check", "--out", str(tmp_path)]) == 1


def test_overview_exists_with_a_group_variable() -> None:
    doc = dashboard_docs()["autoscaler-overview.json"]
    assert doc["uid"] == "autoscaler-overview"
    (var,) = [v for v in doc["templating"]["list"] if v["name"] == "group"]
    assert var["type"] == "query"
    assert var["multi"] and var["includeAll"]
    assert "autoscaler_group_info" in var["query"]


def test_panels_are_numbered_and_fit_the_grid() -> None:
    for name, doc in dashboard_docs().items():
        ps = list(panels(doc))
        assert [p["id"] for p in ps] == list(range(1, len(ps) + 1)), name
        cells: set[tuple[int, int]] = set()
        for p in ps:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, (name, p["title"])
            mine = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & mine, f"{name}: panel {p['title']!r} overlaps another"
            cells |= mine


def test_every_panel_queries_the_provisioned_prometheus() -> None:
    gen = load_generator()
    provisioned = yaml.safe_load(
        (REPO / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    assert gen.DATASOURCE_UID in {d["uid"] for d in provisioned}
    for name, doc in dashboard_docs().items():
        for p in panels(doc):
            if p["type"] == "row":
                assert not p.get("targets"), (name, p["title"])
                continue
            assert p.get("title") and p.get("description"), (name, p["id"])
            assert p["targets"], f"{name}: panel {p['title']!r} has no query"
            for t in p["targets"]:
                assert t["expr"].strip(), (name, p["title"], t["refId"])
                assert t["datasource"] == {"type": "prometheus", "uid": gen.DATASOURCE_UID}
            ref_ids = [t["refId"] for t in p["targets"]]
            assert len(ref_ids) == len(set(ref_ids)), (name, p["title"])


def test_queries_name_only_metrics_that_exist() -> None:
    names, _ = exported()
    names |= recorded_names()
    for where, expr in dashboard_exprs():
        unknown = metric_names(expr) - names
        assert not unknown, f"{where}: unknown metric(s) {sorted(unknown)} in {expr!r}"


def test_per_group_series_follow_the_group_variable() -> None:
    _, grouped = exported()
    grouped |= {n for n in recorded_names() if n.startswith("group:")}
    for where, expr in dashboard_exprs():
        for name in metric_names(expr) & grouped:
            for m in re.finditer(rf"(?<![A-Za-z0-9_:]){re.escape(name)}(?![A-Za-z0-9_:])", expr):
                rest = expr[m.end() :]
                matchers = rest[: rest.index("}") + 1] if rest.startswith("{") else ""
                assert GROUP_FILTER in matchers, f"{where}: {name} ignores $group in {expr!r}"


def test_the_issue_s_views_are_all_there() -> None:
    """current vs desired, capacity vs min_available, target and band, decisions, failures,
    time since last success, cycle and provider latency, replicas by state."""
    used = set().union(*(metric_names(e) for _, e in dashboard_exprs()))
    for metric in (
        "autoscaler_replicas",
        "autoscaler_desired_replicas",
        "autoscaler_available_capacity",
        "autoscaler_min_available",
        "autoscaler_policy_signal",
        "autoscaler_policy_target",
        "autoscaler_policy_tolerance_band",
        "autoscaler_decisions_total",
        "requests_failures_total",
        "autoscaler_provider_requests_total",
        "autoscaler_last_success_timestamp_seconds",
        "autoscaler_cycle_duration_seconds_bucket",
        "autoscaler_provider_request_duration_seconds_bucket",
    ):
        assert metric in used, f"no panel shows {metric}"
    doc = dashboard_docs()["autoscaler-overview.json"]
    anns = [a for a in doc["annotations"]["list"] if a.get("expr")]
    assert anns, "scale events are not annotated"
    assert all(GROUP_FILTER in a["expr"] for a in anns)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (group) (rate(a_total{group=~"$group"}[5m]))', {"a_total"}),
        ("histogram_quantile(0.95, sum by (le) (rate(x_bucket[1m])))", {"x_bucket"}),
        ("time() - max(last_ts)", {"last_ts"}),
        ("a - (a offset 1m) != 0", {"a"}),
        ("a * on (group) group_left (policy) b > 1e3", {"a", "b"}),
        ('c{name="by"} or vector(0)', {"c"}),
    ],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
