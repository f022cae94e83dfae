"""Which keys hold secrets, and how a configuration is shown without them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any
from urllib.parse import urlsplit

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
