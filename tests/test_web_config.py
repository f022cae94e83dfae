"""`--web.config.file`: TLS and basic auth on the daemon's and the bridge's endpoints.

Real servers on 127.0.0.1, certificates made here with `cryptography` (a CA, a server
certificate for 127.0.0.1, a client certificate), clients with requests verifying the CA,
and one real Prometheus scraping both over TLS with basic auth.
"""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler import cli
from autoscaler.bridge.server import Bridge, BridgeSettings
from autoscaler.config import ConfigError
from autoscaler.runtime import web_config
from autoscaler.runtime.exporter import SharedState, serve
from autoscaler.runtime.metrics import Metrics
from autoscaler.runtime.web_config import WebConfig
from tests.harness.exposition import sample_values
from tests.harness.pki import Pki
from tests.harness.prometheus import REPO, PrometheusServer, free_port, stop_process

PASSWORD = "s3cret-scrape"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def _hash(password: str) -> str:
    # Cost 4: the test is about the protocol, not about bcrypt's slowness.
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def _web_file(path: Path, doc: dict[str, Any]) -> Path:
    # Written beside, then renamed: a reader never sees half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc))
    os.replace(tmp, path)
    return path


def _tls_doc(pki: Pki, stem: str = "server", **tls: Any) -> dict[str, Any]:
    cert, key = pki.issue(stem)
    return {
        "tls_server_config": {"cert_file": cert.name, "key_file": key.name, **tls},
        "basic_auth_users": {"prometheus": _hash(PASSWORD)},
        "http_server_config": {"headers": {"X-Content-Type-Options": "nosniff"}},
    }


@pytest.fixture()
def exporter(pki: Pki) -> Iterator[tuple[str, Path]]:
    """The daemon's exporter with TLS and basic auth: (https URL, web config path)."""
    path = _web_file(pki.dir / "web.yml", _tls_doc(pki))
    server, stop = serve(
        f"127.0.0.1:{free_port()}", Metrics(), SharedState(10), WebConfig(str(path))
    )
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", path
    finally:
        stop()


# --------------------------------------------------------------------------- TLS + basic auth


def test_tls_and_basic_auth_on_every_endpoint(exporter, pki: Pki) -> None:
    url, _ = exporter
    ca = str(pki.ca_file)
    for path in ("/metrics", "/status", "/sd", "/healthz", "/"):
        r = requests.get(url + path, verify=ca, timeout=5)
        assert r.status_code == 401, path
        assert r.headers["WWW-Authenticate"].startswith('Basic realm="autoscaler"')
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        wrong = requests.get(url + path, verify=ca, auth=("prometheus", "nope"), timeout=5)
        assert wrong.status_code == 401, path
        stranger = requests.get(url + path, verify=ca, auth=("root", PASSWORD), timeout=5)
        assert stranger.status_code == 401, path
        ok = requests.get(url + path, verify=ca, auth=("prometheus", PASSWORD), timeout=5)
        assert ok.status_code in (200, 503), path  # /healthz: no cycle ran yet, grace 3x10 s
        assert ok.headers["X-Content-Type-Options"] == "nosniff"
    body = requests.get(url + "/metrics", verify=ca, auth=("prometheus", PASSWORD), timeout=5)
    assert "autoscaler_" in body.text
    # Not trusted without the CA; plain HTTP on the TLS port gets no answer.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url + "/metrics", timeout=5)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url.replace("https", "http") + "/metrics", timeout=5)
    # The server survived all of it.
    ok = requests.get(url + "/sd", verify=ca, auth=("prometheus", PASSWORD), timeout=5)
    assert ok.status_code == 200


