"""A loopback HTTP proxy in front of Prometheus that injects one fault at a time.

Modes: "pass" (forward), "refuse" (the port closes: connections are refused, as if
Prometheus were killed), "slow" (answer after `delay` seconds, past the query timeout),
"http500"/"http503", and garbage bodies with HTTP 200: "empty" (empty vector), "nan",
"inf", "string" (a non-numeric value), "huge" (1e308), "dup" (every series twice, the copy
disagreeing), "malformed" (not JSON), "truncated" (the real answer cut in half).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

GARBAGE_VALUES = {"nan": "NaN", "inf": "+Inf", "string": "four", "huge": "1e308"}
MODES = ("pass", "refuse", "slow", "http500", "http503", "empty", *GARBAGE_VALUES, "dup")
MODES = (*MODES, "malformed", "truncated")


def _rewrite(body: bytes, mode: str) -> bytes:
    """The garbage version of a real Prometheus answer."""
    if mode == "malformed":
        return b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":'
    if mode == "truncated":
        return body[: len(body) // 2]
    doc: Any = json.loads(body)
    data = doc.get("data") or {}
    result = data.get("result") or []
    if mode == "empty":
        data["result"] = []
    elif mode in GARBAGE_VALUES:
        bad = GARBAGE_VALUES[mode]
        for series in result:
            for key in ("values", "value"):
                if key == "values" and key in series:
                    series[key] = [[t, bad] for t, _ in series[key]]
                elif key == "value" and key in series:
                    series[key] = [series[key][0], bad]
    elif mode == "dup":
        copies = json.loads(json.dumps(result))
        for series in copies:  # the same labels, another value: a conflicting duplicate
            if "values" in series:
                series["values"] = [[t, "0"] for t, _ in series["values"]]
            elif "value" in series:
                series["value"] = [series["value"][0], "0"]
        data["result"] = result + copies
    return json.dumps(doc).encode()


class FaultProxy:
    """Forwards /api/v1/* to `upstream`; `set(mode)` switches the fault at once."""

    def __init__(self, upstream: str, delay: float = 3.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        self.mode = "pass"
        self.requests = 0  # answered (or faulted) requests, for the suite's checks
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.session = requests.Session()

    def set(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}; known: {', '.join(MODES)}")
        with self._lock:
            self.mode = mode
            if mode == "refuse":
                self._close()
            elif self._server is None:
                self._open()

    def start(self) -> FaultProxy:
        with self._lock:
            self._open()
        return self

    def stop(self) -> None:
        with self._lock:
            self._close()
        self.session.close()

    def _open(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._forward("GET", b"")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self._forward("POST", self.rfile.read(length))

            def _forward(self, method: str, data: bytes) -> None:
                mode = proxy.mode
                proxy.requests += 1
                if mode == "refuse":  # a kept-alive connection dies with the "process"
                    self.close_connection = True
                    return
                if mode in ("http500", "http503"):
                    code = int(mode[4:])
                    self._send(code, b'{"status":"error","errorType":"internal","error":"x"}')
                    return
                if mode == "slow":
                    time.sleep(proxy.delay)
                try:
                    r = proxy.session.request(
                        method,
                        proxy.upstream + self.path,
                        data=data or None,
                        headers={"Content-Type": self.headers.get("Content-Type", "")},
                        timeout=10,
                    )
                except requests.RequestException:
                    self._send(502, b"upstream unreachable")
                    return
                body = r.content
                if mode not in ("pass", "slow") and r.status_code == 200:
                    body = _rewrite(body, mode)
                self._send(r.status_code, body)

            def _send(self, code: int, body: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (its timeout): nothing to answer

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
