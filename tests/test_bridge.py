"""The bridge against real HTTP replica servers answering good and bad JSON."""

from __future__ import annotations

import argparse
import gzip
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.bridge import server as bridge
from autoscaler.bridge.server import (
    Bridge,
    BridgeSettings,
    Extraction,
    ReplicaApi,
    parse_bool,
    replica_url,
)
from autoscaler.config import jsonpath
from tests.harness.prometheus import http_server

RELEASE = threading.Event()  # lets slow handlers end at teardown


def _json(obj: object) -> bytes:
    return json.dumps(obj).encode()


# path -> (status, headers, body)
ANSWERS: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/good": (200, {}, _json({"capacity": 3, "termination": False})),
    "/status": (200, {}, _json({"capacity": 4, "termination": False})),
    "/float-yes": (200, {}, _json({"capacity": 2.5, "termination": "yes"})),
    "/int-term": (200, {}, _json({"capacity": 0, "termination": 1})),
    "/custom-keys": (200, {}, _json({"free": 7, "stop": "no"})),
    "/scaleit": (200, {}, _json({"cpu": {"highPriority": 0.68}, "replicas": 10})),
    "/negative": (200, {}, _json({"capacity": -1, "termination": False})),
    "/not-json": (200, {}, b"<html>busy</html>"),
    "/truncated": (200, {}, b'{"capacity": 3, "termin'),
    "/nan": (200, {}, b'{"capacity": NaN, "termination": false}'),
    "/inf": (200, {}, b'{"capacity": 1e999, "termination": false}'),
    "/duplicate": (200, {}, b'{"capacity": 1, "capacity": 50, "termination": false}'),
    "/deep": (200, {}, b"[" * 50_000),  # under the size limit, far over the nesting one
    "/not-utf8": (200, {}, b'{"capacity": "\xff\xfe"}'),
    "/list": (200, {}, _json([{"capacity": 3}])),
    "/missing-capacity": (200, {}, _json({"termination": False})),
    "/missing-termination": (200, {}, _json({"capacity": 3})),
    "/string-capacity": (200, {}, _json({"capacity": "3", "termination": False})),
    "/bool-capacity": (200, {}, _json({"capacity": True, "termination": False})),
    "/null-capacity": (200, {}, _json({"capacity": None, "termination": False})),
    "/maybe": (200, {}, _json({"capacity": 3, "termination": "maybe"})),
    "/term-2": (200, {}, _json({"capacity": 3, "termination": 2})),
    "/term-float": (200, {}, _json({"capacity": 3, "termination": 1.0})),
    "/http-500": (500, {}, _json({"capacity": 3, "termination": False})),
    "/huge": (200, {}, _json({"capacity": 3, "termination": False, "pad": "x" * 300_000})),
    "/gzip": (
        200,
        {"Content-Encoding": "gzip"},
        gzip.compress(_json({"capacity": 3, "termination": False})),
    ),
}


class ReplicaHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # close-delimited bodies allow "no Content-Length" cases

    def do_GET(self) -> None:
        self.path = self.path.split("?")[0]
        if self.path == "/slow":  # headers only after the bridge gave up
            RELEASE.wait(10)
            return self._send(200, {}, _json({"capacity": 3, "termination": False}))
        if self.path == "/huge-no-length":  # no Content-Length: only the byte count stops it
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b" " * 65536)
            except OSError:
                pass  # the bridge hung up, as it should
            return None
        if self.path == "/drip":  # headers at once, then one byte every 0.2 s
            self.send_response(200)
            self.end_headers()
            try:
                self.wfile.write(b'{"capacity": 3, ')
                while not RELEASE.wait(0.2):
                    self.wfile.write(b" ")
                    self.wfile.flush()
            except OSError:
                pass
            return None
        status, headers, body = ANSWERS.get(self.path, (404, {}, b"{}"))
        self._send(status, headers, body)
        return None

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def replica() -> Iterator[str]:
    RELEASE.clear()
    with http_server(ReplicaHandler) as server:
        try:
            yield f"127.0.0.1:{server.server_address[1]}"
        finally:
            RELEASE.set()  # handlers held by a test end before the server stops


def _start(settings: BridgeSettings) -> Bridge:
    return Bridge(settings, "127.0.0.1:0").start()


@pytest.fixture
def bridge_url() -> Iterator[str]:
    settings = BridgeSettings(timeout_seconds=1.0, max_body_bytes=64 * 1024)
    b = _start(settings)
    try:
        yield f"http://{b.address}"
    finally:
        b.stop()


def scrape(bridge_url: str, target: str, **params: str) -> dict[str, float]:
    r = requests.get(f"{bridge_url}/probe", params={"target": target, **params}, timeout=10)
    assert r.status_code == 200, r.text
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[s.name] = s.value
    return out


