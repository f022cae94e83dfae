"""Property/fuzz tests: everything that parses outside input fails only in its own way.

Each parser gets random input and may answer or raise its documented error; any other
exception (or a hang: every example has a deadline) is a bug. Example counts are kept
modest so the file runs in a few seconds.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.bridge.server import (
    Bridge,
    BridgeSettings,
    Extraction,
    ProbeFailure,
    decode,
    extract,
    normalize_target,
)
from autoscaler.config import ConfigError, jsonpath, parse_yaml
from autoscaler.observe.answer import InvalidAnswer, parse_answer
from autoscaler.providers.base import ProviderError
from autoscaler.providers.http import HttpCountProvider, HttpOptions
from autoscaler.providers.registry import parse_config
from autoscaler.runtime.exporter import SharedState, serve
from autoscaler.runtime.metrics import Metrics
from tests.harness.prometheus import free_port, http_server

FUZZ = settings(
    max_examples=100,
    deadline=timedelta(seconds=2),  # a hang fails the example
    derandomize=True,  # the same examples on every run: CI stays deterministic
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- JSON-ish values --------------------------------------------------------------------
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
KEYS = [
    "prometheus", "url", "groups", "name", "provider", "type", "min", "max", "policies",
    "replica_capacity", "min_available", "interval_seconds", "options", "listen", "status",
    "data", "result", "resultType", "metric", "value", "values", "capacity", "termination",
    "replicas", "target", "tolerance", "username", "password", "bearer_token_file",
]  # fmt: skip
_keys = st.sampled_from(KEYS) | st.text(max_size=8)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=25,
)


def _dump(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


bodies = json_values.map(_dump) | st.binary(max_size=200)


# --- the configuration loader ----------------------------------------------------------
@FUZZ
@given(doc=json_values)
def test_config_loader_raises_only_config_error(doc: Any) -> None:
    for raw in (doc, {"prometheus": {"url": "http://127.0.0.1:9090"}, "groups": doc}):
        try:
            parse_config(raw, {})
        except ConfigError:
            pass


@FUZZ
@given(text=st.text(max_size=200) | json_values.map(lambda v: yaml.safe_dump(v)))
def test_yaml_text_raises_only_config_error(text: str) -> None:
    try:
        data, _ = parse_yaml(text)
        parse_config(data, {})
    except ConfigError:
        pass


# --- PromQL answers --------------------------------------------------------------------
_series = st.fixed_dictionaries(
    {"metric": st.dictionaries(st.text(max_size=6), st.text(max_size=6) | _scalars, max_size=3)},
    optional={"value": json_values, "values": st.lists(json_values, max_size=3)},
)
prom_answers = st.fixed_dictionaries(
    {"status": st.sampled_from(["success", "error"]) | _scalars},
    optional={
        "data": st.fixed_dictionaries(
            {"resultType": st.sampled_from(["vector", "matrix", "scalar"]) | _scalars},
            optional={"result": st.lists(_series, max_size=3) | json_values},
        )
        | json_values,
        "error": json_values,
    },
).map(_dump)


@FUZZ
@given(
    body=prom_answers | bodies,
    code=st.sampled_from([200, 400, 422, 500, 503]),
    expect=st.sampled_from([("vector",), ("matrix",), ("vector", "matrix")]),
)
def test_promql_answers_raise_only_invalid_answer(body: bytes, code: int, expect: Any) -> None:
    try:
        parse_answer(body, code, expect)
    except InvalidAnswer:
        pass


# --- replica JSON in the bridge --------------------------------------------------------
EXTRACTION = Extraction(
    capacity=("capacity",),
    termination=("termination",),
    gauges=(("replica_load", jsonpath.parse("data.load")),),
)


@FUZZ
@given(
    body=bodies
    | st.fixed_dictionaries(
        {"capacity": json_values, "termination": json_values, "data": json_values}
    ).map(_dump)
)
def test_bridge_replica_json_raises_only_probe_failure(body: bytes) -> None:
    try:
        extract(decode(body), EXTRACTION)
    except ProbeFailure:
        pass


# --- /sd and /probe query parameters through the real servers -------------------------
class _Status:
    """What the http provider's status endpoint answers (set by each example)."""

    body = b""
    code = 200


REPLICA = b'{"capacity": 2, "termination": false}'


