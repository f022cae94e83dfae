"""A configuration made only of SimpleScaleVM's environment variables runs as it did."""

from __future__ import annotations

import base64
import json
import os

import pytest

from autoscaler.compat.simplescalevm import config_from_env, looks_like_simplescalevm, raw_config
from autoscaler.config import ConfigError, redacted
from autoscaler.core.spec import HeadroomPolicyConfig
from autoscaler.providers import registry
from tests.openstack.emulator import OpenStackEmulator

# SimpleScaleVM's .env.template, as its users have it.
TEMPLATE = {
    "APP_HOST": "0.0.0.0",
    "APP_PORT": "8000",
    "REPLICA_CAPACITY": "1",
    "REPLICA_MIN_AVAILABLE_RESOURCES": "3",
    "REPLICA_API_PROTOCOL": "http",
    "REPLICA_API_PORT": "8080",
    "REPLICA_API_PATH": "/",
    "REPLICA_API_CAPACITY_KEY": "capacity",
    "REPLICA_API_TERMINATION_KEY": "termination",
    "EXTERNAL_ADDRESS_MANAGEMENT": "false",
    "PROVIDER": "openstack",
    "OS_AUTH_URL": "https://auth.example.net/v3",
    "OS_USERNAME": "user",
    "OS_PASSWORD": "Sup3r-Secret-Value",
    "OS_REGION_NAME": "SBG7",
    "OS_PROJECT_DOMAIN_ID": "default",
    "OS_USER_DOMAIN_NAME": "Default",
    "OS_PROJECT_ID": "p1",
    "OS_PROJECT_NAME": "proj",
    "OS_INTERFACE": "public",
    "OS_IDENTITY_API_VERSION": "3",
    "OPENSTACK_FLAVOR": "d2-8",
    "OPENSTACK_IMAGE": "Debian 11",
    "OPENSTACK_IP_VERSION": "4",
    "OPENSTACK_NETWORK": "Ext-Net",
    "OPENSTACK_METADATA_KEY": "group",
    "OPENSTACK_METADATA_VALUE": "scaled",
    "OPENSTACK_FLOATING_IP_DESCRIPTION": "server",
    "OPENSTACK_KEYPAIR": "",
    "OPENSTACK_CLOUD_INIT_FILE": "",
}


def test_template_maps_to_one_headroom_group():
    assert looks_like_simplescalevm(TEMPLATE)
    assert not looks_like_simplescalevm({"OS_AUTH_URL": "x", "HOME": "/root"})
    cfg = config_from_env(TEMPLATE)
    (g,) = cfg.groups
    assert g.name == "simplescalevm" and g.via_bridge
    assert (g.min, g.max, g.replica_capacity) == (3, 10, 1)
    assert g.policies == (HeadroomPolicyConfig(name="headroom", min_available=3),)
    assert cfg.listen == "0.0.0.0:8000" and cfg.interval_seconds == 60
    o = g.provider.options
    assert g.provider.type == "openstack"
    assert (o["flavor"], o["image"], o["network"]) == ("d2-8", "Debian 11", "Ext-Net")
    assert (o["metadata_key"], o["metadata_value"], o["metrics_port"]) == ("group", "scaled", 8080)
    assert o["floating_ips"] == {"enabled": False, "description": "server"}
    assert "key_name" not in o and "user_data_file" not in o  # empty means unset
    assert "auth" not in o  # OS_* stay in the environment, read by openstacksdk


def test_secrets_stay_out_of_the_configuration():
    cfg = config_from_env(TEMPLATE)
    assert "Sup3r-Secret-Value" not in json.dumps(redacted(cfg)) + repr(cfg)


def test_capacity_and_safe_max():
    env = {**TEMPLATE, "REPLICA_CAPACITY": "4", "REPLICA_MIN_AVAILABLE_RESOURCES": "10"}
    (g,) = config_from_env(env).groups
    assert (g.min, g.max) == (3, 10)  # ceil(10 / 4) replicas kept even when idle
    (g,) = config_from_env({**env, "AUTOSCALER_MAX_REPLICAS": "25"}).groups
    assert g.max == 25
    env = {**TEMPLATE, "REPLICA_MIN_AVAILABLE_RESOURCES": "40"}
    (g,) = config_from_env(env).groups
    assert (g.min, g.max) == (40, 40)  # max never below what SimpleScaleVM kept


def test_defaults_are_simplescalevm_defaults():
    (g,) = config_from_env({"PROVIDER": "openstack"}).groups
    o = g.provider.options
    assert (o["flavor"], o["image"], o["network"], o["ip_version"]) == (
        "d2-8",
        "Debian 11",
        "Ext-Net",
        4,
    )
    assert (g.min, g.replica_capacity) == (3, 1)


def test_every_bad_variable_reported_at_once():
    env = {
        **TEMPLATE,
        "PROVIDER": "aws",
        "REPLICA_CAPACITY": "zero",
        "EXTERNAL_ADDRESS_MANAGEMENT": "maybe",
        "OPENSTACK_IP_VERSION": "five",
    }
    with pytest.raises(ConfigError) as info:
        raw_config(env)
    names = " ".join(info.value.errors)
    for var in (
        "PROVIDER",
        "REPLICA_CAPACITY",
        "EXTERNAL_ADDRESS_MANAGEMENT",
        "OPENSTACK_IP_VERSION",
    ):
        assert var in names
    with pytest.raises(ConfigError) as info:
        config_from_env({**TEMPLATE, "OPENSTACK_IP_VERSION": "5"})
    assert "ip_version" in str(info.value) and "4, 6" in str(info.value)


def test_env_only_configuration_drives_the_emulator(monkeypatch, tmp_path):
    """The whole path: SimpleScaleVM variables -> Config -> provider -> a real HTTP cloud."""
    cloud_init = tmp_path / "cloud-init.sh"
    cloud_init.write_text("#!/bin/sh\necho hello\n")
    emu = OpenStackEmulator(build_seconds=0.1).start()
    try:
        for k in list(os.environ):
            if k.startswith("OS_"):
                monkeypatch.delenv(k)
        env = {
            **TEMPLATE,
            **emu.os_env(),
            "OPENSTACK_FLAVOR": "m1.small",
            "OPENSTACK_IMAGE": "cirros",
            "OPENSTACK_NETWORK": "private",
            "OPENSTACK_KEYPAIR": "mykey",
            "OPENSTACK_CLOUD_INIT_FILE": str(cloud_init),
            "EXTERNAL_ADDRESS_MANAGEMENT": "true",
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        cfg = config_from_env(env)
        (g,) = cfg.groups
        assert g.provider.options["floating_ips"]["enabled"] is True
        provider = registry.build_provider(g, cfg)
        try:
            assert len(provider.create(1).succeeded) == 1
            (rep,) = provider.list()
            assert rep.metadata["group"] == "scaled"
            (server,) = emu.live_servers()
            assert server.key_name == "mykey" and server.flavor["name"] == "m1.small"
            assert base64.b64decode(server.user_data) == cloud_init.read_bytes()
        finally:
            provider.close()
    finally:
        emu.stop()