def failures(bridge_url: str) -> dict[str, float]:
    text = requests.get(f"{bridge_url}/metrics", timeout=5).text
    return {
        s.labels["reason"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "bridge_probe_failures_total"
    }


# ------------------------------------------------------------------- good answers


@pytest.mark.parametrize(
    ("path", "capacity", "termination"),
    [
        ("/good", 3, 0),
        ("/float-yes", 2.5, 1),
        ("/int-term", 0, 1),
        ("/negative", -1, 0),  # passed through: the decision core judges usability
    ],
)
def test_good_answers(replica, bridge_url, path, capacity, termination):
    m = scrape(bridge_url, f"http://{replica}{path}")
    assert m["replica_probe_success"] == 1
    assert m["replica_capacity"] == capacity
    assert m["replica_termination"] == termination
    assert m["replica_probe_duration_seconds"] >= 0
    assert all(v == 0 for v in failures(bridge_url).values())


def test_keys_can_be_chosen_per_target(replica, bridge_url):
    m = scrape(
        bridge_url,
        f"http://{replica}/custom-keys",
        capacity_key="free",
        termination_key="stop",
    )
    assert (m["replica_probe_success"], m["replica_capacity"], m["replica_termination"]) == (
        1,
        7,
        0,
    )


def test_scaleit_status_exposed_as_gauges(replica):
    settings = BridgeSettings(
        extraction=Extraction(
            capacity=None,
            termination=None,
            gauges=(
                bridge.parse_gauge("app_cpu_high_priority=cpu.highPriority"),
                bridge.parse_gauge("app_replicas=$.replicas"),
            ),
        ),
        timeout_seconds=2,
    )
    b = _start(settings)
    try:
        m = scrape(f"http://{b.address}", f"http://{replica}/scaleit")
    finally:
        b.stop()
    assert m["replica_probe_success"] == 1
    assert m["app_cpu_high_priority"] == 0.68
    assert m["app_replicas"] == 10
    assert "replica_capacity" not in m and "replica_termination" not in m


# -------------------------------------------------------------------- bad answers


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/not-json", "invalid_json"),
        ("/truncated", "invalid_json"),
        ("/nan", "invalid_json"),
        ("/duplicate", "invalid_json"),
        ("/deep", "invalid_json"),
        ("/not-utf8", "invalid_json"),
        ("/gzip", "invalid_json"),
        ("/inf", "wrong_type"),
        ("/list", "missing_key"),
        ("/missing-capacity", "missing_key"),
        ("/missing-termination", "missing_key"),
        ("/string-capacity", "wrong_type"),
        ("/bool-capacity", "wrong_type"),
        ("/null-capacity", "wrong_type"),
        ("/maybe", "wrong_type"),
        ("/term-2", "wrong_type"),
        ("/term-float", "wrong_type"),
        ("/http-500", "http_status"),
        ("/nowhere", "http_status"),
        ("/huge", "too_large"),
        ("/huge-no-length", "too_large"),
        ("/slow", "timeout"),
        ("/drip", "timeout"),
    ],
)
def test_bad_answers_fail_the_probe_without_values(replica, bridge_url, path, reason):
    m = scrape(bridge_url, f"http://{replica}{path}")
    assert m["replica_probe_success"] == 0
    # never a made-up value, not even the part that was readable
    assert "replica_capacity" not in m and "replica_termination" not in m
    counts = failures(bridge_url)
    assert counts[reason] == 1, counts
    assert sum(counts.values()) == 1, counts
    # the bridge still answers good probes afterwards
    assert scrape(bridge_url, f"http://{replica}/good")["replica_probe_success"] == 1


def test_unreachable_and_invalid_targets(bridge_url):
    with ThreadingHTTPServer(("127.0.0.1", 0), ReplicaHandler) as s:
        closed_port = s.server_address[1]  # bound then closed below: nothing listens
    m = scrape(bridge_url, f"http://127.0.0.1:{closed_port}/")
    assert m["replica_probe_success"] == 0
    for target in ("ftp://127.0.0.1/x", "http://", "http://127.0.0.1:99999/"):
        assert scrape(bridge_url, target)["replica_probe_success"] == 0
    counts = failures(bridge_url)
    assert counts["connection"] == 1
    assert counts["invalid_target"] == 3


def test_probe_without_target_is_a_client_error(bridge_url):
    assert requests.get(f"{bridge_url}/probe", timeout=5).status_code == 400
    assert requests.get(f"{bridge_url}/healthz", timeout=5).text == "ok\n"


def test_timeout_bounds_a_dripping_replica(replica):
    # The whole answer, not each read, is bounded: a byte every 0.2 s never ends otherwise.
    settings = BridgeSettings(timeout_seconds=0.5)
    start = time.monotonic()
    result = bridge.probe(f"http://{replica}/drip", settings)
    assert (result.success, result.reason) == (False, "timeout")
    assert time.monotonic() - start < 10  # generous: only "it ends", not how fast


