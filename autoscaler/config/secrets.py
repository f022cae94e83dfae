"""Which keys hold secrets, and how a configuration is shown without them."""

from __future__ import annotations

import base64
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from autoscaler.config.schema import Config

REDACTED = "<redacted>"

_SECRET_KEY = re.compile(
    r"password|passwd|passcode|secret|token|credential|api_?key|private_?key", re.I
)


def is_secret_key(key: str) -> bool:
    """A key whose value is a secret (a `*_file` or `*_path` key names a file: not secret)."""
    return bool(_SECRET_KEY.search(key)) and not key.endswith(("_file", "_path", "_dir"))


def redact_url(url: str) -> str:
    """`url` with any user:password@ part replaced."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{REDACTED}@{host}").geturl()


def redacted(config: Config) -> dict[str, Any]:
    """The configuration as JSON-able data, secrets replaced by "<redacted>"."""
    return _jsonable(config, "")


def _jsonable(value: Any, key: str) -> Any:
    if key and value is not None and is_secret_key(key):
        return REDACTED
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name), f.name) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, key) for v in value]
    if isinstance(value, str):
        return redact_url(value) if key.endswith("url") else value
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


# An echoed `Authorization` header (JSON, header dump, Python repr): its value goes
# whatever it is, registered or not.
_AUTH_HEADER = re.compile(
    r"""(?i)(authorization["']?\s*[:=]\s*["']?)(?:(?:basic|bearer|token)\s+)?[^\s"',;}\]]+"""
)


class SecretRegistry:
    """Every value a secret takes on the wire, redacted from any text.

    A secret leaks in more forms than the one configured: base64 of `user:password` in a
    Basic header, a bearer token read again after the file was rotated, percent-encoded
    in a URL. Callers register each value at the moment they read it; every sink (logs,
    /status, /metrics, stored failure messages) passes its text through `redact`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()

    @property
    def values(self) -> frozenset[str]:
        return self._values

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < 4:  # a 1-3 character "secret" would shred the text
            return
        forms = {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}
        with self._lock:
            self._values = self._values | {f for f in forms if len(f) >= 4}

    def add_basic(self, username: str | None, password: str | None) -> None:
        """The password, and the base64 `user:password` a Basic header carries."""
        self.add(password)
        if username is not None and password:
            pair = f"{username}:{password}".encode()
            self.add(base64.b64encode(pair).decode())
            self.add(base64.urlsafe_b64encode(pair).decode())

    def redact(self, text: str) -> str:
        text = _AUTH_HEADER.sub(lambda m: m.group(1) + REDACTED, text)
        # Longest first: a secret containing another is replaced whole.
        for s in sorted(self._values, key=len, reverse=True):
            if s in text:
                text = text.replace(s, REDACTED)
        return text


registry = SecretRegistry()
