"""Generate the Grafana dashboards in grafana/dashboards/ from typed Python.

    .venv/bin/python grafana/build_dashboards.py          # (re)write the JSON files
    .venv/bin/python grafana/build_dashboards.py --check  # exit 1 if a file is out of date

The JSON files are committed so Grafana can provision them without Python, and
tests/test_dashboards.py fails when they differ from what this script produces. Edit
this file, never the JSON. Every query reads the Prometheus datasource provisioned by
grafana/provisioning/datasources/prometheus.yml (uid `prometheus`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as pb
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE_UID = "prometheus"  # must match grafana/provisioning/datasources/prometheus.yml
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)

# Every per-group query filters on the dashboard's `group` variable (multi-value, "All").
G = 'group=~"$group"'


def query(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> pb.Dataquery:
    q = pb.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    if instant:
        q = q.instant().format(pm.PromQueryFormat.TABLE)
    else:
        q = q.range()
    return q


def queries(*pairs: tuple[str, str]) -> list[pb.Dataquery]:
    """(expr, legend) pairs with refIds A, B, C, ..."""
    return [query(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(pairs)]


def dashed() -> list[dm.DynamicConfigValue]:
    return [
        dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
        dm.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
    ]


def series(
    title: str,
    description: str,
    targets: list[pb.Dataquery],
    *,
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    bars: bool = False,
    dashed_regex: str | None = None,
    minimum: float | None = 0,
) -> timeseries.Panel:
    p = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets)
        .unit(unit)
        .span(width)
        .height(height)
        .line_width(2)
        .fill_opacity(10)
        .legend(
            cb.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI))
    )
    if minimum is not None:
        p = p.min(minimum)
    if stacked:
        p = p.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL)).fill_opacity(60)
    if bars:
        p = p.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80)
    if dashed_regex:
        p = p.override_by_regexp(dashed_regex, dashed())
    return p


def single_stat(
    title: str,
    description: str,
    expr: str,
    *,
    unit: str,
    thresholds: list[tuple[float | None, str]],
    width: int = 6,
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(query(expr))
        .unit(unit)
        .span(width)
        .height(4)
        .graph_mode(cm.BigValueGraphMode.AREA)
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(
            db.ThresholdsConfig()
            .mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(value=v, color=c) for v, c in thresholds])
        )
    )


def health_row(d: db.Dashboard) -> db.Dashboard:
    d = d.with_row(db.Row("Health of the autoscaler"))
    d = d.with_panel(
        single_stat(
            "Time since last successful cycle",
            "Seconds since a cycle in which every Prometheus query and provider listing "
            "succeeded. Grows without bound when the autoscaler is stuck or blind.",
            "time() - max(autoscaler_last_success_timestamp_seconds)",
            unit="s",
            thresholds=[(None, "green"), (60, "orange"), (300, "red")],
        )
    )
    d = d.with_panel(
        single_stat(
            "Cycles per minute",
            "Completed control cycles (autoscaler_heartbeat_total, the ScaleIt name).",
            "sum(rate(autoscaler_heartbeat_total[$__rate_interval])) * 60",
            unit="short",
            thresholds=[(None, "red"), (0.5, "green")],
        )
    )
    d = d.with_panel(
        single_stat(
            "Failed calls in range",
            "Failed calls to Prometheus and providers over the dashboard's time range "
            "(requests_failures_total, the ScaleIt name).",
            "sum(increase(requests_failures_total[$__range]))",
            unit="short",
            thresholds=[(None, "green"), (1, "orange")],
        )
    )
    d = d.with_panel(
        single_stat(
            "Replicas without fresh metrics",
            "Healthy replicas past warm-up whose capacity Prometheus has no fresh sample "
            "for. While any exist the group may scale up but never down.",
            f"sum(autoscaler_replicas_unreported{{{G}}})",
            unit="short",
            thresholds=[(None, "green"), (1, "orange")],
        )
    )
    return d


def replicas_row(d: db.Dashboard) -> db.Dashboard:
    d = d.with_row(db.Row("Replicas"))
    d = d.with_panel(
        series(
            "Current vs desired replicas",
            "Healthy replicas (building + active) against what the planner wants, "
            "between the configured min and max (dashed).",
            queries(
                (
                    f'sum by (group) (autoscaler_replicas{{{G}, state=~"building|active"}})',
                    "{{group}} current",
                ),
                (f"autoscaler_desired_replicas{{{G}}}", "{{group}} desired"),
                (f"autoscaler_min_replicas{{{G}}}", "{{group}} min"),
                (f"autoscaler_max_replicas{{{G}}}", "{{group}} max"),
            ),
            dashed_regex=".* (min|max)$",
        )
    )
    d = d.with_panel(
        series(
            "Replicas by state",
            "Every replica the provider reports, stacked by state: building, active, "
            "failed, deleting, and terminating (asked to be removed).",
            queries((f"sum by (group, state) (autoscaler_replicas{{{G}}})", "{{group}} {{state}}")),
            stacked=True,
        )
    )
    d = d.with_panel(
        series(
            "Free capacity vs min_available",
            "Free resource slots as the headroom policy counted them (fresh samples of "
            "active replicas plus full capacity for replicas in warm-up) against the "
            "policy's min_available (dashed). Below the line the group scales up.",
            queries(
                (f"autoscaler_available_capacity{{{G}}}", "{{group}} available"),
                (f"autoscaler_min_available{{{G}}}", "{{group}} min_available"),
            ),
            dashed_regex=".* min_available$",
        )
    )
    d = d.with_panel(
        series(
            "Desired replicas per policy",
            "Each policy's recommendation before the planner combines them (the highest "
            "wins), clamps them to min/max and damps them.",
            queries(
                (
                    f"autoscaler_policy_desired_replicas{{{G}}}",
                    "{{group}} {{policy}}",
                )
            ),
        )
    )
    return d


def target_row(d: db.Dashboard) -> db.Dashboard:
    d = d.with_row(db.Row("Target tracking"))
    d = d.with_panel(
        series(
            "Target metric vs target, with tolerance band",
            "The value of each target policy's query, its target, and the tolerance band "
            "(dashed) inside which the policy holds. Outside the band, desired = "
            "ceil(current x value / target).",
            queries(
                (f"autoscaler_policy_signal{{{G}}}", "{{group}} {{policy}} value"),
                (f"autoscaler_policy_target{{{G}}}", "{{group}} {{policy}} target"),
                (
                    f"autoscaler_policy_tolerance_band{{{G}}}",
                    "{{group}} {{policy}} band {{edge}}",
                ),
            ),
            width=24,
            dashed_regex=".* band (lower|upper)$",
            minimum=None,
        )
    )
    return d


def decisions_row(d: db.Dashboard) -> db.Dashboard:
    d = d.with_row(db.Row("Decisions"))
    d = d.with_panel(
        series(
            "Decisions by direction and reason",
            "Planner decisions per interval, by direction (up, down, hold) and main reason "
            "code. Scale events are also drawn as annotations on every panel.",
            queries(
                (
                    "sum by (group, direction, reason) "
                    f"(increase(autoscaler_decisions_total{{{G}}}[$__rate_interval]))",
                    "{{group}} {{direction}} {{reason}}",
                )
            ),
            bars=True,
            stacked=True,
        )
    )
    d = d.with_panel(
        series(
            "Cooldown remaining",
            "Seconds until the planner may scale in each direction again.",
            queries(
                (
                    f"autoscaler_cooldown_remaining_seconds{{{G}}}",
                    "{{group}} {{direction}}",
                )
            ),
            unit="s",
        )
    )
    return d


def latency_row(d: db.Dashboard) -> db.Dashboard:
    d = d.with_row(db.Row("Latency and failures"))
    d = d.with_panel(
        series(
            "Cycle duration",
            "Quantiles of the duration of a whole control cycle, all groups included.",
            queries(
                *[
                    (
                        f"histogram_quantile({q}, sum by (le) "
                        "(rate(autoscaler_cycle_duration_seconds_bucket[$__rate_interval])))",
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ]
            ),
            unit="s",
            width=8,
        )
    )
    d = d.with_panel(
        series(
            "Provider latency (p95)",
            "95th percentile duration of provider operations (list, create, delete).",
            queries(
                (
                    "histogram_quantile(0.95, sum by (group, operation, le) "
                    f"(rate(autoscaler_provider_request_duration_seconds_bucket{{{G}}}"
                    "[$__rate_interval])))",
                    "{{group}} {{operation}}",
                )
            ),
            unit="s",
            width=8,
        )
    )
    d = d.with_panel(
        series(
            "Provider requests by result",
            "Provider operations per second, by operation and result.",
            queries(
                (
                    "sum by (group, operation, result) "
                    f"(rate(autoscaler_provider_requests_total{{{G}}}[$__rate_interval]))",
                    "{{group}} {{operation}} {{result}}",
                )
            ),
            unit="reqps",
            width=8,
        )
    )
    d = d.with_panel(
        series(
            "Failed calls",
            "Failed calls to Prometheus and providers per second, by method and endpoint "
            "(requests_failures_total, the ScaleIt name).",
            queries(
                (
                    "sum by (method, endpoint) (rate(requests_failures_total[$__rate_interval]))",
                    "{{method}} {{endpoint}}",
                )
            ),
            unit="reqps",
        )
    )
    d = d.with_panel(
        series(
            "Time since last successful cycle",
            "Seconds since the last fully successful cycle against the configured "
            "interval (dashed): a healthy autoscaler stays close to the interval.",
            queries(
                ("time() - autoscaler_last_success_timestamp_seconds", "since last success"),
                ("autoscaler_interval_seconds", "interval"),
            ),
            unit="s",
            dashed_regex="^interval$",
        )
    )
    return d


def replica_metrics_row(d: db.Dashboard) -> db.Dashboard:
    d = d.with_row(db.Row("What the replicas report"))
    d = d.with_panel(
        series(
            "Free capacity per replica",
            "replica_capacity as scraped from each replica (or through the bridge).",
            queries((f"replica_capacity{{{G}}}", "{{group}} {{replica}}")),
        )
    )
    d = d.with_panel(
        series(
            "Replicas asking for termination",
            "Replicas whose replica_termination is 1: removed first, never counted as capacity.",
            queries((f"sum by (group) (replica_termination{{{G}}})", "{{group}}")),
            width=6,
        )
    )
    d = d.with_panel(
        table.Panel()
        .title("Groups")
        .description("Each group's provider and whether it runs in dry-run mode.")
        .datasource(DATASOURCE)
        .with_target(query(f"autoscaler_group_info{{{G}}}", instant=True))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True, "Value": True, "__name__": True},
                    "indexByName": {},
                    "renameByName": {},
                },
            )
        )
        .span(6)
        .height(8)
    )
    return d


def scale_events_annotation() -> db.AnnotationQuery:
    return (
        db.AnnotationQuery()
        .name("Scale events")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("orange")
        # Changes of the desired count rather than increase() of the decision counter:
        # a counter series born with its first scale-up shows no increase.
        .expr(f"changes(autoscaler_desired_replicas{{{G}}}[1m]) > 0")
    )


# Fields Grafana's Prometheus annotation editor stores that the SDK model lacks.
ANNOTATION_EXTRA: dict[str, dict[str, Any]] = {
    "Scale events": {
        "step": "60s",
        "titleFormat": "Scale event: {{group}}",
        "textFormat": "the desired replica count changed (see Decisions for the reason)",
        "tagKeys": "group",
        "useValueForTime": False,
    }
}


def group_variable() -> db.QueryVariable:
    return (
        db.QueryVariable("group")
        .label("Group")
        .description("Scaling groups known to the autoscaler.")
        .datasource(DATASOURCE)
        .query("label_values(autoscaler_group_info, group)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def overview() -> db.Dashboard:
    d = (
        db.Dashboard("Autoscaler overview")
        .uid("autoscaler-overview")
        .description(
            "What the autoscaler sees, decides and does, per group. Generated by "
            "grafana/build_dashboards.py: edit that file, not this JSON."
        )
        .tags(["autoscaler"])
        .editable()
        .refresh("10s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(group_variable())
        .annotation(scale_events_annotation())
    )
    for row in (health_row, replicas_row, target_row, decisions_row, latency_row):
        d = row(d)
    return replica_metrics_row(d)


DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {"autoscaler-overview.json": overview}


def to_dict(builder: db.Dashboard) -> dict[str, Any]:
    """Build, number the panels 1..n in layout order and add the annotation fields."""
    doc: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    for number, panel in enumerate(doc.get("panels", []), start=1):
        panel["id"] = number
    for ann in doc.get("annotations", {}).get("list", []):
        ann.update(ANNOTATION_EXTRA.get(ann["name"], {}))
    return doc


def render() -> dict[str, str]:
    """File name -> the exact JSON text the file must hold."""
    return {
        name: json.dumps(to_dict(build()), indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="directory to write to")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print("out of date (run grafana/build_dashboards.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
