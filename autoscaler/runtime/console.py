"""The operator console: one static HTML page (console.html, package data) whose script
polls `/status` and `/api/history` and draws them, so no build step and no CDN.

The page itself holds no data: everything it shows comes from the two JSON documents,
which pass through the secret registry like every other sink.
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from urllib.parse import parse_qs

from autoscaler.config.secrets import registry as secret_registry
from autoscaler.runtime.history import History

CONTENT_TYPE = "text/html; charset=utf-8"
HISTORY_PATH = "/api/history"
# Nothing from elsewhere may load (the page is self-contained: this enforces it), the
# script may only talk to this daemon, and no other site may frame the page.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def page() -> bytes:
    return resources.files("autoscaler.runtime").joinpath("console.html").read_bytes()


def history_json(history: History, query: str) -> bytes:
    """`/api/history[?since=T]`: points after wall time T (the page asks for what is new)."""
    since: float | None = None
    values = parse_qs(query).get("since")
    if values:
        try:
            since = float(values[0])
        except ValueError:
            since = None
        if since is not None and not math.isfinite(since):
            since = None
    text = json.dumps(history.snapshot(since), default=str)
    return secret_registry.redact(text).encode()  # reasons may quote a provider's answer
