"""docker-compose.openstack.yml: every usual OS_* variable reaches the autoscaler, and a
missing clouds.yaml fails `up` instead of becoming an empty directory.

Read as Compose reads it (YAML, the compose-spec fields); the "no clouds.yaml" advice
(CLOUDS_YAML=/dev/null with OS_* variables) is checked with the real openstacksdk
against the OpenStack emulator.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.openstack.emulator import OpenStackEmulator

REPO = Path(__file__).resolve().parents[1]
OVERRIDE = REPO / "docker-compose.openstack.yml"

# What an openrc file or a keystone/application-credential setup exports.
USUAL_OS_VARIABLES = {
    "OS_CLOUD",
    "OS_AUTH_URL",
    "OS_AUTH_TYPE",
    "OS_USERNAME",
    "OS_PASSWORD",
    "OS_PROJECT_NAME",
    "OS_PROJECT_ID",
    "OS_USER_DOMAIN_NAME",
    "OS_USER_DOMAIN_ID",
    "OS_PROJECT_DOMAIN_NAME",
    "OS_PROJECT_DOMAIN_ID",
    "OS_REGION_NAME",
    "OS_INTERFACE",
    "OS_IDENTITY_API_VERSION",
    "OS_CACERT",
    "OS_APPLICATION_CREDENTIAL_ID",
    "OS_APPLICATION_CREDENTIAL_NAME",
    "OS_APPLICATION_CREDENTIAL_SECRET",
}


def autoscaler() -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load(OVERRIDE.read_text())["services"]["autoscaler"]
    return service


def test_every_usual_os_variable_is_passed_through_by_name() -> None:
    env = autoscaler()["environment"]
    assert isinstance(env, list), "list form: NAME alone passes the shell's value through"
    missing = USUAL_OS_VARIABLES - set(env)
    assert not missing, f"not passed to the autoscaler: {sorted(missing)}"
    for entry in env:
        # NAME only: never a value (or a secret) written in the file
        assert re.fullmatch(r"OS_[A-Z_]+", entry), entry
    assert len(env) == len(set(env)), "a variable listed twice"


def test_clouds_yaml_is_a_bind_that_never_creates_its_source() -> None:
    (mount,) = [
        v
        for v in autoscaler()["volumes"]
        if isinstance(v, dict) and v.get("target") == "/etc/openstack/clouds.yaml"
    ]
    # The short syntax makes Docker create a missing source as an empty directory.
    assert mount["type"] == "bind"
    assert mount["bind"]["create_host_path"] is False
    assert mount["read_only"] is True
    assert re.fullmatch(r"\$\{CLOUDS_YAML:-[^}]+\}", mount["source"]), mount["source"]
    short = [v for v in autoscaler()["volumes"] if isinstance(v, str) and "clouds.yaml" in v]
    assert short == [], "clouds.yaml must not also be mounted with the short syntax"


def test_override_header_says_what_to_do_without_a_clouds_yaml() -> None:
    header = OVERRIDE.read_text().split("services:", 1)[0]
    assert "CLOUDS_YAML=/dev/null" in header
    assert "does not exist" in header


@pytest.fixture
def emu():
    e = OpenStackEmulator().start()
    try:
        yield e
    finally:
        e.stop()


def test_dev_null_clouds_yaml_with_os_variables_connects(emu, monkeypatch) -> None:
    """The advice of the header: no clouds.yaml (an empty file), only OS_* variables."""
    import openstack.config

    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)
    for key, value in emu.os_env().items():
        monkeypatch.setenv(key, value)
    config = openstack.config.OpenStackConfig(config_files=["/dev/null"], vendor_files=[])
    conn = openstack.connection.Connection(config=config.get_one(), api_timeout=10)
    try:
        assert [f.name for f in conn.compute.flavors()] == ["m1.tiny", "m1.small"]
    finally:
        conn.close()