def test_client_certificate_required(pki: Pki, tmp_path: Path) -> None:
    doc = _tls_doc(
        pki,
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=str(pki.ca_file),
        min_version="TLS13",
    )
    del doc["basic_auth_users"]
    path = _web_file(pki.dir / "web-mtls.yml", doc)
    client = pki.issue("scraper", client=True)
    other = Pki(tmp_path, "other-ca").issue("intruder", client=True)
    server, stop = serve(
        f"127.0.0.1:{free_port()}", Metrics(), SharedState(10), WebConfig(str(path))
    )
    url = f"https://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        for cert in (None, other):
            with pytest.raises(requests.exceptions.RequestException):
                requests.get(url, verify=str(pki.ca_file), cert=cert, timeout=5)
        r = requests.get(url, verify=str(pki.ca_file), cert=client, timeout=5)
        assert r.status_code == 200
        # min_version TLS13: a TLS 1.2 client is refused.
        ctx = ssl.create_default_context(cafile=str(pki.ca_file))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(*client)
        with pytest.raises(ssl.SSLError):
            import socket

            with socket.create_connection(("127.0.0.1", server.server_address[1]), 5) as s:
                ctx.wrap_socket(s, server_hostname="127.0.0.1").close()
    finally:
        stop()


def test_allowed_sans(pki: Pki) -> None:
    doc = _tls_doc(
        pki,
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=str(pki.ca_file),
        client_allowed_sans=["good.example"],
    )
    del doc["basic_auth_users"]
    path = _web_file(pki.dir / "web-sans.yml", doc)
    good, bad = pki.issue("good", client=True), pki.issue("bad", client=True)
    server, stop = serve(
        f"127.0.0.1:{free_port()}", Metrics(), SharedState(10), WebConfig(str(path))
    )
    url = f"https://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        assert requests.get(url, verify=str(pki.ca_file), cert=good, timeout=5).ok
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(url, verify=str(pki.ca_file), cert=bad, timeout=5)
    finally:
        stop()


def test_changes_apply_to_the_next_connection(exporter, pki: Pki, tmp_path: Path, caplog) -> None:
    url, path = exporter
    ca = str(pki.ca_file)
    assert requests.get(url + "/sd", verify=ca, auth=("prometheus", PASSWORD), timeout=5).ok
    # A new password: the old one (cached as verified) stops working at once.
    doc = yaml.safe_load(path.read_text())
    doc["basic_auth_users"] = {"prometheus": _hash("rotated")}
    _web_file(path, doc)
    assert (
        requests.get(url + "/sd", verify=ca, auth=("prometheus", PASSWORD), timeout=5).status_code
        == 401
    )
    assert requests.get(url + "/sd", verify=ca, auth=("prometheus", "rotated"), timeout=5).ok
    # A certificate from another CA, renewed in place (same file names).
    other = Pki(tmp_path, "renewed-ca")
    cert, key = other.issue("server2")
    os.replace(cert, pki.dir / doc["tls_server_config"]["cert_file"])
    os.replace(key, pki.dir / doc["tls_server_config"]["key_file"])
    r = requests.get(
        url + "/sd", verify=str(other.ca_file), auth=("prometheus", "rotated"), timeout=5
    )
    assert r.ok
    # A broken file is logged once and the last good settings stay.
    path.write_text("tls_server_config: {cert_file: nowhere.pem, key_file: nowhere.key}\n")
    with caplog.at_level("ERROR", logger="autoscaler.web"):
        for _ in range(3):
            r = requests.get(
                url + "/sd", verify=str(other.ca_file), auth=("prometheus", "rotated"), timeout=5
            )
            assert r.ok
    errors = [r for r in caplog.records if "invalid" in r.getMessage()]
    assert len(errors) == 1 and "tls_server_config.cert_file" in errors[0].getMessage()
    # ... and the scrape says so, until a good file is back.
    scrape = {"verify": str(other.ca_file), "auth": ("prometheus", "rotated"), "timeout": 5}
    assert _gauge(url, "autoscaler_web_config_last_reload_successful", **scrape) == 0
    failed_at = _gauge(url, "autoscaler_web_config_last_reload_success_timestamp_seconds", **scrape)
    _web_file(path, doc)
    assert _gauge(url, "autoscaler_web_config_last_reload_successful", **scrape) == 1
    assert (
        _gauge(url, "autoscaler_web_config_last_reload_success_timestamp_seconds", **scrape)
        > failed_at
    )


def _gauge(url: str, name: str, **kw: Any) -> float:
    """One unlabelled sample from `url`/metrics."""
    r = requests.get(url + "/metrics", **kw)
    r.raise_for_status()
    values = sample_values(r.text, name)
    assert len(values) == 1, f"{name}: {values} in /metrics"
    return values[0]


