"""High availability on an etcd that asks for TLS client certificates, or for a user.

A real etcd (Debian's etcd-server) on loopback each time: with a CA and certificates made
here (`tests/harness/pki.py`) and `--client-cert-auth`; with etcd users on (root, and a
user allowed only under its own prefix). The real etcd3gw client and requests talk to it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.config.errors import ConfigError
from autoscaler.config.secrets import redacted
from autoscaler.config.secrets import registry as secret_registry
from autoscaler.core.model import PlannerState
from autoscaler.providers.registry import parse_config
from autoscaler.runtime.clock import SystemClock
from autoscaler.runtime.ha.leader import LeaderElector
from autoscaler.runtime.ha.memory import EtcdMemoryStore
from autoscaler.runtime.logs import RedactingFilter
from tests.harness.etcd import EtcdServer, missing
from tests.harness.pki import Pki
from tests.harness.stack import local_group
from tests.test_ha import ha_config, wait_for

pytestmark = pytest.mark.timeout(120)
PASSWORD = "etcd-pw-" + secrets.token_hex(4)


def _server(**kw: Any) -> Iterator[EtcdServer]:
    problem = missing()
    if problem:
        pytest.fail(problem)  # `make test` installs it: a missing etcd is a broken setup
    server = EtcdServer(**kw)
    try:
        yield server.start()
    finally:
        server.cleanup()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def tls_etcd(pki: Pki) -> Iterator[EtcdServer]:
    yield from _server(pki=pki)


@pytest.fixture
def auth_etcd() -> Iterator[EtcdServer]:
    yield from _server()


def _elector(etcd: EtcdServer, prefix: str, identity: str, **kw: Any) -> LeaderElector:
    e = LeaderElector(ha_config(etcd, prefix, identity=identity, **kw))
    e.start()
    return e


# --- configuration ---------------------------------------------------------------------


def _raw(ha: dict[str, Any]) -> dict[str, Any]:
    group = {**local_group(Path("/tmp/unused")), "provider": {"type": "local"}}
    return {"groups": {"web": group}, "ha": ha}


def test_tls_and_auth_keys_are_checked_all_at_once(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here: a readable file")
    with pytest.raises(ConfigError) as info:
        parse_config(
            _raw(
                {
                    "endpoints": ["http://127.0.0.1:2379"],
                    "ca_file": str(ca),
                    "cert_file": str(ca),
                    "password": "x-secret-x",
                }
            ),
            {},
        )
    errors = info.value.errors
    assert "ha.key_file: is required too: a client certificate is cert_file + key_file" in errors
    assert "ha.username: is required when a password is set (etcd auth)" in errors
    assert any(
        e.startswith("ha.ca_file: is for TLS, but no endpoint is https://") for e in errors
    ), errors
    assert not any("x-secret-x" in e for e in errors)
    with pytest.raises(ConfigError) as info:
        parse_config(
            _raw(
                {
                    "endpoints": ["https://127.0.0.1:2379"],
                    "ca_file": str(tmp_path / "absent.pem"),
                    "username": "scaler",
                }
            ),
            {},
        )
    errors = info.value.errors
    assert any(e.startswith("ha.ca_file: must be the path of a readable file") for e in errors)
    assert "ha.password: is required with username (or password_file) for etcd auth" in errors

    secret = tmp_path / "etcd-password"
    secret.write_text(PASSWORD + "\n")
    ha = parse_config(
        _raw(
            {
                "endpoints": ["https://127.0.0.1:2379"],
                "ca_file": str(ca),
                "username": "scaler",
                "password_file": str(secret),
            }
        ),
        {},
    ).ha
    assert ha is not None and (ha.username, ha.password, ha.ca_file) == (
        "scaler",
        PASSWORD,
        str(ca),
    )
    assert PASSWORD not in repr(ha)
    shown = redacted(parse_config(_raw({"endpoints": ["http://127.0.0.1:2379"]}), {}))
    assert shown["ha"]["password"] is None
    config = parse_config(
        _raw({"endpoints": ["http://127.0.0.1:2379"], "username": "u", "password": PASSWORD}), {}
    )
    assert redacted(config)["ha"]["password"] == "<redacted>"
    assert PASSWORD not in yaml.safe_dump(redacted(config))


# --- TLS with client certificates ---------------------------------------------------------


def test_over_tls_with_a_client_certificate_it_leads_and_without_one_it_is_refused(
    tls_etcd: EtcdServer, pki: Pki
) -> None:
    assert tls_etcd.url.startswith("https://") and tls_etcd.client is not None
    cert, key = tls_etcd.client
    prefix = f"/t-{secrets.token_hex(3)}"
    a = _elector(tls_etcd, prefix, "a", ca_file=str(pki.ca_file), cert_file=str(cert),
                 key_file=str(key))  # fmt: skip
    no_cert = _elector(tls_etcd, prefix, "no-cert", ca_file=str(pki.ca_file))
    no_ca = _elector(tls_etcd, prefix, "no-ca", cert_file=str(cert), key_file=str(key))
    try:
        wait_for("a leading over TLS", a.is_leader, 10)
        assert a.may_act()
        store = EtcdMemoryStore(a, SystemClock(), {"g": 600.0})
        store.save("g", PlannerState())
        assert store.load("g") is not None
        wait_for("the refusals seen", lambda: bool(no_cert.status()["etcd_error"]), 10)
        wait_for("the refusals seen", lambda: bool(no_ca.status()["etcd_error"]), 10)
        assert not no_cert.is_leader() and no_cert.status()["leader"] is None
        assert not no_ca.is_leader()
        # etcd asked for a certificate the client did not have; the other does not trust
        # etcd's certificate (signed by a CA that is not the system's)
        assert "certificate" in no_ca.status()["etcd_error"].lower()
        assert tls_etcd.url in no_cert.status()["etcd_error"]
    finally:
        for e in (a, no_cert, no_ca):
            e.stop()


# --- etcd users -----------------------------------------------------------------------------


def test_with_etcd_users_it_logs_in_leads_and_logs_in_again_after_etcd_restarts(
    auth_etcd: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"/t-{secrets.token_hex(3)}"
    auth_etcd.enable_auth("scaler", PASSWORD, prefix)
    redactor = RedactingFilter()
    with caplog.at_level(logging.INFO, "autoscaler.ha"):
        a = _elector(auth_etcd, prefix, "a", username="scaler", password=PASSWORD)
        wrong = _elector(auth_etcd, prefix, "wrong", username="scaler", password=PASSWORD + "x")
        outside = _elector(auth_etcd, "/elsewhere", "outside", username="scaler",
                           password=PASSWORD)  # fmt: skip
        try:
            wait_for("a leading with a token", a.is_leader, 10)
            token = next(iter(a.etcd._tokens.values()))  # noqa: SLF001
            assert redactor.redact(f"Authorization: {token}") == "Authorization: <redacted>"
            assert secret_registry.redact(f"token={token}") == "token=<redacted>"
            wait_for("the wrong password refused", lambda: bool(wrong.status()["etcd_error"]))
            assert "authentication failed" in wrong.status()["etcd_error"]
            assert not wrong.is_leader()
            wait_for(
                "no permission outside its prefix", lambda: bool(outside.status()["etcd_error"])
            )
            assert "permission denied" in outside.status()["etcd_error"]
            assert not outside.is_leader()
            # etcd's simple tokens live in its memory: after a restart every token is
            # refused ("invalid auth token") and the elector logs in again by itself.
            auth_etcd.stop()
            auth_etcd.start()
            wait_for("a leading again after the restart", lambda: a.is_leader() and (
                next(iter(a.etcd._tokens.values())) != token), 20)  # noqa: SLF001  # fmt: skip
            assert a.may_act()
        finally:
            for e in (a, wrong, outside):
                e.stop()
    assert PASSWORD not in caplog.text
    assert token not in caplog.text
