"""The command line as users run it: subprocesses, exit codes, messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from autoscaler.cli import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
        cwd=REPO,
    )


def test_every_subcommand_module_loads_and_has_help() -> None:
    parser = build_parser()  # imports every subcommand module: a broken one fails here
    help_text = parser.format_help()
    for name in COMMANDS:
        assert name in help_text
    for name in COMMANDS:
        r = _run(name, "--help")
        assert r.returncode == 0, r.stderr
        assert "usage: autoscaler " + name in r.stdout


def test_run_refuses_an_invalid_file_with_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "prometheus: {url: 'ftp://x', password: hunter2-secret, username: u}\n"
        "interval_seconds: -1\n"
        "groups:\n  web:\n    provider: {type: local}\n    min: 5\n    max: 2\n"
        "    replica_capacity: 4\n    policies: [{type: headroom, min_available: 4}]\n"
    )
    for args in (("run", "--config", str(bad)), ("check", str(bad))):
        r = _run(*args)
        assert r.returncode == 2, r.stderr
        assert "prometheus.url" in r.stderr and "interval_seconds" in r.stderr
        assert "groups.web" in r.stderr and "min" in r.stderr
        assert "hunter2-secret" not in r.stderr + r.stdout


def test_run_without_any_configuration_says_how() -> None:
    r = _run("run")
    assert r.returncode == 2
    assert "--config" in r.stderr and "SimpleScaleVM" in r.stderr


def test_simplescalevm_variables_alone_are_a_configuration() -> None:
    r = _run("once", env={"REPLICA_CAPACITY": "2", "REPLICA_MIN_AVAILABLE_RESOURCES": "many"})
    assert r.returncode == 2
    assert "REPLICA_MIN_AVAILABLE_RESOURCES" in r.stderr and "'many'" in r.stderr


def test_once_dry_run_prints_the_decision_and_touches_nothing(tmp_path: Path) -> None:
    import json

    import yaml

    from tests.harness.prometheus import PrometheusServer
    from tests.harness.stack import local_group

    with PrometheusServer(autoscaler="127.0.0.1:1") as prom:
        run_dir = tmp_path / "run"
        config = {
            "prometheus": {"url": prom.url, "timeout_seconds": 2},
            "groups": {"web": local_group(run_dir, min=2)},
        }
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(config))
        r = _run("once", "--dry-run", "--config", str(path))
    assert r.returncode == 0, r.stderr
    (line,) = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    d = line["decision"]
    assert line["group"] == "web" and d["dry_run"] is True
    assert (d["current"], d["desired"], d["create"]) == (0, 2, 2)
    assert not list(run_dir.rglob("*.json")), "dry run created a replica"


def test_version_is_printed() -> None:
    r = _run("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("autoscaler ")


def test_the_file_may_be_given_as_an_argument_and_minus_config_says_what_to_type(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("interval_seconds: -1\n")
    # as an argument, the file is read (and its errors reported) like --config FILE
    r = _run("run", str(bad))
    assert r.returncode == 2 and "interval_seconds" in r.stderr, r.stderr
    r = _run("once", "--dry-run", str(bad))
    assert r.returncode == 2 and "interval_seconds" in r.stderr, r.stderr
    # `-config FILE` is argparse's `-c onfig FILE`: say exactly what to type instead
    r = _run("run", "-config", str(bad))
    assert r.returncode == 2
    assert "--config FILE" in r.stderr, r.stderr
    other = tmp_path / "other.yaml"
    r = _run("run", "--config", str(other), str(bad))
    assert r.returncode == 2 and "two configuration files" in r.stderr, r.stderr
