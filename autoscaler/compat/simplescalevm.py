"""Run from SimpleScaleVM's environment variables alone, as SimpleScaleVM did.

A deployment that sets only SimpleScaleVM's variables (a `.env` file, a compose file)
gets one group of OpenStack servers kept at `REPLICA_MIN_AVAILABLE_RESOURCES` free
slots with the headroom policy, replicas read through the bridge (their JSON API), and
a safe maximum SimpleScaleVM did not have. `raw_config` builds the same document a
YAML file would hold, so validation and error messages are the normal ones; docs/
openstack.md has the table of every variable.

SimpleScaleVM 3.0 renamed the template variables of the scaled servers
(`OPENSTACK_SCALED_*`, `OPENSTACK_METADATA_SCALED_VALUE`); both generations are read
(`RENAMED`): the 3.0 name is used when set, and a 2.0 and a 3.0 name set to different
values is an error, never a silent pick. Variables of features we do not have
(`UNSUPPORTED`: 3.0's self-scaling autoscaler VMs) are never silently ignored either:
`warn_unsupported` says, once per process, what to use instead.

The `OS_*` variables are not copied anywhere: openstacksdk reads them itself, so
secrets stay in the environment and never enter the configuration or `/status`.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Mapping
from typing import Any

from autoscaler.config import Config, ConfigError
from autoscaler.providers.registry import parse_config

log = logging.getLogger("autoscaler.compat.simplescalevm")

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
    "OPENSTACK_SCALED_NAME",
    "OPENSTACK_SCALED_FLAVOR",
    "OPENSTACK_SCALED_IMAGE",
    "OPENSTACK_SCALED_NETWORK",
    "OPENSTACK_METADATA_SCALED_VALUE",
)
# SimpleScaleVM 3.0 name -> its 2.0 name (None: new in 3.0, no 2.0 spelling).
RENAMED: dict[str, str | None] = {
    "OPENSTACK_SCALED_NAME": None,
    "OPENSTACK_SCALED_FLAVOR": "OPENSTACK_FLAVOR",
    "OPENSTACK_SCALED_IMAGE": "OPENSTACK_IMAGE",
    "OPENSTACK_SCALED_NETWORK": "OPENSTACK_NETWORK",
    "OPENSTACK_SCALED_CLOUD_INIT_FILE": "OPENSTACK_CLOUD_INIT_FILE",
    "OPENSTACK_METADATA_SCALED_VALUE": "OPENSTACK_METADATA_VALUE",
}
_NAME_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}")
# Variables of SimpleScaleVM features this autoscaler does not have: (matches, advice).
_SELF_SCALING = (
    "SimpleScaleVM 3.0's self-scaling (servers running the autoscaler itself, with a "
    "master election) is not supported and these are ignored: run one autoscaler as a "
    "service instead (docker-compose.openstack.yml, deploy/); there is no high "
    "availability yet, so that instance always acts (GET / answers isMaster: true)"
)
UNSUPPORTED: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"ENABLE_AUTOSCALING|OPENSTACK_AUTOSCALER_\w+|OPENSTACK_METADATA_AUTOSCALER_VALUE"
        ),
        _SELF_SCALING,
    ),
    (
        re.compile(r"AUTOSCALING_\w+"),
        "SimpleScaleVM's AUTOSCALING_* settings are not read and these are ignored: scale "
        "the servers with REPLICA_MIN_AVAILABLE_RESOURCES, AUTOSCALER_MAX_REPLICAS and "
        "AUTOSCALER_INTERVAL_SECONDS, or a configuration file (docs/configuration.md)",
    ),
)
_warned: set[str] = set()
_warned_lock = threading.Lock()
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


def _set(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "")
    return value if value.strip() else None


def _renamed(env: Mapping[str, str], new: str, errors: list[str]) -> str:
    """The value of a setting SimpleScaleVM 3.0 renamed: the 3.0 name when set, else the
    2.0 name, else the default; both set to different values is an error."""
    old = RENAMED[new]
    new_value = _set(env, new)
    old_value = _set(env, old) if old else None
    if new_value is not None and old_value is not None and new_value != old_value:
        errors.append(
            f"{new} ({new_value!r}, SimpleScaleVM 3.0) and {old} ({old_value!r}, 2.0) name the "
            f"same setting with different values: keep one"
        )
    if new_value is not None:
        return new_value
    return _get(env, old) if old else ""


def unsupported_variables(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(advice, names) for each family of set SimpleScaleVM variables we do not support."""
    out = []
    taken: set[str] = set()
    for pattern, advice in UNSUPPORTED:
        names = sorted(
            n
            for n, v in env.items()
            if n not in taken
            and pattern.fullmatch(n)
            and v.strip()
            # ENABLE_AUTOSCALING=false asks for nothing we lack
            and not (n == "ENABLE_AUTOSCALING" and v.strip().lower() in ("false", "0", "no"))
        )
        taken.update(names)
        if names:
            out.append((advice, ", ".join(names)))
    return out


