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


def test_a_lost_create_answer_clears_once_nothing_is_left_to_create(tmp_path: Path) -> None:
    # Found by the suite (row "provider create succeeds, answer lost"): the create worked,
    # its answer was lost, the next cycle listed the replica and needed nothing more; the
    # create failure stayed in /status `errors` until some later create succeeded.
    spec = group(scale_up=ScalingBehavior(cooldown_seconds=0))
    d = daemon(tmp_path, spec, 1)
    real_create = d.provider.create

    def lost(count: int) -> object:
        real_create(count)
        raise RuntimeError("connection reset by peer")

    d.provider.create = lost  # type: ignore[method-assign]
    d.cycle(2.0)  # wants 2: the replica is created, the answer lost
    assert d.count == 2 and "provider g create" in d.controller.failures.failing_for("g")
    d.provider.create = real_create  # type: ignore[method-assign]
    d.cycle(1.0)  # 2 replicas at target: nothing to create, no duplicate
    assert d.count == 2
    assert d.controller.failures.failing_for("g") == {}
    d.controller.close()