class _App(BaseHTTPRequestHandler):
    """`/app/status`: the http provider's status (_Status); anything else: a replica's
    JSON, for /probe targets (no random target may leave the machine)."""

    def do_GET(self) -> None:  # noqa: N802
        code, body = (_Status.code, _Status.body) if self.path == "/app/status" else (200, REPLICA)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def app() -> Iterator[str]:
    """One loopback server for both: the replica behind /probe and the status endpoint."""
    with http_server(_App) as server:
        yield f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def replica(app: str) -> str:
    return app


@pytest.fixture(scope="module")
def status_app(app: str) -> str:
    return f"http://{app}/app/status"


@pytest.fixture(scope="module")
def exporter() -> Iterator[int]:
    port = free_port()
    _, stop = serve(f"127.0.0.1:{port}", Metrics(), SharedState(10))
    try:
        yield port
    finally:
        stop()


@pytest.fixture(scope="module")
def bridge() -> Iterator[int]:
    b = Bridge(BridgeSettings(timeout_seconds=1.0), f"127.0.0.1:{free_port()}").start()
    try:
        yield int(b.address.rpartition(":")[2])
    finally:
        b.stop()


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


_param_keys = st.sampled_from(["via", "target", "skip", "capacity_key", "termination_key"])
_param_values = st.text(max_size=20) | st.sampled_from(
    ["direct", "bridge", "capacity", "termination", "capacity,termination", ""]
)
# Raw query text too: anything printable that can travel in a request line.
_raw_query = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"),
    max_size=40,
)


def _query(pairs: list[tuple[str, str]]) -> str:
    return urlencode(pairs)


@FUZZ
@given(
    query=st.lists(st.tuples(_param_keys | st.text(max_size=6), _param_values), max_size=4).map(
        _query
    )
    | _raw_query
)
def test_sd_query_never_fails_the_server(exporter: int, query: str) -> None:
    assert _get(exporter, f"/sd?{query}") in (200, 400)


# Targets stay on loopback: a fixed host, then a random port/path (no '@' or '\\' that
# could move the host elsewhere).
_safe_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="@\\"),
    max_size=15,
)


@FUZZ
@given(data=st.data())
def test_probe_query_never_fails_the_bridge(bridge: int, replica: str, data: Any) -> None:
    target = data.draw(
        st.sampled_from(
            [f"{replica}", f"http://{replica}/", "127.0.0.1:", "http://127.0.0.1:"]
        ).flatmap(lambda base: _safe_text.map(lambda tail: base + tail))
        | st.sampled_from(["", "ftp://x", "http://", "://", "127.0.0.1:99999"])
    )
    pairs = data.draw(st.lists(st.tuples(_param_keys, _param_values), max_size=3))
    pairs = [(k, v) for k, v in pairs if k != "target"]
    targets = data.draw(st.integers(min_value=0, max_value=2))
    query = _query([("target", target)] * targets + pairs)
    assert _get(bridge, f"/probe?{query}") in (200, 400)


# --- the http provider's answers --------------------------------------------------------
@FUZZ
@given(
    body=bodies | st.fixed_dictionaries({"replicas": json_values}).map(_dump),
    code=st.sampled_from([200, 200, 204, 404, 500]),
    path=st.sampled_from(["replicas", "app.replicas", "items[0].n"]),
)
def test_http_provider_status_raises_only_provider_error(
    status_app: str, body: bytes, code: int, path: str
) -> None:
    _Status.body, _Status.code = body, code
    options = HttpOptions(
        status_url=status_app,
        set_url=status_app,
        count_path=jsonpath.parse(path),
        timeout_seconds=2,
    )
    provider = HttpCountProvider(options)
    try:
        count = provider.read_count()
        assert isinstance(count, int) and count >= 0
    except ProviderError:
        pass
    finally:
        provider.session.close()


# --- what the fuzzing found, pinned ------------------------------------------------------
def test_yaml_control_character_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="#x001f"):
        parse_yaml("\x1f")


def test_broken_ipv6_target_is_an_invalid_target(bridge: int) -> None:
    assert _get(bridge, "/probe?target=127.0.0.1%3A%5B") == 200  # probe failed, not a 500
    with pytest.raises(ProbeFailure, match="not a valid URL"):
        normalize_target("127.0.0.1:[", BridgeSettings().api)
