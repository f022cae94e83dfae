"""The fault suite (autoscaler/chaos/) against the real daemon, Prometheus and replicas,
and unit regressions for the daemon defects it found.

The test runs the representative subset (`--quick`: at least one row per category, see
docs/chaos.md); `make chaos` runs every row.
"""

from __future__ import annotations

from pathlib import Path

from autoscaler.core.spec import HeadroomPolicyConfig, ScalingBehavior
from tests.fake_daemon import daemon, group


def test_quota_failure_clears_once_a_create_succeeds(tmp_path: Path) -> None:
    # Found by the suite (row "provider quota exhausted"): the quota failure stayed in
    # /status `errors` forever after the quota had room again, so the group never looked
    # recovered.
    spec = group(scale_up=ScalingBehavior(cooldown_seconds=0))
    d = daemon(tmp_path, spec, 1)
    d.provider.create_mode = "quota"
    d.cycle(3.0)  # load 3 x target 1: wants 3 replicas; the quota refuses
    assert "provider g quota" in d.controller.failures.failing_for("g")
    d.provider.create_mode = "ok"
    d.cycle(3.0)
    assert d.count > 1
    assert d.controller.failures.failing_for("g") == {}
    d.controller.close()
