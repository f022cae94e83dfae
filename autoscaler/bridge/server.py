"""`autoscaler bridge`: JSON replica APIs -> Prometheus metrics, like blackbox_exporter.

Prometheus calls `/probe?target=<replica URL>`; the bridge GETs that URL, reads the
replica's JSON answer and returns `replica_capacity`, `replica_termination`,
`replica_probe_success` and `replica_probe_duration_seconds` (plus any gauges configured
with `--metric NAME=PATH`). Prometheus adds the `group` and `replica` labels from the
autoscaler's `/sd`, so the bridge itself needs no knowledge of groups.

SimpleScaleVM replicas work unchanged: `REPLICA_API_PROTOCOL`, `REPLICA_API_PORT`,
`REPLICA_API_PATH`, `REPLICA_API_CAPACITY_KEY` and `REPLICA_API_TERMINATION_KEY` keep
SimpleScaleVM's meaning and defaults (http, 8080, "/", "capacity", "termination").

A bad answer (timeout, refused, non-JSON, missing key, wrong type, too big) gives
`replica_probe_success 0`, no value at all, and +1 on `bridge_probe_failures_total{reason}`:
a made-up capacity would make the autoscaler remove replicas that are busy.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from urllib3.exceptions import ReadTimeoutError

from autoscaler.config import ConfigError, jsonpath
from autoscaler.config.replica_api import ReplicaApi, replica_url
from autoscaler.runtime import logs, web_config
from autoscaler.runtime.bounded_server import BoundedHTTPServer

log = logging.getLogger("autoscaler.bridge.server")

# Bounded label values of bridge_probe_failures_total.
REASONS = (
    "invalid_target",
    "timeout",
    "connection",
    "http_status",
    "too_large",
    "invalid_json",
    "missing_key",
    "wrong_type",
)

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_RESERVED = {
    "replica_capacity",
    "replica_termination",
    "replica_probe_success",
    "replica_probe_duration_seconds",
}
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def parse_bool(value: Any) -> bool:
    """Strict boolean: JSON true/false, 0/1, or "true/false/1/0/yes/no" (any case).

    Anything else is an error. (SimpleScaleVM takes any value other than "false" as true;
    here a typo must not silently delete a replica.)
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    raise ValueError(f"not a boolean: {value!r} (expected true/false/1/0/yes/no)")


@dataclass(frozen=True)
class Extraction:
    """What to read from a replica's JSON. A path of None is not read."""

    capacity: tuple[jsonpath.Step, ...] | None = ("capacity",)
    termination: tuple[jsonpath.Step, ...] | None = ("termination",)
    gauges: tuple[tuple[str, tuple[jsonpath.Step, ...]], ...] = ()  # (metric name, path)

    def with_keys(self, capacity_key: str | None, termination_key: str | None) -> Extraction:
        """Override capacity/termination with literal top-level keys ("" = do not read)."""
        cap, term = self.capacity, self.termination
        if capacity_key is not None:
            cap = (capacity_key,) if capacity_key else None
        if termination_key is not None:
            term = (termination_key,) if termination_key else None
        return Extraction(capacity=cap, termination=term, gauges=self.gauges)


def parse_gauge(spec: str) -> tuple[str, tuple[jsonpath.Step, ...]]:
    """`NAME=PATH`, e.g. `app_cpu_high_priority=cpu.highPriority`."""
    name, sep, path = spec.partition("=")
    name = name.strip()
    if not sep or not _METRIC_NAME.fullmatch(name):
        raise ValueError(f"--metric wants NAME=PATH with a Prometheus metric name, got {spec!r}")
    if name in _RESERVED or name.startswith("bridge_"):
        raise ValueError(f"--metric name {name!r} is reserved")
    return name, jsonpath.parse(path)


@dataclass(frozen=True)
class BridgeSettings:
    api: ReplicaApi = field(default_factory=ReplicaApi)  # completes targets given as host[:port]
    extraction: Extraction = field(default_factory=Extraction)
    timeout_seconds: float = 5.0  # whole request: connect, headers and body
    max_body_bytes: int = 1 << 20


