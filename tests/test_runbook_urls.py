"""rules/runbook_urls.py: absolute runbook links from one configurable base URL.

The shipped rules are what the script writes with the default base; another base gives
rules whose promtool tests still pass (the expected annotations follow).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "rules" / "runbook_urls.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )


def alerts(path: Path) -> dict[str, dict]:
    doc = yaml.safe_load(path.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def test_the_shipped_rules_are_what_the_script_writes() -> None:
    r = run("--check")
    assert r.returncode == 0, r.stderr
    for name, rule in alerts(REPO / "rules" / "autoscaler.alerts.yml").items():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(("https://", "http://")), f"{name}: {url} is not absolute"


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_another_base_rewrites_rules_and_their_tests_consistently(tmp_path: Path) -> None:
    base = "https://wiki.example.net/ops/autoscaler-runbooks"
    r = run("--base", base, "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    rendered = alerts(tmp_path / "autoscaler.alerts.yml")
    assert rendered and all(
        rule["annotations"]["runbook_url"] == f"{base}#{name.lower()}"
        for name, rule in rendered.items()
    )
    original = (REPO / "rules" / "autoscaler.alerts.yml").read_text().splitlines()
    changed = [
        (a, b)
        for a, b in zip(
            original, (tmp_path / "autoscaler.alerts.yml").read_text().splitlines(), strict=True
        )
        if a != b
    ]
    assert len(changed) == len(rendered), "only the runbook_url lines change"
    assert all("runbook_url:" in a for a, _ in changed)
    # The promtool tests, rewritten alongside, pass against the rewritten rules.
    r = subprocess.run(
        ["promtool", "test", "rules", *map(str, sorted((tmp_path / "tests").glob("*.yml")))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (REPO / "rules" / "autoscaler.alerts.yml").read_text().splitlines() == original


def test_a_relative_base_is_refused() -> None:
    r = run("--base", "docs/alerts.md", "--check")
    assert r.returncode == 2 and "absolute" in r.stderr
