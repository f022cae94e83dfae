"""HTTP endpoints: /metrics, /status, /healthz and /sd (Prometheus HTTP service discovery).

`GET /` answers SimpleScaleVM's status document, `{"status": 1, "isMaster": true}`, to
JSON clients (SimpleScaleVM's health checks: `Accept: application/json`, `*/*` or no
Accept header); a browser (`text/html` preferred) gets the operator console
(autoscaler/runtime/console.py), which polls /status and /api/history.

The controller publishes immutable snapshots; handlers only read them, so a slow scrape
never blocks a cycle and a cycle never blocks a scrape.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from autoscaler.config.secrets import registry as secret_registry
from autoscaler.core.clock import Clock
from autoscaler.runtime import console
from autoscaler.runtime.bounded_server import BoundedHTTPServer
from autoscaler.runtime.clock import SystemClock
from autoscaler.runtime.history import History
from autoscaler.runtime.metrics import Metrics
from autoscaler.runtime.web_config import WebConfig

log = logging.getLogger(__name__)

SHUTDOWN_POLL = 0.05  # seconds: how long stopping the server may wait for its loop


Document = dict[str, Any]


class Lazy:
    """A document built on its first read, then kept: the controller publishes a closure
    over its cycle's immutable results, so a cycle nobody asks about costs nothing."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build: Callable[[], Any] | None = build
        self._doc: Any = None
        self._lock = threading.Lock()  # two readers at once build it once

    def get(self) -> Any:
        with self._lock:
            if self._build is not None:
                self._doc, self._build = self._build(), None
            return self._doc


class SharedState:
    """What the controller last published, read by the HTTP handlers."""

    def __init__(self, interval_seconds: float, clock: Clock | None = None) -> None:
        self.lock = threading.RLock()  # reentrant: `status` and `sd` take it too
        self.interval = interval_seconds
        # Staleness is an interval: measured on the monotonic clock, so a wall-clock step
        # (back 1 h) can neither keep /healthz at 200 nor fail it. `last_success` (wall)
        # is only shown.
        self.clock: Clock = clock or SystemClock()
        self.started = self.clock.monotonic()
        self.last_success: float | None = None
        self._last_success_mono: float | None = None
        self._status = Lazy(lambda: {"groups": {}})
        self._sd = Lazy(lambda: {"direct": [], "bridge": []})
        # SimpleScaleVM's isMaster: this instance acts. Without high availability there
        # is no standby, so always True; a leader election would set it.
        self.is_master = True
        # The console's chart and decision log: written by the controller each cycle.
        self.history = History()

    def publish(
        self,
        status: Document | Callable[[], Document],
        sd: dict[str, list[Document]] | Callable[[], dict[str, list[Document]]],
    ) -> None:
        """Each document, or a function building it when first read (see `Lazy`)."""
        with self.lock:
            self._status = _lazy(status)
            self._sd = _lazy(sd)

    def publish_sd(
        self, sd: dict[str, list[Document]] | Callable[[], dict[str, list[Document]]]
    ) -> None:
        """Targets only, between cycles: new replicas are discoverable as soon as created."""
        with self.lock:
            self._sd = _lazy(sd)

    # Built outside `lock`, which the cycle takes to publish: a slow read never holds it.
    @property
    def status(self) -> Document:
        with self.lock:
            doc = self._status
        return doc.get()

    @property
    def sd(self) -> dict[str, list[Document]]:
        with self.lock:
            doc = self._sd
        return doc.get()

    def mark_success(self, at: float, monotonic: float | None = None) -> None:
        """A cycle succeeded: `at` (wall) for display, `monotonic` for staleness."""
        with self.lock:
            self.last_success = at
            self._last_success_mono = self.clock.monotonic() if monotonic is None else monotonic

    def healthy(self, now: float | None = None) -> bool:
        """Unhealthy once no cycle has succeeded for 3 intervals (grace from start-up too).

        `now` is on the monotonic timeline of `clock` (default: read it).
        """
        now = self.clock.monotonic() if now is None else now
        with self.lock:
            ref = self._last_success_mono
            return now - (self.started if ref is None else ref) <= 3 * self.interval


def _lazy(doc: Any) -> Lazy:
    return Lazy(doc) if callable(doc) else Lazy(lambda: doc)


def wants_json(accept: str | None) -> bool:
    """True unless the client prefers HTML (a browser): no header, */* and JSON all count."""
    if not accept or not accept.strip():
        return True
    best: tuple[float, str] = (-1.0, "")
    for part in accept.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        # a tie goes to JSON: the order of equal types says nothing (RFC 9110)
        if q > best[0] or (q == best[0] and kind in ("application/json", "*/*")):
            best = (q, kind.lower())
    return best[1] not in ("text/html", "application/xhtml+xml") or best[0] <= 0


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer

    def do_GET(self) -> None:  # noqa: N802 (stdlib naming)
        url = urlparse(self.path)
        state = self.server.state
        if url.path == "/":
            if wants_json(self.headers.get("Accept")):
                with state.lock:
                    master = state.is_master
                self._json(200, {"status": 1, "isMaster": master})
            else:
                self._send(200, console.page(), console.CONTENT_TYPE, console.HEADERS)
        elif url.path == console.HISTORY_PATH:
            self._send(200, console.history_json(state.history, url.query), "application/json")
        elif url.path == "/metrics":
            text = generate_latest(self.server.metrics.registry).decode()
            self._send(200, secret_registry.redact(text).encode(), CONTENT_TYPE_LATEST)
        elif url.path == "/healthz":
            ok = state.healthy()
            self._json(200 if ok else 503, {"healthy": ok, "last_success": state.last_success})
        elif url.path == "/status":
            body = dict(state.status)
            body["healthy"] = state.healthy()
            body["last_success"] = state.last_success
            text = json.dumps(body, default=str)  # errors may quote a provider's answer
            self._send(200, secret_registry.redact(text).encode(), "application/json")
        elif url.path == "/sd":
            via = parse_qs(url.query).get("via", ["direct"])[0]
            if via not in ("direct", "bridge"):
                self._json(400, {"error": "via must be direct or bridge"})
                return
            self._json(200, state.sd.get(via, []))
        else:
            self._json(404, {"error": "not found", "endpoints": self.server.endpoints})

    def _json(self, code: int, body: Any) -> None:
        self._send(code, json.dumps(body, default=str).encode(), "application/json")

    def _send(
        self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # scrapes every second would drown the log


class ExporterServer(BoundedHTTPServer):
    endpoints = ["/", "/metrics", "/status", "/healthz", "/sd?via=direct|bridge", "/api/history"]

    def __init__(self, address: tuple[str, int], metrics: Metrics, state: SharedState) -> None:
        super().__init__(address, _Handler)
        self.metrics = metrics
        self.state = state


def serve(
    listen: str, metrics: Metrics, state: SharedState, web: WebConfig | None = None
) -> tuple[ExporterServer, Callable[[], None]]:
    """Start serving in a daemon thread; returns the server and a stop function.

    `web` (`--web.config.file`): TLS and basic auth, in force before the first request.
    """
    host, _, port = listen.rpartition(":")
    server = ExporterServer((host.strip("[]") or "0.0.0.0", int(port)), metrics, state)
    server.web = web
    if web is not None:
        web.export(metrics.registry, "autoscaler")
    # shutdown() waits for the loop's next poll: the default 0.5 s delayed every SIGTERM.
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": SHUTDOWN_POLL},
        name="exporter",
        daemon=True,
    )
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return server, stop
