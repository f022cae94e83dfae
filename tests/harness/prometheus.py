"""A real Prometheus on a free loopback port (autoscaler/prometheus_process.py)."""

import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from autoscaler.testing.prometheus import (
    REPO,
    PrometheusServer,
    free_port,
    stop_process,
    wait_http,
)

__all__ = [
    "REPO",
    "PrometheusServer",
    "backfilled",
    "exposition",
    "free_port",
    "http_server",
    "idle",
    "scraping",
    "stop_process",
    "wait_http",
]


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


# --- stand-ins on loopback: an HTTP server, an exporter, a Prometheus scraping it ----------

# shutdown() waits for the serving loop's next poll: the stdlib's 0.5 s cost every
# server's teardown up to half a second.
POLL = 0.05


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """`handler` served on a free loopback port by a daemon thread; shut down on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def exposition(body: Callable[[str], str]) -> type[BaseHTTPRequestHandler]:
    """A handler answering every GET with `body(path)` as Prometheus text exposition."""

    class Exporter(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            data = body(self.path).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Exporter


@contextmanager
def scraping(
    body: Callable[[str], str], jobs: Sequence[str] = ("fake",), ready: str | None = None
) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping, every second, an exporter that answers `body(job)`.

    Job NAME scrapes `/metrics?job=NAME` with honor_labels (the exposition's labels are
    kept); `ready`, a query, is waited for before yielding.
    """

    def answer(path: str) -> str:
        return body(path.partition("job=")[2])

    with http_server(exposition(answer)) as server:
        target = f"127.0.0.1:{server.server_address[1]}"
        config = "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"
        config += "".join(
            f"  - job_name: {job}\n"
            "    honor_labels: true\n"
            f"    params: {{job: [{job}]}}\n"
            f'    static_configs: [{{targets: ["{target}"]}}]\n'
            for job in jobs
        )
        prom = PrometheusServer(autoscaler="unused:1", config_text=config).start()
        try:
            if ready is not None:
                prom.wait_for(ready)
            yield prom
        finally:
            prom.cleanup()


@contextmanager
def idle() -> Iterator[PrometheusServer]:
    """A real Prometheus with nothing to scrape: every query answers an empty result."""
    config = "global: {scrape_interval: 1s}\nscrape_configs: []\n"
    with PrometheusServer(autoscaler="unused:1", config_text=config) as prom:
        yield prom
