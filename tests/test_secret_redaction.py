"""Secrets in every form stay out of every sink: logs, /status, /metrics.

A fake Prometheus on loopback answers 401/403 with a body echoing the request's headers
(as some proxies do), and a provider's errors embed the same secrets; the token file is
rotated between cycles, so the token the daemon read last was never seen at start-up.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests

from autoscaler.config import PrometheusConfig
from autoscaler.config.secrets import SecretRegistry
from autoscaler.runtime import logs
from autoscaler.runtime.controller import Controller
from autoscaler.runtime.exporter import SharedState, serve
from autoscaler.runtime.metrics import Metrics
from tests.harness.prometheus import free_port, http_server
from tests.test_controller import FlakyProvider, _config

PASSWORD = "s3cr3t-pass-word"
TOKEN_1 = "tok-first-0123456789"
TOKEN_2 = "tok-rotated-9876543210"


class _Echo(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        code = 401 if "Basic" in (self.headers.get("Authorization") or "") else 403
        body = json.dumps(
            {"status": "error", "error": f"denied; request headers: {dict(self.headers)}"}
        ).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture()
def echo_prometheus() -> Iterator[str]:
    with http_server(_Echo) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


class LeakyProvider(FlakyProvider):
    """Its errors quote the credentials (as a careless SDK's exception text would)."""

    leak = ""

    def list(self) -> list:
        raise RuntimeError(f"cloud says no: {self.leak}")


def _forms(user: str, secret: str) -> list[str]:
    pair = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return [secret, pair, base64.b64encode(secret.encode()).decode()]


def _run(config: Any, leaks: list[str], caplog: Any, rotate: Path | None = None) -> str:
    """One cycle per provider leak (the token file rotated after the first); everything
    the sinks show. A provider quotes a token only after it was used (it cannot know it
    earlier: at start-up the daemon registers the token it reads then)."""
    provider = LeakyProvider("g")
    metrics, shared = Metrics(), SharedState(config.interval_seconds)
    c = Controller(config, {"g": provider}, metrics, shared)
    port = free_port()
    _, stop = serve(f"127.0.0.1:{port}", metrics, shared)
    caplog.handler.addFilter(logs.redactor)
    try:
        with caplog.at_level(logging.DEBUG):
            for i, leak in enumerate(leaks):
                provider.leak = leak
                c.cycle()
                if i == 0 and rotate is not None:
                    rotate.write_text(TOKEN_2 + "\n")
        base = f"http://127.0.0.1:{port}"
        status = requests.get(f"{base}/status", timeout=5).text
        text = requests.get(f"{base}/metrics", timeout=5).text
    finally:
        stop()
        c.close()
        caplog.handler.removeFilter(logs.redactor)
    logged = "\n".join(caplog.handler.format(r) for r in caplog.records)
    return f"{logged}\n{status}\n{text}"


def test_basic_auth_credentials_never_leak(echo_prometheus, caplog) -> None:
    config = _config(echo_prometheus, password=PASSWORD)
    pair = base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
    seen = _run(config, ["", f"password={PASSWORD} header 'Authorization': 'Basic {pair}'"], caplog)
    assert "denied" in seen, "the Prometheus error reached the sinks (it must, redacted)"
    assert "cloud says no" in seen
    for form in _forms("ops", PASSWORD):
        assert form not in seen, f"{form!r} leaked"
    assert "<redacted>" in seen


def test_rotated_bearer_token_never_leaks(echo_prometheus, caplog, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN_1 + "\n")
    base = _config(echo_prometheus)
    prom = PrometheusConfig(
        url=echo_prometheus, timeout_seconds=2, bearer_token_file=str(token_file)
    )
    config = dataclasses.replace(base, prometheus=prom)
    leaks = ["", f"token {TOKEN_1}", f"Authorization: Bearer {TOKEN_2} (token {TOKEN_2})"]
    seen = _run(config, leaks, caplog, rotate=token_file)
    assert "denied" in seen
    for token in (TOKEN_1, TOKEN_2):
        for form in _forms("", token):
            assert form not in seen, f"{form!r} leaked"


def test_registry_forms() -> None:
    r = SecretRegistry()
    r.add_basic("admin", "pa ss/word")
    pair = base64.b64encode(b"admin:pa ss/word").decode()
    text = f"raw pa ss/word, quoted pa%20ss%2Fword, basic {pair}"
    assert r.redact(text) == "raw <redacted>, quoted <redacted>, basic <redacted>"
    # An echoed header is redacted even when its value was never registered.
    assert "xyz-unknown" not in r.redact("{'Authorization': 'Bearer xyz-unknown'}")
    assert "abc" not in r.redact('"authorization": "abcdef"')
    r.add("abc")  # too short to redact without shredding every text
    assert r.redact("abc") == "abc"
