"""SimpleScaleVM 3.0 users (issue 10): renamed variables, unsupported ones, `check` of an
environment-only configuration, the status document on `/`, and `replica_api` keys
reaching the bridge. The OpenStack end-to-end part is tests/openstack/test_simplescalevm3.py.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from autoscaler.bridge.server import Bridge, BridgeSettings
from autoscaler.compat import simplescalevm
from autoscaler.compat.simplescalevm import config_from_env, looks_like_simplescalevm, raw_config
from autoscaler.config import ConfigError
from autoscaler.config.replica_api import bridge_params
from autoscaler.core.spec import GroupConfig, ProviderConfig
from autoscaler.runtime.exporter import SharedState, serve, wants_json
from autoscaler.runtime.metrics import Metrics
from tests.harness.prometheus import free_port, http_server

REPO = Path(__file__).resolve().parents[1]

# SimpleScaleVM 3.0's variables for its scaled servers, as a 3.0 .env has them.
V3 = {
    "REPLICA_CAPACITY": "2",
    "REPLICA_MIN_AVAILABLE_RESOURCES": "4",
    "OPENSTACK_SCALED_NAME": "gateway-host",
    "OPENSTACK_SCALED_FLAVOR": "b2-7",
    "OPENSTACK_SCALED_IMAGE": "Debian 12",
    "OPENSTACK_SCALED_NETWORK": "Int-Net",
    "OPENSTACK_METADATA_KEY": "group",
    "OPENSTACK_METADATA_SCALED_VALUE": "gateway",
}


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **env},
        cwd=REPO,
    )


# ----------------------------------------------------------------- renamed variables


def test_v3_names_are_honoured(tmp_path):
    cloud_init = tmp_path / "cloud-init.sh"
    cloud_init.write_text("#!/bin/sh\n")
    env = {**V3, "OPENSTACK_SCALED_CLOUD_INIT_FILE": str(cloud_init)}
    (g,) = config_from_env(env).groups
    o = g.provider.options
    assert (o["flavor"], o["image"], o["network"]) == ("b2-7", "Debian 12", "Int-Net")
    assert (o["metadata_key"], o["metadata_value"]) == ("group", "gateway")
    assert o["user_data_file"] == str(cloud_init)
    assert o["name_prefix"] == "gateway-host"  # servers: gateway-host-simplescalevm-<token>


def test_v3_names_alone_mark_a_simplescalevm_environment():
    for name in ("OPENSTACK_SCALED_FLAVOR", "OPENSTACK_METADATA_SCALED_VALUE"):
        assert looks_like_simplescalevm({name: V3[name], "HOME": "/root"})


def test_v2_names_still_work_and_agreeing_names_are_fine():
    v2 = {"OPENSTACK_FLAVOR": "b2-7", "OPENSTACK_METADATA_VALUE": "gateway"}
    (g,) = config_from_env(v2).groups
    assert (g.provider.options["flavor"], g.provider.options["metadata_value"]) == (
        "b2-7",
        "gateway",
    )
    (g,) = config_from_env({**V3, **v2}).groups  # both generations, same values
    assert g.provider.options["flavor"] == "b2-7"
    assert "name_prefix" not in config_from_env(v2).groups[0].provider.options


def test_v3_wins_over_an_empty_v2_name():
    (g,) = config_from_env({**V3, "OPENSTACK_FLAVOR": "", "OPENSTACK_IMAGE": " "}).groups
    assert (g.provider.options["flavor"], g.provider.options["image"]) == ("b2-7", "Debian 12")


def test_both_generations_set_differently_is_an_error_naming_both():
    env = {**V3, "OPENSTACK_FLAVOR": "d2-8", "OPENSTACK_METADATA_VALUE": "scaled"}
    with pytest.raises(ConfigError) as info:
        raw_config(env)
    errors = info.value.errors
    assert len(errors) == 2, errors
    text = "\n".join(errors)
    for fragment in (
        "OPENSTACK_SCALED_FLAVOR ('b2-7'",
        "OPENSTACK_FLAVOR ('d2-8'",
        "OPENSTACK_METADATA_SCALED_VALUE ('gateway'",
        "OPENSTACK_METADATA_VALUE ('scaled'",
    ):
        assert fragment in text


def test_a_v3_server_name_that_nova_names_cannot_hold_is_an_error():
    with pytest.raises(ConfigError, match="OPENSTACK_SCALED_NAME"):
        raw_config({**V3, "OPENSTACK_SCALED_NAME": "my gateway"})


def test_replica_api_keys_of_the_environment_become_explicit():
    env = {**V3, "REPLICA_API_CAPACITY_KEY": "free", "REPLICA_API_TERMINATION_KEY": ""}
    (g,) = config_from_env(env).groups
    assert g.replica_api == {"capacity_key": "free"}  # empty means unset, as elsewhere


# ----------------------------------------------------------------- unsupported variables


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(simplescalevm, "_warned", set())


def test_unsupported_variables_are_warned_once_with_what_to_use(fresh_warnings, caplog):
    env = {
        **V3,
        "ENABLE_AUTOSCALING": "true",
        "OPENSTACK_AUTOSCALER_FLAVOR": "d2-4",
        "OPENSTACK_METADATA_AUTOSCALER_VALUE": "autoscaler",
        "AUTOSCALING_INTERVAL": "30",
    }
    with caplog.at_level(logging.WARNING, logger="autoscaler.compat.simplescalevm"):
        first = simplescalevm.warn_unsupported(env)
        second = simplescalevm.warn_unsupported(env)
    assert first == second and len(first) == 2
    records = [r.getMessage() for r in caplog.records]
    assert len(records) == 2, records  # once per process, not once per call
    self_scaling, autoscaling = records
    assert self_scaling.startswith(
        "ENABLE_AUTOSCALING, OPENSTACK_AUTOSCALER_FLAVOR, OPENSTACK_METADATA_AUTOSCALER_VALUE:"
    )
    assert "not supported" in self_scaling and "run one autoscaler" in self_scaling
    assert autoscaling.startswith("AUTOSCALING_INTERVAL:")
    assert "AUTOSCALER_INTERVAL_SECONDS" in autoscaling


def test_disabled_self_scaling_asks_for_nothing(fresh_warnings):
    assert simplescalevm.unsupported_warnings({**V3, "ENABLE_AUTOSCALING": "false"}) == []
    assert simplescalevm.unsupported_warnings({**V3, "OPENSTACK_AUTOSCALER_NAME": ""}) == []


def test_the_daemon_warns_in_its_log_even_with_a_configuration_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "prometheus: {url: 'http://127.0.0.1:1', timeout_seconds: 1}\n"
        f"groups: {{web: {{provider: {{type: local, run_dir: '{tmp_path}/run'}}, min: 0, max: 1,"
        " replica_capacity: 1, policies: [{type: headroom, min_available: 0}]}}\n"
    )
    r = _cli("once", "--dry-run", "--config", str(path), env={"ENABLE_AUTOSCALING": "true"})
    assert "ENABLE_AUTOSCALING: SimpleScaleVM 3.0's self-scaling" in r.stderr
    assert r.stderr.count("ENABLE_AUTOSCALING") == 1


# ----------------------------------------------------------------- autoscaler check


def test_check_validates_an_environment_only_configuration():
    r = _cli("check", env=V3)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "OK: 1 group (simplescalevm) from SimpleScaleVM environment variables\n"
    r = _cli("check", "--env", "--show", env=V3)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout.split("\n", 1)[1])
    assert shown["groups"][0]["provider"]["options"]["flavor"] == "b2-7"


def test_check_env_reports_every_error_and_warning():
    env = {**V3, "OPENSTACK_FLAVOR": "d2-8", "REPLICA_CAPACITY": "zero", "ENABLE_AUTOSCALING": "1"}
    r = _cli("check", "--env", env=env)
    assert r.returncode == 2
    assert "SimpleScaleVM environment variables: invalid configuration, 2 errors" in r.stderr
    assert "OPENSTACK_SCALED_FLAVOR" in r.stderr and "REPLICA_CAPACITY" in r.stderr
    ok = _cli("check", "--env", env={**V3, "ENABLE_AUTOSCALING": "true"})
    assert ok.returncode == 0
    assert ok.stderr.startswith("warning: ENABLE_AUTOSCALING: ")


def test_check_env_ignores_autoscaler_config_and_refuses_a_file_too(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups: [\n")
    r = _cli("check", "--env", env={**V3, "AUTOSCALER_CONFIG": str(bad)})
    assert r.returncode == 0, r.stderr
    r = _cli("check", env={**V3, "AUTOSCALER_CONFIG": str(bad)})  # the file, as `run` reads
    assert r.returncode == 2 and "bad.yaml" in r.stderr
    r = _cli("check", str(bad), "--env", env=V3)
    assert r.returncode == 2 and "not both" in r.stderr


def test_check_without_anything_says_how():
    r = _cli("check", env={})
    assert r.returncode == 2 and "AUTOSCALER_CONFIG" in r.stderr and "SimpleScaleVM" in r.stderr


def test_check_help_describes_the_environment_mode():
    r = _cli("check", "--help", env={})
    assert r.returncode == 0 and "--env" in r.stdout and "SimpleScaleVM" in r.stdout


# ----------------------------------------------------------------- GET / for JSON clients


@pytest.fixture
def exporter() -> Iterator[tuple[str, SharedState]]:
    state = SharedState(5)
    server, stop = serve(f"127.0.0.1:{free_port()}", Metrics(), state)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        stop()


def test_root_answers_simplescalevm_status_to_json_clients(exporter):
    url, state = exporter
    for accept in (None, "application/json", "*/*", "application/json, text/plain;q=0.5"):
        headers = {} if accept is None else {"Accept": accept}
        if accept is None:  # requests sends */* unless told otherwise: really send none
            r = requests.get(url + "/", headers={"Accept": None}, timeout=5)  # type: ignore[dict-item]
        else:
            r = requests.get(url + "/", headers=headers, timeout=5)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json", accept
        assert r.json() == {"status": 1, "isMaster": True}
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    r = requests.get(url + "/", headers={"Accept": browser}, timeout=5)
    # a browser gets the operator console (issue #13), which links the endpoints
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "/metrics" in r.text and "/status" in r.text
    with state.lock:
        state.is_master = False  # what a standby would answer, once there is HA
    assert requests.get(url + "/", timeout=5).json() == {"status": 1, "isMaster": False}


def test_wants_json():
    assert wants_json(None) and wants_json("") and wants_json("*/*")
    assert wants_json("text/html;q=0.4, application/json")
    assert not wants_json("text/html")
    assert wants_json("text/html;q=0")  # refused outright


# ----------------------------------------------------------------- replica_api -> bridge


def _group(replica_api: dict[str, str]) -> GroupConfig:
    return GroupConfig(
        name="web",
        provider=ProviderConfig(type="local", options={}),
        min=1,
        max=3,
        replica_capacity=4.0,
        policies=(),
        via_bridge=True,
        replica_api=replica_api,
    )


def test_bridge_params_carry_only_the_keys_the_group_sets():
    assert bridge_params(_group({})) == {}
    assert bridge_params(_group({"port": "9000", "capacity_key": "free"})) == {
        "__param_capacity_key": "free"
    }
    assert bridge_params(_group({"capacity_key": "", "termination_key": "stop"})) == {
        "__param_termination_key": "stop",
        "__param_skip": "capacity",
    }


@pytest.fixture
def json_replica() -> Iterator[str]:
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps({"free": 3, "stop": False}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with http_server(Handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture
def bridge() -> Iterator[str]:
    b = Bridge(BridgeSettings(timeout_seconds=2), listen=f"127.0.0.1:{free_port()}").start()
    try:
        yield f"http://{b.address}"
    finally:
        b.stop()


def test_bridge_probe_honours_keys_and_skip(json_replica, bridge):
    def probe(**params: str) -> str:
        r = requests.get(f"{bridge}/probe", params={"target": json_replica, **params}, timeout=5)
        assert r.status_code == 200
        return r.text

    assert "replica_probe_success 0" in probe()  # default keys: missing_key
    text = probe(capacity_key="free", termination_key="stop")
    assert "replica_probe_success 1" in text and "replica_capacity 3" in text
    assert "replica_termination 0" in text
    text = probe(termination_key="stop", skip="capacity")
    assert "replica_probe_success 1" in text and "replica_capacity " not in text
    r = requests.get(f"{bridge}/probe", params={"target": json_replica, "skip": "x"}, timeout=5)
    assert r.status_code == 400
