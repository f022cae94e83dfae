"""The shipped Prometheus rules and Alertmanager configuration, checked by the real tools.

`promtool test rules` runs the unit tests in rules/tests/; the checks below also make
sure those tests cover every alert both firing and not firing, and that every alert is
documented.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from autoscaler.testing import promconfig

REPO = Path(__file__).resolve().parents[1]
RULE_FILES = sorted((REPO / "rules").glob("*.yml"))
TEST_FILES = sorted((REPO / "rules" / "tests").glob("*.yml"))
# rules/runbook_urls.py: absolute, <project docs>/alerts.md#<alert>
RUNBOOK_BASE = (
    tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Documentation"]
    + "/alerts.md"
)

pytestmark = pytest.mark.skipif(
    not shutil.which("promtool"), reason="promtool is not installed: run `make setup`"
)


def _run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=120, cwd=REPO
    )


def _alerts() -> dict[str, dict]:
    out = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out[rule["alert"]] = rule
    return out


def test_prometheus_loads_the_rules_but_not_their_tests():
    assert RULE_FILES and TEST_FILES
    globs = yaml.safe_load((REPO / "prometheus.yml").read_text())["rule_files"]
    loaded = {p for g in globs for p in REPO.glob(g)}
    assert set(RULE_FILES) <= loaded
    assert not loaded & set(TEST_FILES)


def test_promtool_check_rules():
    res = _run("promtool", "check", "rules", *RULE_FILES)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_promtool_test_rules():
    res = _run("promtool", "test", "rules", *TEST_FILES)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "FAILED" not in res.stdout + res.stderr


def test_every_alert_is_tested_firing_and_not_firing():
    fired: dict[str, int] = {}
    silent: dict[str, int] = {}
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                name = case["alertname"]
                if case.get("exp_alerts"):
                    fired[name] = fired.get(name, 0) + 1
                    for alert in case["exp_alerts"]:
                        # exact annotations, not just labels
                        assert set(alert["exp_annotations"]) >= {
                            "summary",
                            "description",
                            "runbook_url",
                        }, name
                else:
                    silent[name] = silent.get(name, 0) + 1
    for name in _alerts():
        assert fired.get(name), f"{name} is never tested firing"
        assert silent.get(name), f"{name} is never tested not firing"


def test_every_alert_has_severity_annotations_and_a_runbook():
    runbook = (REPO / "docs" / "alerts.md").read_text()
    anchors = {m.lower() for m in re.findall(r"^## (\w+)", runbook, flags=re.M)}
    for name, rule in _alerts().items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        ann = rule["annotations"]
        assert ann["summary"] and ann["description"], name
        assert ann["runbook_url"] == f"{RUNBOOK_BASE}#{name.lower()}", name
        assert name.lower() in anchors, f"{name} has no runbook section in docs/alerts.md"


def test_recording_rule_names_follow_conventions():
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", rule["record"]), rule


@pytest.mark.skipif(not shutil.which("amtool"), reason="amtool is not installed")
def test_example_alertmanager_config_is_valid():
    res = _run("amtool", "check-config", REPO / "alertmanager.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_prometheus_config_loads_the_rules_and_alertmanager(tmp_path):
    text = promconfig.render(
        REPO / "prometheus.yml",
        autoscaler="127.0.0.1:9100",
        alertmanager="127.0.0.1:9093",
        bridge="127.0.0.1:9101",
    )
    doc = yaml.safe_load(text)
    assert doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    res = _run("promtool", "check", "config", config)
    assert res.returncode == 0, res.stdout + res.stderr
    for path in RULE_FILES:
        assert path.name in res.stdout  # checked as part of the configuration
