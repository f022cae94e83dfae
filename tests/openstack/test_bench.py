"""bench/openstack.py runs (small and fast here) and prints its table: `make bench` must not rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_prints_a_row_per_concurrency_and_phase() -> None:
    r = subprocess.run(
        [sys.executable, "bench/openstack.py", "--latency", "0.05", "--count", "4"]
        + ["--concurrency", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    rows = [line.split("|")[1:-1] for line in r.stdout.splitlines() if line.startswith("| ")]
    header, *body = [[c.strip() for c in row] for row in rows]
    assert header[:4] == ["max_concurrency", "scale-up", "created", "wall s"]
    assert [(c, phase) for c, phase, *_ in body] == [
        ("25 (default)", "first"),
        ("25 (default)", "later"),
        ("2", "first"),
        ("2", "later"),
    ]
    assert all(row[2] == "4/4" for row in body)
    first, later = body[0][5], body[1][5]
    assert "flavor=" in first and "image=" in first and "network=" in first
    assert later == "create=4"  # looked up once, then only creates