@dataclass(frozen=True)
class ProbeResult:
    success: bool
    duration_seconds: float
    values: Mapping[str, float]  # metric name -> value; empty unless success
    reason: str | None = None  # one of REASONS on failure
    detail: str = ""


class ProbeFailure(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _safe_url(url: str) -> str:
    """The URL without user info or query: safe for logs and error messages."""
    p = urlsplit(url)
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{p.port}" if p.port else ""
    except ValueError:
        port = ""
    return f"{p.scheme}://{host}{port}{p.path}"


def normalize_target(target: str, api: ReplicaApi) -> str:
    """A full http(s) URL; `host[:port]` (Prometheus's __address__) is completed from `api`."""
    target = target.strip()
    try:
        if "://" not in target:
            target = replica_url(target, api)
        p = urlsplit(target)
    except ValueError:  # "host:[" and friends: urlsplit refuses a broken IPv6 bracket
        raise ProbeFailure("invalid_target", "target is not a valid URL") from None
    if p.scheme not in ("http", "https") or not p.hostname:
        raise ProbeFailure("invalid_target", f"target must be an http(s) URL: {_safe_url(target)}")
    try:
        p.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise ProbeFailure("invalid_target", f"bad port in {_safe_url(target)}") from None
    return target


def _fetch(url: str, settings: BridgeSettings) -> bytes:
    """GET `url`, at most `max_body_bytes`, within `timeout_seconds` overall."""
    deadline = time.monotonic() + settings.timeout_seconds
    limit = settings.max_body_bytes
    with requests.Session() as s:
        s.trust_env = False  # replicas are reached directly, never through a proxy from env
        s.max_redirects = 3
        try:
            with s.get(
                url,
                stream=True,
                timeout=settings.timeout_seconds,
                headers={"Accept": "application/json", "Accept-Encoding": "identity"},
            ) as r:
                if not 200 <= r.status_code < 300:
                    raise ProbeFailure("http_status", f"HTTP {r.status_code}")
                length = r.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > limit:
                    raise ProbeFailure("too_large", f"body of {length} bytes > {limit}")
                if r.headers.get("Content-Encoding", "identity").lower() != "identity":
                    # a compressed body could expand far beyond the limit once decoded
                    raise ProbeFailure("invalid_json", "compressed answers are not accepted")
                body = bytearray()
                # read1 returns what has arrived, so a slow drip cannot hold a read for
                # long; each read waits at most timeout_seconds, and the deadline is
                # checked between reads.
                while chunk := r.raw.read1(65536, decode_content=False):
                    body += chunk
                    if len(body) > limit:
                        raise ProbeFailure("too_large", f"body larger than {limit} bytes")
                    if time.monotonic() > deadline:
                        raise ProbeFailure(
                            "timeout", f"body not read within {settings.timeout_seconds}s"
                        )
                return bytes(body)
        except requests.Timeout:
            raise ProbeFailure("timeout", f"no answer within {settings.timeout_seconds}s") from None
        except requests.ConnectionError as e:
            # requests reports a read timeout while streaming the body as a ConnectionError
            if e.args and isinstance(e.args[0], ReadTimeoutError):
                raise ProbeFailure(
                    "timeout", f"no answer within {settings.timeout_seconds}s"
                ) from None
            raise ProbeFailure("connection", f"cannot connect: {type(e).__name__}") from None
        except requests.RequestException as e:
            raise ProbeFailure("connection", f"request failed: {type(e).__name__}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def decode(body: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no duplicate keys, bounded nesting."""
    try:
        return json.loads(body, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError too
        raise ProbeFailure("invalid_json", f"not JSON: {str(e)[:200]}") from None


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProbeFailure("wrong_type", f"{what} is {type(value).__name__}, not a number")
    f = float(value)
    if not math.isfinite(f):  # a huge integer overflows to inf
        raise ProbeFailure("wrong_type", f"{what} is not a finite number")
    return f


def _get(doc: Any, path: tuple[jsonpath.Step, ...]) -> Any:
    try:
        return jsonpath.extract(doc, path)
    except jsonpath.MissingError as e:
        raise ProbeFailure("missing_key", str(e)) from None


def extract(doc: Any, ex: Extraction) -> dict[str, float]:
    """Every configured value, or ProbeFailure: all or nothing, never a partial answer."""
    values: dict[str, float] = {}
    if ex.capacity is not None:
        where = jsonpath.format_path(ex.capacity)
        values["replica_capacity"] = _number(_get(doc, ex.capacity), where)
    if ex.termination is not None:
        raw = _get(doc, ex.termination)
        try:
            values["replica_termination"] = 1.0 if parse_bool(raw) else 0.0
        except ValueError as e:
            raise ProbeFailure(
                "wrong_type", f"{jsonpath.format_path(ex.termination)}: {e}"
            ) from None
    for name, path in ex.gauges:
        raw = _get(doc, path)
        values[name] = (
            float(raw) if isinstance(raw, bool) else _number(raw, jsonpath.format_path(path))
        )
    return values


def probe(
    target: str, settings: BridgeSettings, extraction: Extraction | None = None
) -> ProbeResult:
    """Read one replica. Never raises for anything the replica does."""
    start = time.monotonic()
    try:
        url = normalize_target(target, settings.api)
        doc = decode(_fetch(url, settings))
        values = extract(doc, extraction or settings.extraction)
    except ProbeFailure as f:
        return ProbeResult(False, time.monotonic() - start, {}, f.reason, f.detail)
    return ProbeResult(True, time.monotonic() - start, values)


def render(result: ProbeResult) -> bytes:
    """The /probe answer in Prometheus text format."""
    reg = CollectorRegistry()
    Gauge("replica_probe_success", "1 if the replica's JSON was read and valid.", registry=reg).set(
        1 if result.success else 0
    )
    Gauge("replica_probe_duration_seconds", "Time taken by the probe.", registry=reg).set(
        result.duration_seconds
    )
    helps = {
        "replica_capacity": "Free resource slots the replica reports.",
        "replica_termination": "1 when the replica asks to be removed, else 0.",
    }
    for name, value in result.values.items():
        Gauge(name, helps.get(name, "Value read from the replica's JSON."), registry=reg).set(value)
    return generate_latest(reg)


class Bridge:
    """The bridge's HTTP server and its own metrics."""

    def __init__(
        self,
        settings: BridgeSettings,
        listen: str = "127.0.0.1:9101",
        web: web_config.WebConfig | None = None,
    ) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.probes = Counter("bridge_probes", "Probes run.", registry=self.registry)
        self.failures = Counter(
            "bridge_probe_failures",
            "Failed probes by reason.",
            ["reason"],
            registry=self.registry,
        )
        for reason in REASONS:
            self.failures.labels(reason)
        host, _, port = listen.rpartition(":")
        # Bounded: socket timeout, backlog and handler threads (see bounded_server).
        self.server = BoundedHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), _Handler)
        self.server.bridge = self  # type: ignore[attr-defined]
        self.server.web = web  # --web.config.file: TLS and basic auth
        if web is not None:
            web.export(self.registry, "bridge")
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def handle_probe(self, query: Mapping[str, list[str]]) -> tuple[int, bytes, str]:
        targets = query.get("target", [])
        if len(targets) != 1 or not targets[0]:
            return 400, b"exactly one 'target' parameter is required\n", "text/plain"
        # `skip=capacity,termination`: do not read those (a key "" cannot travel through
        # Prometheus, which drops empty labels, so `__param_capacity_key=""` is no option).
        skip = {v.strip() for s in query.get("skip", []) for v in s.split(",") if v.strip()}
        unknown = skip - {"capacity", "termination"}
        if unknown:
            return 400, f"skip: unknown {', '.join(sorted(unknown))}\n".encode(), "text/plain"
        cap = "" if "capacity" in skip else query.get("capacity_key", [None])[0]
        term = "" if "termination" in skip else query.get("termination_key", [None])[0]
        ex = self.settings.extraction.with_keys(cap, term)
        result = probe(targets[0], self.settings, ex)
        self.probes.inc()
        if not result.success:
            assert result.reason is not None
            self.failures.labels(result.reason).inc()
            try:
                shown = _safe_url(normalize_target(targets[0], self.settings.api))
            except (ProbeFailure, ValueError):
                shown = "(invalid target)"
            log.info("probe of %s failed: %s: %s", shown, result.reason, result.detail)
        return 200, render(result), CONTENT_TYPE_LATEST

    def start(self) -> Bridge:
        """Serve in a background thread (tests, embedding)."""
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread:
            self._thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    server_version = "autoscaler-bridge"

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        bridge: Bridge = self.server.bridge  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        try:
            if url.path == "/probe":
                status, body, ctype = bridge.handle_probe(
                    parse_qs(url.query, keep_blank_values=True)
                )
            elif url.path == "/metrics":
                status, body, ctype = 200, generate_latest(bridge.registry), CONTENT_TYPE_LATEST
            elif url.path == "/healthz":
                status, body, ctype = 200, b"ok\n", "text/plain"
            elif url.path == "/":
                status, ctype = 200, "text/plain"
                body = b"autoscaler bridge: /probe?target=URL, /metrics, /healthz\n"
            else:
                status, body, ctype = 404, b"not found\n", "text/plain"
        except Exception:  # a bug must cost one answer, not the server
            log.exception("internal error on %s", url.path)
            status, body, ctype = 500, b"internal error\n", "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)


def settings_from_args(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> BridgeSettings:
    api = ReplicaApi.from_mapping({}, env)

    def path_of(path: str | None, key: str | None, default_key: str) -> tuple | None:
        if path:
            return jsonpath.parse(path)
        key = default_key if key is None else key
        return (key,) if key else None

    extraction = Extraction(
        capacity=path_of(args.capacity_path, args.capacity_key, api.capacity_key),
        termination=path_of(args.termination_path, args.termination_key, api.termination_key),
        gauges=tuple(parse_gauge(m) for m in args.metric or ()),
    )
    names = [n for n, _ in extraction.gauges]
    if len(set(names)) != len(names):
        raise ValueError("--metric names must be unique")
    if args.timeout <= 0 or args.max_body_bytes <= 0:
        raise ValueError("--timeout and --max-body-bytes must be positive")
    return BridgeSettings(
        api=api,
        extraction=extraction,
        timeout_seconds=args.timeout,
        max_body_bytes=args.max_body_bytes,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        "--web.listen-address",
        dest="listen",
        default="127.0.0.1:9101",
        help="host:port to serve on",
    )
    web_config.add_arguments(parser)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds per probe, whole answer included"
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="larger answers fail the probe"
    )
    parser.add_argument(
        "--capacity-key",
        help="top-level JSON key of the free capacity (default: $REPLICA_API_CAPACITY_KEY "
        "or 'capacity'; '' = do not read)",
    )
    parser.add_argument(
        "--termination-key",
        help="top-level JSON key of the termination flag (default: "
        "$REPLICA_API_TERMINATION_KEY or 'termination'; '' = do not read)",
    )
    parser.add_argument("--capacity-path", help="JSON path of the capacity, e.g. 'status.free'")
    parser.add_argument("--termination-path", help="JSON path of the termination flag")
    parser.add_argument(
        "--metric",
        action="append",
        metavar="NAME=PATH",
        help="also expose the number at PATH as gauge NAME (repeatable), "
        "e.g. app_cpu_high_priority=cpu.highPriority",
    )


def run(args: argparse.Namespace) -> int:
    logs.setup(args.log_level)
    try:
        web = web_config.from_args(args)
    except ConfigError as e:
        log.error("bridge: %s", web_config.invalid_message(args.web_config_file, e))
        return 2
    try:
        settings = settings_from_args(args)
        bridge = Bridge(settings, args.listen, web)
    except (ValueError, OSError) as e:
        log.error("bridge: %s", e)
        return 2
    # SIGTERM stops cleanly; shutdown() must not run on the serving thread itself.
    signal.signal(
        signal.SIGTERM, lambda *_: threading.Thread(target=bridge.server.shutdown).start()
    )
    log.info(
        "bridge listening on %s (%s)",
        bridge.address,
        "plain HTTP, no auth" if web is None else web.settings.describe(),
    )
    try:
        bridge.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        bridge.server.server_close()
    return 0
