"""Validation of the configuration document: every error at once, each naming its key.

Each message starts with the key path (or the environment variable that set it), then
says what is allowed and what was found. Values of secret keys are never echoed.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from autoscaler.config.replica_api import REPLICA_API_KEYS, ReplicaApi
from autoscaler.config.schema import Config, HAConfig, PrometheusConfig
from autoscaler.config.secrets import REDACTED, is_secret_key, redact_url
from autoscaler.core.policies import REGISTRY
from autoscaler.core.spec import (
    HEADROOM_SCALE_IN,
    TOLERANCE_MODES,
    GroupConfig,
    HeadroomPolicyConfig,
    PolicyConfig,
    PredictivePolicyConfig,
    ProviderConfig,
    QuantilePolicyConfig,
    ScalingBehavior,
    TargetPolicyConfig,
)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")  # used in labels, replica names, paths
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# A PromQL series selector: a metric name, optionally with label matchers. Nothing else
# (no range, offset or operator): the reader appends the range `[window]` itself.
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_STRING = r'"(?:[^"\\\n]|\\.)*"' + r"|'(?:[^'\\\n]|\\.)*'|`[^`]*`"
_MATCHER = rf"\s*{_LABEL}\s*(?:=~|!~|!=|=)\s*(?:{_STRING})\s*"
_SELECTOR = re.compile(
    rf"[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{{\s*(?:{_MATCHER}(?:,{_MATCHER})*,?\s*)?\}})?"
)
_LABEL_NAME = re.compile(rf"(?!__){_LABEL}")  # __-prefixed labels are Prometheus's own
_HOST = re.compile(r"[A-Za-z0-9_.-]*")
LOG_LEVELS = ("debug", "info", "warning", "error")
SCALE_IN_ORDERS = ("oldest", "newest")


def parse_host_port(text: str, *, allow_any_host: bool = True) -> tuple[str, int]:
    """Split "host:port" or "[v6]:port". An empty host means every interface.

    Raises ValueError with what is wrong.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError("no port")
    if not 0 <= int(port_text) <= 65535:
        raise ValueError("port out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not host or not re.fullmatch(r"[0-9A-Fa-f:.]+", host):
            raise ValueError("invalid IPv6 address")
    elif ":" in host or not _HOST.fullmatch(host):
        raise ValueError("invalid host; write IPv6 addresses as [::1]:port")
    if not host and not allow_any_host:
        raise ValueError("no host")
    return host, int(port_text)


# --------------------------------------------------------------------------- value kinds


class _Bad(Exception):
    """A value was rejected; the message (if any) replaces the kind's description."""


class _Kind:
    def describe(self) -> str:
        raise NotImplementedError

    def convert(self, value: Any) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class _Number(_Kind):
    minimum: float | None = None
    above: bool = False  # minimum excluded
    maximum: float | None = None
    below: bool = False  # maximum excluded
    integer: bool = False

    def describe(self) -> str:
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.above else '>='} {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"{'<' if self.below else '<='} {self.maximum:g}")
        kind = "an integer" if self.integer else "a number"
        return " ".join([kind, " and ".join(bounds)]) if bounds else kind

    def convert(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad
        if self.integer and not isinstance(value, int):
            raise _Bad
        if not math.isfinite(value):
            raise _Bad
        if self.minimum is not None and (
            value < self.minimum or (self.above and value == self.minimum)
        ):
            raise _Bad
        if self.maximum is not None and (
            value > self.maximum or (self.below and value == self.maximum)
        ):
            raise _Bad
        return int(value) if self.integer else float(value)


@dataclass(frozen=True)
class _Bool(_Kind):
    def describe(self) -> str:
        return "true or false"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise _Bad
        return value


@dataclass(frozen=True)
class _Text(_Kind):
    pattern: re.Pattern[str] | None = None
    what: str = "a non-empty string"

    def describe(self) -> str:
        return self.what

    def convert(self, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise _Bad
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise _Bad
        return value


@dataclass(frozen=True)
class _Choice(_Kind):
    options: tuple[str, ...]
    fold_case: bool = False

    def describe(self) -> str:
        return f"one of: {', '.join(self.options)}"

    def convert(self, value: Any) -> Any:
        if isinstance(value, str):
            candidate = value.lower() if self.fold_case else value
            if candidate in self.options:
                return candidate
            hint = difflib.get_close_matches(candidate, self.options, n=1)
            if hint:
                raise _Bad(f"{self.describe()}; did you mean {hint[0]!r}?")
        raise _Bad


@dataclass(frozen=True)
class _Url(_Kind):
    def describe(self) -> str:
        return "an http:// or https:// URL with a host"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise _Bad
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise _Bad from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Bad
        if parts.username is not None or parts.password is not None:
            raise _Bad("a URL without credentials (use username and password_file)")
        return value


@dataclass(frozen=True)
class _Address(_Kind):
    listen: bool  # a local address to bind (port 0 and an empty host allowed)

    def describe(self) -> str:
        if self.listen:
            return "host:port to listen on, e.g. 127.0.0.1:9100 or [::1]:9100"
        return "host:port, e.g. 127.0.0.1:9101"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise _Bad
        try:
            _, port = parse_host_port(value, allow_any_host=self.listen)
        except ValueError as exc:
            raise _Bad(f"{self.describe()}: {exc}") from None
        if port == 0 and not self.listen:
            raise _Bad(f"{self.describe()}: port 0 cannot be reached")
        return value


@dataclass(frozen=True)
class _File(_Kind):
    def describe(self) -> str:
        return "the path of a readable file"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise _Bad
        if os.path.isdir(value):
            raise _Bad(f"{self.describe()} (it is a directory)")
        try:
            with open(value, "rb"):
                pass
        except OSError as exc:
            raise _Bad(f"{self.describe()} ({exc.strerror})") from None
        return value


_INVALID: Any = object()  # a value already reported as an error
_ABSENT: Any = object()  # a key not present in the file
_POSITIVE = _Number(minimum=0, above=True)
_NON_NEGATIVE = _Number(minimum=0)
_COUNT = _Number(minimum=0, integer=True)
_TOLERANCE = _Number(minimum=0, maximum=1, below=True)
_NAME_KIND = _Text(_NAME, "a name of letters, digits, '_' and '-' (at most 63, no leading '-')")


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _show(path: str, value: Any) -> str:
    """A bad value as it may appear in an error message."""
    if value is _ABSENT:
        return "nothing"
    if is_secret_key(path.rpartition(".")[2]):
        return REDACTED
    if isinstance(value, Mapping):
        return "a mapping"  # its contents could hold a misplaced secret
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and path.endswith("url"):
        value = redact_url(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _default(cls: type, name: str) -> Any:
    for f in fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
    raise KeyError(name)


def _keys(cls: type, *, without: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name not in without)


PROMETHEUS_KEYS = (*_keys(PrometheusConfig), "password_file")
TOP_LEVEL_KEYS = _keys(Config, without=("base_dir",))  # base_dir: where the file is
GROUP_KEYS = _keys(GroupConfig, without=("name",))
HA_KEYS = (*_keys(HAConfig), "password_file")
_KEY_PREFIX = re.compile(r"/[\x21-\x7e]*")
BEHAVIOR_KEYS = _keys(ScalingBehavior)
POLICY_KEYS = {
    "headroom": _keys(HeadroomPolicyConfig),
    "target": (*_keys(TargetPolicyConfig), "tolerance"),
    "predictive": _keys(PredictivePolicyConfig),
    "quantile": _keys(QuantilePolicyConfig),
}
POLICY_CLASSES: dict[str, type] = {name: entry.spec for name, entry in REGISTRY.items()}
POLICY_TYPES = tuple(POLICY_CLASSES)


# The provider type of a group read without a provider (`simulate`).
UNUSED_PROVIDER = "none"


class ProviderCatalog(Protocol):
    """The provider types a configuration may name, and their option checks.

    Injected (autoscaler.providers.registry implements it) so configuration depends on the
    core only: it never imports a provider.
    """

    def provider_types(self) -> list[str]: ...

    def check_provider_options(
        self, type_name: str, options: Mapping[str, Any], path: str
    ) -> list[str]: ...


class Checker:
    """Walks the document once, collecting every error."""

    def __init__(
        self,
        origins: Mapping[str, str],
        providers: ProviderCatalog,
        *,
        provider_required: bool = True,
    ) -> None:
        self.origins = origins
        self.providers = providers
        # False for `simulate`, which uses no provider: the block may be absent, and one
        # that is there is not checked (its SDK need not even be installed).
        self.provider_required = provider_required
        self.errors: list[str] = []

    # ---- reporting

    def error(self, path: str, message: str) -> None:
        var = self.origins.get(path)
        where = f"{var} (overrides {path})" if var else path
        self.errors.append(f"{where}: {message}")

    def bad(self, path: str, value: Any, allowed: str) -> None:
        self.error(path, f"must be {allowed} (got {_show(path, value)})")

    # ---- generic readers

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any] | None:
        """`value` if it is a mapping (unknown keys reported), else None (reported)."""
        if not isinstance(value, dict):
            self.bad(path, value, "a mapping")
            return None
        for key in value:
            if key in allowed:
                continue
            hint = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            if hint:
                self.error(_join(path, key), f"unknown key (did you mean {hint[0]!r}?)")
            else:
                self.error(_join(path, key), f"unknown key; allowed: {', '.join(sorted(allowed))}")
        return value

    def get(
        self,
        section: Mapping[str, Any],
        key: str,
        path: str,
        kind: _Kind,
        default: Any = _ABSENT,
        *,
        nullable: bool = False,
    ) -> Any:
        """The converted value of `key`, its default when absent, or _INVALID (reported)."""
        where = _join(path, key)
        allowed = kind.describe() + (" or null" if nullable else "")
        if key not in section:
            if default is _ABSENT:
                self.error(where, f"is required: {allowed}")
                return _INVALID
            return default
        value = section[key]
        if value is None and nullable:
            return None
        try:
            return kind.convert(value)
        except _Bad as exc:
            message = str(exc.args[0]) if exc.args else allowed
            self.bad(where, value, message)
            return _INVALID

    # ---- sections

    def config(self, doc: dict[str, Any]) -> Config | None:
        self.mapping(doc, "", TOP_LEVEL_KEYS)
        prometheus = self.prometheus(doc.get("prometheus", {}), "prometheus")
        values = {
            "interval_seconds": self.get(
                doc, "interval_seconds", "", _POSITIVE, _default(Config, "interval_seconds")
            ),
            "listen": self.get(doc, "listen", "", _Address(True), _default(Config, "listen")),
            "bridge_address": self.get(
                doc, "bridge_address", "", _Address(False), None, nullable=True
            ),
            "log_level": self.get(
                doc, "log_level", "", _Choice(LOG_LEVELS, True), _default(Config, "log_level")
            ),
            "state_dir": self.get(
                doc, "state_dir", "", _Text(what="a non-empty directory path"), None, nullable=True
            ),
        }
        for key in ("capacity_metric", "termination_metric"):
            kind = _Text(
                _SELECTOR,
                "a Prometheus series selector: a metric name, optionally with label "
                'matchers, e.g. replica_capacity{job="replicas"}',
            )
            values[key] = self.get(doc, key, "", kind, _default(Config, key))
        label = _Text(_LABEL_NAME, "a Prometheus label name (letters, digits, _; not __...)")
        for key in ("group_label", "replica_label"):
            values[key] = self.get(doc, key, "", label, _default(Config, key))
        if values["group_label"] == values["replica_label"] != _INVALID:
            self.error("replica_label", "must differ from group_label")
        values["target_labels"] = self.target_labels(
            doc.get("target_labels", {}), (values["group_label"], values["replica_label"])
        )
        values["ha"] = self.ha(doc.get("ha"), "ha")
        groups = self.groups(doc.get("groups", _ABSENT), values["bridge_address"])
        if self.errors or prometheus is None or groups is None:
            return None
        return Config(prometheus=prometheus, groups=groups, **values)

    def target_labels(self, raw: Any, reserved: tuple[str, ...]) -> Any:
        """Static /sd target labels: label name -> non-empty string."""
        path = "target_labels"
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.bad(path, raw, "a mapping of label name to value")
            return _INVALID
        out: dict[str, str] = {}
        for name, value in raw.items():
            where = _join(path, name)
            if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
                self.error(where, "must be a Prometheus label name (letters, digits, _; not __...)")
            elif name in reserved:
                self.error(where, "is set by the autoscaler itself (group_label, replica_label)")
            elif not isinstance(value, str) or not value:
                self.bad(where, value, "a non-empty string (quote numbers)")
            else:
                out[name] = value
        return out if len(out) == len(raw) else _INVALID

    def prometheus(self, raw: Any, path: str) -> PrometheusConfig | None:
        section = self.mapping(raw, path, PROMETHEUS_KEYS)
        if section is None:
            return None
        text = _Text()
        values = {
            "url": self.get(section, "url", path, _Url(), _default(PrometheusConfig, "url")),
            "timeout_seconds": self.get(
                section,
                "timeout_seconds",
                path,
                _POSITIVE,
                _default(PrometheusConfig, "timeout_seconds"),
            ),
            "username": self.get(section, "username", path, text, None, nullable=True),
            "password": self.get(section, "password", path, text, None, nullable=True),
            "bearer_token_file": self.get(
                section, "bearer_token_file", path, _File(), None, nullable=True
            ),
            "ca_file": self.get(section, "ca_file", path, _File(), None, nullable=True),
            "insecure_skip_verify": self.get(section, "insecure_skip_verify", path, _Bool(), False),
        }
        values["password"] = self.password_or_file(section, path, values["password"])
        if values["password"] not in (None, _INVALID) and section.get("username") is None:
            self.error(_join(path, "username"), "is required when a password is set (basic auth)")
        if section.get("bearer_token_file") is not None and section.get("username") is not None:
            self.error(
                _join(path, "bearer_token_file"),
                "cannot be combined with basic auth (username/password): choose one",
            )
        if _INVALID in values.values():
            return None
        return PrometheusConfig(**values)

    def ha(self, raw: Any, path: str) -> Any:
        """Leader election on etcd (docs/ha.md); None (absent or null): off."""
        if raw is None:
            return None
        section = self.mapping(raw, path, HA_KEYS)
        if section is None:
            return _INVALID
        endpoints: Any = _INVALID
        raw_endpoints = section.get("endpoints", _ABSENT)
        where = _join(path, "endpoints")
        if raw_endpoints is _ABSENT:
            self.error(
                where, "is required: a non-empty list of etcd URLs, e.g. [http://127.0.0.1:2379]"
            )
        elif not isinstance(raw_endpoints, list) or not raw_endpoints:
            self.bad(where, raw_endpoints, "a non-empty list of etcd URLs")
        else:
            urls = [
                self.get({f"{where}[{i}]": u}, f"{where}[{i}]", "", _Url())
                for i, u in enumerate(raw_endpoints)
            ]
            if _INVALID not in urls:
                endpoints = tuple(u.rstrip("/") for u in urls)
        d = {k: _default(HAConfig, k) for k in _keys(HAConfig) if k != "endpoints"}
        prefix = _Text(_KEY_PREFIX, "an etcd key prefix starting with '/', no spaces")
        values = {
            "endpoints": endpoints,
            "key_prefix": self.get(section, "key_prefix", path, prefix, d["key_prefix"]),
            "lease_ttl_seconds": self.get(
                section,
                "lease_ttl_seconds",
                path,
                _Number(minimum=2, integer=True),
                d["lease_ttl_seconds"],
            ),
            "identity": self.get(section, "identity", path, _Text(), None, nullable=True),
        }
        for key in ("renew_seconds", "poll_seconds", "timeout_seconds"):
            values[key] = self.get(
                section, key, path, _POSITIVE, d[key], nullable=key == "renew_seconds"
            )
        values["safety_margin_seconds"] = self.get(
            section, "safety_margin_seconds", path, _NON_NEGATIVE, d["safety_margin_seconds"]
        )
        self.etcd_tls_and_auth(section, path, values)
        if _INVALID in values.values():
            return _INVALID
        values["key_prefix"] = values["key_prefix"].rstrip("/") or "/"
        ha = HAConfig(**values)
        budget = ha.renew + ha.timeout_seconds + ha.safety_margin_seconds
        if budget >= ha.lease_ttl_seconds:
            self.error(
                _join(path, "lease_ttl_seconds"),
                f"must be more than renew_seconds + timeout_seconds + safety_margin_seconds "
                f"({ha.renew:g} + {ha.timeout_seconds:g} + {ha.safety_margin_seconds:g} = "
                f"{budget:g}), so the lease is renewed before it can no longer be guaranteed "
                f"(got {ha.lease_ttl_seconds})",
            )
            return _INVALID
        return ha

    def etcd_tls_and_auth(self, section: dict[str, Any], path: str, values: dict[str, Any]) -> None:
        """`ha`'s TLS files and etcd user, into `values`; each mistake named."""
        for key in ("ca_file", "cert_file", "key_file"):
            values[key] = self.get(section, key, path, _File(), None, nullable=True)
        values["username"] = self.get(section, "username", path, _Text(), None, nullable=True)
        password = self.get(section, "password", path, _Text(), None, nullable=True)
        values["password"] = self.password_or_file(section, path, password)
        has_password = any(section.get(k) is not None for k in ("password", "password_file"))
        if has_password and section.get("username") is None:
            self.error(_join(path, "username"), "is required when a password is set (etcd auth)")
        if section.get("username") is not None and not has_password:
            self.error(
                _join(path, "password"),
                "is required with username (or password_file) for etcd auth",
            )
        if (section.get("cert_file") is None) != (section.get("key_file") is None):
            missing = "key_file" if section.get("key_file") is None else "cert_file"
            self.error(
                _join(path, missing),
                "is required too: a client certificate is cert_file + key_file",
            )
        endpoints = values.get("endpoints")
        tls = [k for k in ("ca_file", "cert_file", "key_file") if section.get(k) is not None]
        if (
            tls
            and isinstance(endpoints, tuple)
            and not any(u.startswith("https://") for u in endpoints)
        ):
            self.error(
                _join(path, tls[0]),
                f"is for TLS, but no endpoint is https:// (got {list(endpoints)})",
            )

    def password_or_file(self, section: dict[str, Any], path: str, password: Any) -> Any:
        """`password` (already read), or the secret in `password_file`: one, not both."""
        password_file = self.get(section, "password_file", path, _File(), None, nullable=True)
        if password_file in (None, _INVALID):
            return password
        if section.get("password") is not None:
            self.error(
                _join(path, "password_file"), "set either password or password_file, not both"
            )
            return password
        return self.read_secret(password_file, _join(path, "password_file"))

    def read_secret(self, file_name: str, path: str) -> Any:
        try:
            secret = Path(file_name).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError):
            self.error(path, "must be a readable UTF-8 text file")
            return _INVALID
        if not secret:
            self.error(path, f"the file {file_name!r} is empty")
            return _INVALID
        return secret

    def groups(self, raw: Any, bridge_address: Any) -> tuple[GroupConfig, ...] | None:
        if raw is _ABSENT:
            self.error("groups", "is required: a mapping of group name to group settings")
            return None
        if not isinstance(raw, dict) or not raw:
            self.bad("groups", raw, "a non-empty mapping of group name to group settings")
            return None
        out: list[GroupConfig | None] = []
        for name, body in raw.items():
            path = _join("groups", name)
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                self.error(path, f"the group name must be {_NAME_KIND.describe()}")
                out.append(None)
                continue
            out.append(self.group(name, body, path, bridge_address))
        if any(group is None for group in out):
            return None
        return tuple(g for g in out if g is not None)

    def group(self, name: str, raw: Any, path: str, bridge_address: Any) -> GroupConfig | None:
        section = self.mapping(raw, path, GROUP_KEYS)
        if section is None:
            return None
        provider = self.provider(section.get("provider", _ABSENT), _join(path, "provider"))
        low = self.get(section, "min", path, _COUNT)
        high = self.get(section, "max", path, _COUNT)
        values: dict[str, Any] = {
            "replica_capacity": self.get(section, "replica_capacity", path, _POSITIVE),
            "policies": self.policies(section.get("policies", _ABSENT), _join(path, "policies")),
            "warmup_seconds": self.get(
                section,
                "warmup_seconds",
                path,
                _NON_NEGATIVE,
                _default(GroupConfig, "warmup_seconds"),
            ),
            "dry_run": self.get(section, "dry_run", path, _Bool(), False),
            "stale_after_seconds": self.get(
                section,
                "stale_after_seconds",
                path,
                _POSITIVE,
                _default(GroupConfig, "stale_after_seconds"),
            ),
            "fallback_replicas": self.get(
                section, "fallback_replicas", path, _COUNT, None, nullable=True
            ),
            "scale_in_order": self.get(
                section,
                "scale_in_order",
                path,
                _Choice(SCALE_IN_ORDERS),
                _default(GroupConfig, "scale_in_order"),
            ),
            "max_replacements_per_cycle": self.get(
                section,
                "max_replacements_per_cycle",
                path,
                _COUNT,
                _default(GroupConfig, "max_replacements_per_cycle"),
            ),
            "max_terminations_per_cycle": self.get(
                section,
                "max_terminations_per_cycle",
                path,
                _COUNT,
                _default(GroupConfig, "max_terminations_per_cycle"),
            ),
            "termination_below_min": self.get(
                section, "termination_below_min", path, _Bool(), False
            ),
            "via_bridge": self.get(section, "via_bridge", path, _Bool(), False),
            "replica_api": self.replica_api(section.get("replica_api", _ABSENT), path),
            "expect_capacity": self.get(section, "expect_capacity", path, _Bool(), True),
        }
        for direction in ("scale_up", "scale_down"):
            values[direction] = self.behavior(
                section.get(direction, _ABSENT),
                _join(path, direction),
                _default(GroupConfig, direction),
            )
        if _INVALID not in (low, high) and low > high:
            self.error(_join(path, "min"), f"must be <= max ({high}) (got {low})")
        fallback = values["fallback_replicas"]
        if fallback not in (None, _INVALID) and _INVALID not in (low, high):
            if not low <= fallback <= high:
                self.error(
                    _join(path, "fallback_replicas"),
                    f"must be between min and max ({low}..{high}) (got {fallback})",
                )
        policies = values["policies"]
        if values["expect_capacity"] is False and isinstance(policies, tuple):
            readers = [p.type for p in policies if p.reads_capacity]
            if readers:
                self.error(
                    _join(path, "expect_capacity"),
                    f"cannot be false with a {readers[0]} policy, which reads replica_capacity",
                )
        if values["via_bridge"] is True and bridge_address is None:
            self.error(
                _join(path, "via_bridge"),
                "needs the top-level bridge_address (host:port of `autoscaler bridge`)",
            )
        if provider is None or _INVALID in (low, high, *values.values()):
            return None
        return GroupConfig(name=name, provider=provider, min=low, max=high, **values)

    def provider(self, raw: Any, path: str) -> ProviderConfig | None:
        if not self.provider_required:
            kind = raw.get("type") if isinstance(raw, dict) else None
            return ProviderConfig(type=kind if isinstance(kind, str) else UNUSED_PROVIDER)
        types = self.providers.provider_types()
        example = f"a mapping with a type ({', '.join(types)}) and its options"
        if raw is _ABSENT:
            self.error(path, f"is required: {example}")
            return None
        if not isinstance(raw, dict):
            self.bad(path, raw, example)
            return None
        kind = self.get(raw, "type", path, _Choice(tuple(types)))
        if kind is _INVALID:
            return None
        options = {k: v for k, v in raw.items() if k != "type"}
        problems = self.providers.check_provider_options(kind, options, path)
        self.errors.extend(problems)
        return None if problems else ProviderConfig(type=kind, options=options)

    def replica_api(self, raw: Any, group_path: str) -> Any:
        """The bridge's settings for a group's JSON API, checked by the bridge's own parser."""
        path = _join(group_path, "replica_api")
        if raw is _ABSENT or raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.error(path, f"must be a mapping of {', '.join(REPLICA_API_KEYS)} (got {raw!r})")
            return _INVALID
        try:
            ReplicaApi.from_mapping(raw, {})  # no environment: the file alone must be valid
        except ValueError as e:
            self.error(path, f"{e}; allowed keys: {', '.join(REPLICA_API_KEYS)}")
            return _INVALID
        return dict(raw)

    def behavior(self, raw: Any, path: str, defaults: ScalingBehavior) -> Any:
        """A scale_up/scale_down block; keys left out keep the group's default for it."""
        if raw is _ABSENT:
            return defaults
        section = self.mapping(raw, path, BEHAVIOR_KEYS)
        if section is None:
            return _INVALID
        values = {
            "cooldown_seconds": self.get(
                section, "cooldown_seconds", path, _NON_NEGATIVE, defaults.cooldown_seconds
            ),
            "stabilization_seconds": self.get(
                section,
                "stabilization_seconds",
                path,
                _NON_NEGATIVE,
                defaults.stabilization_seconds,
            ),
            "max_step_replicas": self.get(
                section,
                "max_step_replicas",
                path,
                _Number(minimum=1, integer=True),
                defaults.max_step_replicas,
                nullable=True,
            ),
            "max_step_percent": self.get(
                section,
                "max_step_percent",
                path,
                _POSITIVE,
                defaults.max_step_percent,
                nullable=True,
            ),
            "enabled": self.get(section, "enabled", path, _Bool(), defaults.enabled),
        }
        if _INVALID in values.values():
            return _INVALID
        return ScalingBehavior(**values)

    def policies(self, raw: Any, path: str) -> Any:
        allowed = "a non-empty list of policies ({type: headroom | target | predictive, ...})"
        if raw is _ABSENT:
            self.error(path, f"is required: {allowed}")
            return _INVALID
        if not isinstance(raw, list) or not raw:
            self.bad(path, raw, allowed)
            return _INVALID
        parsed = [self.policy(item, f"{path}[{index}]") for index, item in enumerate(raw)]
        # Default name: the type, or type-N (1-based among that type) when repeated.
        per_type: dict[str, int] = {}
        for entry in parsed:
            if entry is not None:
                per_type[entry[0]] = per_type.get(entry[0], 0) + 1
        ordinal: dict[str, int] = {}
        first_index: dict[str, int] = {}
        policies: list[PolicyConfig] = []
        valid = True
        for index, entry in enumerate(parsed):
            if entry is None:
                valid = False
                continue
            kind, name, values = entry
            ordinal[kind] = ordinal.get(kind, 0) + 1
            if name is None:
                name = kind if per_type[kind] == 1 else f"{kind}-{ordinal[kind]}"
            if name is _INVALID:
                valid = False
                continue
            if name in first_index:
                self.error(
                    f"{path}[{index}].name",
                    f"policy name {name!r} is already used by {path}[{first_index[name]}]; "
                    "names must be unique within a group (set a distinct `name`)",
                )
                valid = False
                continue
            first_index[name] = index
            if _INVALID in values.values():
                valid = False
                continue
            policies.append(POLICY_CLASSES[kind](name=name, **values))
        return tuple(policies) if valid else _INVALID

    def policy(self, raw: Any, path: str) -> tuple[str, Any, dict[str, Any]] | None:
        """(type, explicit name or None, values) with bad values as _INVALID (reported),
        or None when the entry has no usable type."""
        if not isinstance(raw, dict):
            self.bad(path, raw, f"a mapping with a type ({', '.join(POLICY_TYPES)})")
            return None
        kind = self.get(raw, "type", path, _Choice(POLICY_TYPES))
        if kind is _INVALID:
            return None
        self.mapping(raw, path, POLICY_KEYS[kind])
        name = self.get(raw, "name", path, _NAME_KIND, None, nullable=True)
        values: dict[str, Any]
        if kind == "headroom":
            values = {
                "min_available": self.get(raw, "min_available", path, _NON_NEGATIVE),
                "scale_in": self.get(raw, "scale_in", path, _Choice(HEADROOM_SCALE_IN), "idle"),
            }
        elif kind == "predictive":
            values = self.predictive(raw, path)
        elif kind == "quantile":
            values = self.quantile(raw, path)
        else:
            mode = self.get(raw, "tolerance_mode", path, _Choice(TOLERANCE_MODES), "relative")
            # relative: a share of the target, below 1; absolute: the signal's own units.
            kind_ = _NON_NEGATIVE if mode == "absolute" else _TOLERANCE
            tolerance = self.get(
                raw, "tolerance", path, kind_, _default(TargetPolicyConfig, "tolerance_up")
            )
            values = {
                "query": self.get(raw, "query", path, _Text(what="a non-empty PromQL query")),
                "target": self.get(raw, "target", path, _POSITIVE),
                "tolerance_up": self.get(raw, "tolerance_up", path, kind_, tolerance),
                "tolerance_down": self.get(raw, "tolerance_down", path, kind_, tolerance),
                "tolerance_mode": mode,
            }
        return kind, name, values

    def quantile(self, raw: dict[str, Any], path: str) -> dict[str, Any]:
        def number(key: str, kind: _Kind) -> Any:
            return self.get(raw, key, path, kind, _default(QuantilePolicyConfig, key))

        share = _Number(minimum=0, maximum=1, above=True)
        return {
            "query": self.get(raw, "query", path, _Text(what="a non-empty PromQL query")),
            "demand_per_replica": self.get(raw, "demand_per_replica", path, _POSITIVE),
            "quantile": number("quantile", share),
            "target": number("target", _POSITIVE),
            "horizon_seconds": number("horizon_seconds", _POSITIVE),
            "level_seconds": number("level_seconds", _POSITIVE),
            "window_seconds": number("window_seconds", _POSITIVE),
            "half_life_seconds": number("half_life_seconds", _POSITIVE),
            "min_errors": number("min_errors", _Number(minimum=1, integer=True)),
            "initial_target": number("initial_target", _POSITIVE),
            "max_utilization": number("max_utilization", share),
            "tail_factor": number("tail_factor", _NON_NEGATIVE),
            "tail_headroom": number("tail_headroom", _NON_NEGATIVE),
            "follow_jumps": number("follow_jumps", _Bool()),
        }

    def predictive(self, raw: dict[str, Any], path: str) -> dict[str, Any]:
        def number(key: str, kind: _Kind) -> Any:
            return self.get(raw, key, path, kind, _default(PredictivePolicyConfig, key))

        values = {
            "query": self.get(raw, "query", path, _Text(what="a non-empty PromQL query")),
            "demand_per_replica": self.get(raw, "demand_per_replica", path, _POSITIVE),
            "target": number("target", _POSITIVE),
            "horizon_seconds": number("horizon_seconds", _NON_NEGATIVE),
            "season_seconds": number("season_seconds", _POSITIVE),
            "seasons": number("seasons", _COUNT),
            "level_seconds": number("level_seconds", _POSITIVE),
            "trend_seconds": number("trend_seconds", _NON_NEGATIVE),
            "max_growth": number("max_growth", _Number(minimum=1)),
        }
        # The forecast compares the horizon after "now" in past seasons: a horizon of a
        # whole season or more would compare a season with itself.
        horizon, season = values["horizon_seconds"], values["season_seconds"]
        if _INVALID not in (horizon, season) and values["seasons"] != 0 and horizon >= season:
            self.error(
                _join(path, "horizon_seconds"),
                f"must be < season_seconds ({season:g}) (got {horizon:g})",
            )
            values["horizon_seconds"] = _INVALID
        return values