def test_auth_excluded_paths(pki: Pki) -> None:
    doc = _tls_doc(pki, "excluded")
    doc["auth_excluded_paths"] = ["/healthz"]
    path = _web_file(pki.dir / "web-excluded.yml", doc)
    server, stop = serve(
        f"127.0.0.1:{free_port()}", Metrics(), SharedState(10), WebConfig(str(path))
    )
    url = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        r = requests.get(url + "/healthz?x=1", verify=str(pki.ca_file), timeout=5)
        assert r.status_code == 200 and r.json()["healthy"]
        assert requests.get(url + "/status", verify=str(pki.ca_file), timeout=5).status_code == 401
    finally:
        stop()


def test_bridge_with_tls_and_basic_auth(pki: Pki) -> None:
    path = _web_file(pki.dir / "web-bridge.yml", _tls_doc(pki, "bridge"))
    bridge = Bridge(BridgeSettings(), f"127.0.0.1:{free_port()}", WebConfig(str(path))).start()
    url = f"https://{bridge.address}"
    try:
        assert requests.get(url + "/healthz", verify=str(pki.ca_file), timeout=5).status_code == 401
        r = requests.get(
            url + "/metrics", verify=str(pki.ca_file), auth=("prometheus", PASSWORD), timeout=5
        )
        assert r.ok and "bridge_probes_total" in r.text
        assert "bridge_web_config_last_reload_successful 1.0" in r.text
    finally:
        bridge.stop()


