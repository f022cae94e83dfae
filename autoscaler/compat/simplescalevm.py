"""Run from SimpleScaleVM's environment variables alone, as SimpleScaleVM did.

A deployment that sets only SimpleScaleVM's variables (a `.env` file, a compose file)
gets one group of OpenStack servers kept at `REPLICA_MIN_AVAILABLE_RESOURCES` free
slots with the headroom policy, replicas read through the bridge (their JSON API), and
a safe maximum SimpleScaleVM did not have. `raw_config` builds the same document a
YAML file would hold, so validation and error messages are the normal ones; docs/
openstack.md has the table of every variable.

The `OS_*` variables are not copied anywhere: openstacksdk reads them itself, so
secrets stay in the environment and never enter the configuration or `/status`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from autoscaler.config import Config, ConfigError
from autoscaler.providers.registry import parse_config

GROUP = "simplescalevm"
DEFAULT_MAX_REPLICAS = 10
SIMPLESCALEVM_INTERVAL_SECONDS = 60  # its scheduler ran once a minute
MARKERS = (
    "PROVIDER",
    "REPLICA_CAPACITY",
    "REPLICA_MIN_AVAILABLE_RESOURCES",
    "EXTERNAL_ADDRESS_MANAGEMENT",
    "OPENSTACK_FLAVOR",
    "OPENSTACK_IMAGE",
    "OPENSTACK_NETWORK",
    "OPENSTACK_METADATA_KEY",
    "OPENSTACK_METADATA_VALUE",
)
# SimpleScaleVM's own defaults (its .env.template and settings).
DEFAULTS = {
    "APP_HOST": "0.0.0.0",
    "APP_PORT": "8000",
    "PROVIDER": "openstack",
    "REPLICA_CAPACITY": "1",
    "REPLICA_MIN_AVAILABLE_RESOURCES": "3",
    "REPLICA_API_PORT": "8080",
    "EXTERNAL_ADDRESS_MANAGEMENT": "false",
    "OPENSTACK_FLAVOR": "d2-8",
    "OPENSTACK_IMAGE": "Debian 11",
    "OPENSTACK_NETWORK": "Ext-Net",
    "OPENSTACK_IP_VERSION": "4",
    "OPENSTACK_METADATA_KEY": "group",
    "OPENSTACK_METADATA_VALUE": "scaled",
    "OPENSTACK_FLOATING_IP_DESCRIPTION": "server",
    "AUTOSCALER_BRIDGE_ADDRESS": "127.0.0.1:9101",
}


def looks_like_simplescalevm(env: Mapping[str, str]) -> bool:
    """True when the environment carries SimpleScaleVM's configuration."""
    return any(env.get(name) for name in MARKERS)


def _get(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    return value if value.strip() else DEFAULTS.get(name, "")  # empty means unset


def _number(env: Mapping[str, str], name: str, errors: list[str]) -> float:
    text = _get(env, name)
    try:
        value = float(text)
    except ValueError:
        errors.append(f"{name}: must be a number (got {text!r})")
        return math.nan
    if not math.isfinite(value) or value <= 0:
        errors.append(f"{name}: must be a number > 0 (got {text!r})")
    return value


def _bool(env: Mapping[str, str], name: str, errors: list[str]) -> bool:
    text = _get(env, name).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    errors.append(f"{name}: must be true or false (got {text!r})")
    return False


def _int(env: Mapping[str, str], name: str, errors: list[str], allowed: str) -> int:
    text = _get(env, name)
    try:
        return int(text)
    except ValueError:
        errors.append(f"{name}: must be {allowed} (got {text!r})")
        return 0


def raw_config(env: Mapping[str, str]) -> dict[str, Any]:
    """The configuration document equivalent to SimpleScaleVM's variables.

    Raises ConfigError for values SimpleScaleVM's variables cannot hold (each message
    names the variable); everything else is checked by `parse_config`.
    """
    errors: list[str] = []
    provider = _get(env, "PROVIDER")
    if provider != "openstack":
        errors.append(f"PROVIDER: must be openstack (got {provider!r})")
    capacity = _number(env, "REPLICA_CAPACITY", errors)
    min_available = _number(env, "REPLICA_MIN_AVAILABLE_RESOURCES", errors)
    floating = _bool(env, "EXTERNAL_ADDRESS_MANAGEMENT", errors)
    ip_version = _int(env, "OPENSTACK_IP_VERSION", errors, "4 or 6")
    port = _int(env, "REPLICA_API_PORT", errors, "an integer in 1..65535")
    app_port = _int(env, "APP_PORT", errors, "an integer in 1..65535")
    max_replicas = DEFAULT_MAX_REPLICAS
    if env.get("AUTOSCALER_MAX_REPLICAS", "").strip():
        max_replicas = _int(env, "AUTOSCALER_MAX_REPLICAS", errors, "an integer >= 1")
    if errors:
        raise ConfigError(errors, "environment")
    # SimpleScaleVM always kept enough replicas for min_available free slots, even idle.
    minimum = math.ceil(min_available / capacity)
    options: dict[str, Any] = {
        "type": "openstack",
        "flavor": _get(env, "OPENSTACK_FLAVOR"),
        "image": _get(env, "OPENSTACK_IMAGE"),
        "network": _get(env, "OPENSTACK_NETWORK"),
        "ip_version": ip_version,
        "metadata_key": _get(env, "OPENSTACK_METADATA_KEY"),
        "metadata_value": _get(env, "OPENSTACK_METADATA_VALUE"),
        "metrics_port": port,
        "floating_ips": {
            "enabled": floating,
            "description": _get(env, "OPENSTACK_FLOATING_IP_DESCRIPTION"),
        },
    }
    if _get(env, "OPENSTACK_KEYPAIR"):
        options["key_name"] = _get(env, "OPENSTACK_KEYPAIR")
    if _get(env, "OPENSTACK_CLOUD_INIT_FILE"):
        options["user_data_file"] = _get(env, "OPENSTACK_CLOUD_INIT_FILE")
    if env.get("OS_CLOUD"):
        options["cloud"] = env["OS_CLOUD"]
    return {
        "interval_seconds": SIMPLESCALEVM_INTERVAL_SECONDS,
        "listen": f"{_get(env, 'APP_HOST')}:{app_port}",
        "bridge_address": _get(env, "AUTOSCALER_BRIDGE_ADDRESS"),
        "groups": {
            GROUP: {
                "provider": options,
                "min": minimum,
                "max": max(max_replicas, minimum),
                "replica_capacity": capacity,
                "policies": [{"type": "headroom", "min_available": min_available}],
                "via_bridge": True,
            }
        },
    }


def config_from_env(env: Mapping[str, str]) -> Config:
    """A validated Config from SimpleScaleVM's variables (AUTOSCALER_* overrides apply)."""
    return parse_config(raw_config(env), env, source="environment (SimpleScaleVM variables)")