def test_secrets_in_target_never_reach_the_answer(replica, bridge_url, caplog):
    caplog.set_level("INFO", logger="autoscaler.bridge.server")
    r = requests.get(
        f"{bridge_url}/probe",
        params={"target": f"http://user:s3cret@{replica}/not-json?token=t0ken"},
        timeout=10,
    )
    assert "s3cret" not in r.text and "t0ken" not in r.text
    assert "invalid_json" in caplog.text
    assert "s3cret" not in caplog.text and "t0ken" not in caplog.text


# ------------------------------------------------------- SimpleScaleVM compatibility


def _settings(env: dict[str, str], *argv: str) -> BridgeSettings:
    parser = argparse.ArgumentParser()
    bridge.add_arguments(parser)
    return bridge.settings_from_args(parser.parse_args(list(argv)), env)


def test_simplescalevm_variables_and_defaults(replica):
    default = _settings({})
    assert default.api == ReplicaApi("http", 8080, "/", "capacity", "termination")
    assert default.extraction.capacity == ("capacity",)

    host, port = replica.split(":")
    env = {
        "REPLICA_API_PROTOCOL": "http",
        "REPLICA_API_PORT": port,
        "REPLICA_API_PATH": "/custom-keys",
        "REPLICA_API_CAPACITY_KEY": "free",
        "REPLICA_API_TERMINATION_KEY": "stop",
    }
    settings = _settings(env)
    # Prometheus's __address__ is just the replica's address: the bridge completes it
    # exactly as SimpleScaleVM does ({protocol}://{address}:{port}{path}).
    result = bridge.probe(host, settings)
    assert result.success, result
    assert result.values == {"replica_capacity": 7, "replica_termination": 0}
    # command-line options win over the environment; '' switches a value off
    settings = _settings(env, "--capacity-key", "", "--termination-key", "stop")
    assert bridge.probe(host, settings).values == {"replica_termination": 0}


@pytest.mark.parametrize(
    "env",
    [
        {"REPLICA_API_PROTOCOL": "ftp"},
        {"REPLICA_API_PORT": "http"},
        {"REPLICA_API_PORT": "0"},
        {"REPLICA_API_PATH": "status"},
    ],
)
def test_invalid_simplescalevm_variables_are_errors(env):
    with pytest.raises(ValueError):
        _settings(env)


def test_replica_url():
    api = ReplicaApi(port=8080, path="/status")
    assert replica_url("10.0.0.5", api) == "http://10.0.0.5:8080/status"
    assert replica_url("10.0.0.5:9000", api) == "http://10.0.0.5:9000/status"
    assert replica_url("fe80::1", api) == "http://[fe80::1]:8080/status"
    assert replica_url("[fe80::1]:9000", api) == "http://[fe80::1]:9000/status"
    assert replica_url("vm-1", ReplicaApi(protocol="https")) == "https://vm-1:8080/"
    with pytest.raises(ValueError):
        replica_url("", api)
    assert ReplicaApi.from_mapping({"port": 9000}, {"REPLICA_API_PORT": "1"}).port == 9000
    with pytest.raises(ValueError):
        ReplicaApi.from_mapping({"prot": "http"}, {})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("true", True),
        ("FALSE", False),
        ("yes", True),
        ("No", False),
        ("1", True),
        (" 0 ", False),
    ],
)
def test_parse_bool_accepts(value, expected):
    assert parse_bool(value) is expected


@pytest.mark.parametrize("value", ["", "y", "on", "off", "maybe", 2, -1, 1.0, None, [], "tru"])
def test_parse_bool_rejects(value):
    # SimpleScaleVM would take most of these as true and delete the replica
    with pytest.raises(ValueError):
        parse_bool(value)


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "spec",
    ["replica_capacity=a", "bridge_x=a", "1bad=a", "no_path", "ok=a..b", "ok=", "x y=a"],
)
def test_bad_metric_specs(spec):
    with pytest.raises(ValueError):
        bridge.parse_gauge(spec)


def test_json_paths():
    doc = {"cpu": {"highPriority": 0.68}, "items": [{"free": 2}], "a.b": {"c": 1}}
    assert jsonpath.extract(doc, jsonpath.parse("$.cpu.highPriority")) == 0.68
    assert jsonpath.extract(doc, jsonpath.parse("items[0].free")) == 2
    assert jsonpath.extract(doc, jsonpath.parse('["a.b"].c')) == 1
    for missing in ("cpu.low", "items[1].free", "cpu[0]", "items.free"):
        with pytest.raises(jsonpath.MissingError):
            jsonpath.extract(doc, jsonpath.parse(missing))
    for bad in ("", "$", "a.", ".a", "a..b", "a[x]", 'a["b"', "a b"):
        with pytest.raises(jsonpath.PathError):
            jsonpath.parse(bad)