def test_successful_verifications_are_cached(pki: Pki, monkeypatch) -> None:
    path = _web_file(pki.dir / "web-cache.yml", {"basic_auth_users": {"u": _hash("p")}})
    now = [1000.0]
    web = WebConfig(str(path), clock=lambda: now[0])
    calls = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda pw, h: calls.append(pw) or real(pw, h))
    good = "Basic " + base64.b64encode(b"u:p").decode()
    bad = "Basic " + base64.b64encode(b"u:x").decode()
    assert web.authorized(good) and web.authorized(good)
    assert len(calls) == 1  # the second one came from the cache
    assert not web.authorized(bad) and not web.authorized(bad)
    assert len(calls) == 3  # a failure is never cached: guessing stays slow
    now[0] += web_config.CACHE_SECONDS + 1
    assert web.authorized(good) and len(calls) == 4
    for header in (None, "", "Bearer x", "Basic !!!", "Basic " + "dTpw" * 1000, "Basic dQ=="):
        assert not web.authorized(header)
    long = "Basic " + base64.b64encode(b"u:" + b"p" * 100).decode()
    assert not web.authorized(long)  # over bcrypt's 72 bytes: refused, not an exception


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        (
            {"tls_server_config": {"cert_file": "a", "key_file": "b", "color": 1}},
            "tls_server_config.color",
        ),
        ({"rate_limit": {"interval": "1s", "burst": 2}}, "rate_limit"),
        ({"basic_auth_user": {}}, "basic_auth_user"),
        (
            {"tls_server_config": {"cert_file": "CERT", "key_file": "KEY", "min_version": "TLS14"}},
            "tls_server_config.min_version",
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "CERT",
                    "key_file": "KEY",
                    "client_auth_type": "RequireAnyClientCert",
                }
            },
            "tls_server_config.client_auth_type",
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "CERT",
                    "key_file": "KEY",
                    "client_auth_type": "RequireAndVerifyClientCert",
                }
            },
            "tls_server_config.client_ca_file",
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "CERT",
                    "key_file": "KEY",
                    "curve_preferences": ["X25519"],
                }
            },
            "tls_server_config.curve_preferences",
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "CERT",
                    "key_file": "KEY",
                    "cipher_suites": ["RC4"],
                }
            },
            "tls_server_config.cipher_suites",
        ),
        ({"tls_server_config": {"cert_file": "CERT"}}, "tls_server_config.key_file"),
        (
            {"tls_server_config": {"cert_file": "CERT", "key_file": "OTHERKEY"}},
            "tls_server_config.cert_file",
        ),
        (
            {"tls_server_config": {"cert_file": "missing.pem", "key_file": "KEY"}},
            "tls_server_config.cert_file",
        ),
        (
            {"http_server_config": {"headers": {"X-Frame-Options": "allow"}}},
            "http_server_config.headers.X-Frame-Options",
        ),
        ({"http_server_config": {"headers": {"Server": "x"}}}, "http_server_config.headers.Server"),
        ({"basic_auth_users": {"admin": "plain-password-123"}}, "basic_auth_users.admin"),
        ({"auth_excluded_paths": ["healthz"]}, "auth_excluded_paths"),
        ({"auth_excluded_paths": "/healthz"}, "auth_excluded_paths"),
    ],
)
def test_invalid_web_config_names_the_key(pki: Pki, tmp_path: Path, doc, key, capsys) -> None:
    cert, k = pki.issue("badcase")
    _, other_key = pki.issue("badcase-other")
    text = yaml.safe_dump(doc)
    text = (
        text.replace("OTHERKEY", str(other_key)).replace("CERT", str(cert)).replace("KEY", str(k))
    )
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        web_config.load(str(path))
    assert any(e.startswith(f"{key}:") for e in exc.value.errors), exc.value.errors
    assert "plain-password-123" not in str(exc.value)
    # The command line: `check` and `run` exit 2 and print the key.
    assert cli.main(["check", "--web.config.file", str(path)]) == 2
    assert cli.main(["run", "--web.config.file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count(f"  {key}:") == 2 and "plain-password-123" not in err


def test_every_problem_is_reported_at_once(pki: Pki, tmp_path: Path) -> None:
    cert, _ = pki.issue("every")
    _, other_key = pki.issue("every-other")
    path = tmp_path / "web.yml"
    doc = {
        "basic_auth_users": {"u": "x"},
        "tls_server_config": {"cert_file": str(cert), "key_file": str(other_key)},
    }
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as exc:
        web_config.load(str(path))
    keys = [e.split(":")[0] for e in exc.value.errors]
    assert keys == ["basic_auth_users.u", "tls_server_config.cert_file"]


def test_listen_address_flags(capsys) -> None:
    args = cli.build_parser(only="bridge").parse_args(["bridge", "--web.listen-address", "h:1"])
    assert args.listen == "h:1"
    assert cli.main(["run", "--web.listen-address", "nowhere"]) == 2
    assert "--web.listen-address 'nowhere': no port" in capsys.readouterr().err


def test_check_accepts_a_good_file(pki: Pki, capsys) -> None:
    path = _web_file(pki.dir / "web-check.yml", _tls_doc(pki, "checked"))
    assert cli.main(["check", "--web.config.file", str(path)]) == 0
    assert "OK: web configuration" in capsys.readouterr().out
    empty = pki.dir / "empty.yml"
    empty.write_text("")
    assert web_config.load(str(empty)).tls is None  # an empty file: as without the flag


# --------------------------------------------------------------------------- real Prometheus


def _wait(url: str, auth: tuple[str, str], ca: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, "autoscaler exited"
        try:
            if requests.get(url, auth=auth, verify=ca, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def test_prometheus_scrapes_the_daemon_and_the_bridge_over_tls_with_basic_auth(
    pki: Pki, tmp_path: Path
) -> None:
    web = _web_file(pki.dir / "web-prom.yml", _tls_doc(pki, "prom-target"))
    port = free_port()
    bridge = Bridge(BridgeSettings(), f"127.0.0.1:{free_port()}", WebConfig(str(web))).start()
    scrape = {
        "scheme": "https",
        "tls_config": {"ca_file": str(pki.ca_file)},
        "basic_auth": {"username": "prometheus", "password": PASSWORD},
    }
    prom_config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "autoscaler",
                **scrape,
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            },
            {"job_name": "bridge", **scrape, "static_configs": [{"targets": [bridge.address]}]},
        ],
    }
    prometheus = PrometheusServer(autoscaler="unused", config_text=yaml.safe_dump(prom_config))
    config = tmp_path / "autoscaler.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "prometheus": {"url": prometheus.url, "timeout_seconds": 2},
                "interval_seconds": 1,
                "listen": "127.0.0.1:9",  # overridden on the command line
                "state_dir": str(tmp_path / "state"),
                "groups": {
                    "web": {
                        "provider": {"type": "local", "run_dir": str(tmp_path / "run")},
                        "min": 0,
                        "max": 1,
                        "replica_capacity": 4,
                        "dry_run": True,  # this test is about the endpoints: no replicas
                        "policies": [{"type": "headroom", "min_available": 4}],
                    }
                },
            }
        )
    )
    log = open(tmp_path / "autoscaler.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "run", str(config),
         "--web.config.file", str(web), "--web.listen-address", f"127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    try:
        prometheus.start()
        _wait(f"https://127.0.0.1:{port}/metrics", ("prometheus", PASSWORD), str(pki.ca_file), proc)
        up = prometheus.wait_for(
            "up == 1", lambda res: {r["metric"]["job"] for r in res} == {"autoscaler", "bridge"}
        )
        assert len(up) == 2
        assert prometheus.query("autoscaler_interval_seconds")  # the daemon's own series arrived
        # what AutoscalerWebConfigReloadFailed reads (test_promql_live's stack has no web file)
        for series, job in (
            ("autoscaler_web_config_last_reload_successful", "autoscaler"),
            ("bridge_web_config_last_reload_successful", "bridge"),
        ):
            got = prometheus.query(f'{series}{{job="{job}"}}')
            assert [r["value"][1] for r in got] == ["1"], series
    finally:
        stop_process(proc)
        log.close()
        prometheus.cleanup()
        bridge.stop()
    assert proc.returncode == 0
    assert "TLS, basic auth (1 user)" in (tmp_path / "autoscaler.log").read_text()


# --------------------------------------------------------------------------- fuzz

_FUZZ = settings(max_examples=150, deadline=timedelta(seconds=2), derandomize=True)
_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
_keys = st.sampled_from(
    [*web_config._TOP_KEYS, *web_config._TLS_KEYS, "headers", "http2", "rate_limit", "x"]
)
_docs = st.recursive(
    _leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4)
)


