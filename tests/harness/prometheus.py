"""A real Prometheus on a free loopback port (autoscaler/prometheus_process.py)."""

import subprocess
from pathlib import Path

from autoscaler.testing.prometheus import (
    REPO,
    PrometheusServer,
    free_port,
    stop_process,
    wait_http,
)

__all__ = ["REPO", "PrometheusServer", "backfilled", "free_port", "stop_process", "wait_http"]


def backfilled(
    lines: list[str], workdir: Path, config_text: str = "global: {}\n"
) -> PrometheusServer:
    """A started Prometheus whose TSDB already holds `lines` (OpenMetrics, "# EOF" added).

    History is written as a block with `promtool tsdb create-blocks-from openmetrics`, so
    range queries over past hours answer at once, without waiting for scrapes.
    """
    om = workdir / "history.om"
    om.write_text("\n".join([*lines, "# EOF"]) + "\n")
    server = PrometheusServer(autoscaler="127.0.0.1:1", config_text=config_text)
    data = server.dir / "data"
    try:
        subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        return server.start()
    except BaseException:
        server.cleanup()
        raise
