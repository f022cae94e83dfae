"""Adapt the shipped `prometheus.yml` to a local run.

The file names compose services (`autoscaler:9100`, `alertmanager:9093`, `bridge:9101`).
`make demo` and the tests run everything on loopback, so they substitute addresses for
those names and change nothing else: one file serves compose, the demo and the tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEFAULT_ADDRESSES = {
    "autoscaler": "autoscaler:9100",
    "alertmanager": "alertmanager:9093",
    "bridge": "bridge:9101",
}


def _substitute(node: Any, table: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, table) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, table) for v in node]
    if isinstance(node, str):
        for old, new in table.items():
            node = node.replace(old, new)
        return node
    return node


def render(
    source: Path,
    *,
    autoscaler: str,
    alertmanager: str | None = None,
    bridge: str | None = None,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
) -> str:
    """Return `source` with loopback addresses and absolute rule paths.

    Without an `alertmanager` address the alerting block is dropped (rules still load).
    """
    doc = yaml.safe_load(source.read_text())
    table = {DEFAULT_ADDRESSES["autoscaler"]: autoscaler}
    if bridge:
        table[DEFAULT_ADDRESSES["bridge"]] = bridge
    if alertmanager:
        table[DEFAULT_ADDRESSES["alertmanager"]] = alertmanager
    else:
        doc.pop("alerting", None)
    doc = _substitute(doc, table)
    base = source.resolve().parent
    doc["rule_files"] = [str(base / p) for p in doc.get("rule_files", [])]
    glob = doc.setdefault("global", {})
    if scrape_interval:
        glob["scrape_interval"] = scrape_interval
    if evaluation_interval:
        glob["evaluation_interval"] = evaluation_interval
    return yaml.safe_dump(doc, sort_keys=False)