def unsupported_warnings(env: Mapping[str, str]) -> list[str]:
    """One message per family of set SimpleScaleVM variables we do not support."""
    return [f"{names}: {advice}" for advice, names in unsupported_variables(env)]


def warn_unsupported(env: Mapping[str, str]) -> list[str]:
    """Log `unsupported_warnings` once per process (a daemon, a test run); returns them."""
    messages = unsupported_warnings(env)
    for message in messages:
        with _warned_lock:
            if message in _warned:
                continue
            _warned.add(message)
        log.warning("%s", message)
    return messages


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
    flavor = _renamed(env, "OPENSTACK_SCALED_FLAVOR", errors)
    image = _renamed(env, "OPENSTACK_SCALED_IMAGE", errors)
    network = _renamed(env, "OPENSTACK_SCALED_NETWORK", errors)
    cloud_init = _renamed(env, "OPENSTACK_SCALED_CLOUD_INIT_FILE", errors)
    metadata_value = _renamed(env, "OPENSTACK_METADATA_SCALED_VALUE", errors)
    name = _renamed(env, "OPENSTACK_SCALED_NAME", errors)
    if name and not _NAME_PREFIX.fullmatch(name):
        errors.append(
            f"OPENSTACK_SCALED_NAME: letters, digits, '.', '_', '-' only, at most 41 "
            f"characters (got {name!r}); servers are named <name>-{GROUP}-<token>"
        )
    max_replicas = DEFAULT_MAX_REPLICAS
    if env.get("AUTOSCALER_MAX_REPLICAS", "").strip():
        max_replicas = _int(env, "AUTOSCALER_MAX_REPLICAS", errors, "an integer >= 1")
    if errors:
        raise ConfigError(errors, "environment")
    # SimpleScaleVM always kept enough replicas for min_available free slots, even idle.
    minimum = math.ceil(min_available / capacity)
    options: dict[str, Any] = {
        "type": "openstack",
        "flavor": flavor,
        "image": image,
        "network": network,
        "ip_version": ip_version,
        "metadata_key": _get(env, "OPENSTACK_METADATA_KEY"),
        "metadata_value": metadata_value,
        "metrics_port": port,
        "floating_ips": {
            "enabled": floating,
            "description": _get(env, "OPENSTACK_FLOATING_IP_DESCRIPTION"),
        },
    }
    if _get(env, "OPENSTACK_KEYPAIR"):
        options["key_name"] = _get(env, "OPENSTACK_KEYPAIR")
    if cloud_init:
        options["user_data_file"] = cloud_init
    if name:
        options["name_prefix"] = name
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
                # Explicit, so the bridge reads these keys even when it runs without
                # SimpleScaleVM's environment (they reach it as /probe parameters).
                "replica_api": {
                    key: env[f"REPLICA_API_{key.upper()}"]
                    for key in ("capacity_key", "termination_key")
                    if _set(env, f"REPLICA_API_{key.upper()}")
                },
            }
        },
    }


def config_from_env(env: Mapping[str, str]) -> Config:
    """A validated Config from SimpleScaleVM's variables (AUTOSCALER_* overrides apply)."""
    return parse_config(raw_config(env), env, source="environment (SimpleScaleVM variables)")