@_FUZZ
@given(doc=_docs)
def test_any_web_config_document_is_settings_or_a_config_error(doc: Any) -> None:
    try:
        web_config.parse(doc, Path("/nonexistent"))
    except ConfigError as e:
        assert e.errors and all(isinstance(m, str) and ": " in m for m in e.errors)


@pytest.fixture(scope="module")
def fuzz_web(tmp_path_factory: pytest.TempPathFactory) -> WebConfig:
    path = _web_file(
        tmp_path_factory.mktemp("fuzz") / "web.yml", {"basic_auth_users": {"u": _hash("p")}}
    )
    return WebConfig(str(path))


@_FUZZ
@given(
    header=st.text(max_size=80)
    | st.binary(max_size=80).map(lambda b: "Basic " + base64.b64encode(b).decode())
)
def test_any_authorization_header_is_a_yes_or_no(fuzz_web: WebConfig, header: str) -> None:
    assert fuzz_web.authorized(header) is (header == "Basic " + base64.b64encode(b"u:p").decode())


def test_the_shipped_example(pki: Pki, tmp_path: Path) -> None:
    example = (REPO / "examples" / "web-config.yml").read_text()
    (tmp_path / "tls").mkdir()
    cert, key = pki.issue("example")
    os.replace(cert, tmp_path / "tls" / "autoscaler.crt")
    os.replace(key, tmp_path / "tls" / "autoscaler.key")
    path = tmp_path / "web-config.yml"
    path.write_text(example)
    with pytest.raises(ConfigError) as exc:  # the placeholder is refused, naming the user
        web_config.load(str(path))
    assert exc.value.errors[0].startswith("basic_auth_users.prometheus:")
    path.write_text(example.replace("REPLACE-WITH-A-BCRYPT-HASH", _hash(PASSWORD)))
    settings = web_config.load(str(path))
    assert settings.tls is not None and settings.excluded == {"/healthz"}
    assert settings.describe() == "TLS, basic auth (1 user)"
