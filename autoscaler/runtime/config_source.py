"""Where the configuration comes from, the same way for `run`, `once` and `check`.

1. a file: `--config FILE` (`check FILE`), else `$AUTOSCALER_CONFIG`;
2. else the environment alone: SimpleScaleVM's variables describe one OpenStack group
   (autoscaler/compat/simplescalevm.py), or ScaleIt's describe the app it scales
   (autoscaler/compat/scaleit.py; SimpleScaleVM's win when both are set). `check --env`
   asks for the environment explicitly.

SimpleScaleVM variables we do not support are warned about in both cases: a user moving
from SimpleScaleVM may keep them in a `.env` file beside a configuration file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from autoscaler.compat import scaleit
from autoscaler.compat.simplescalevm import (
    config_from_env,
    looks_like_simplescalevm,
    unsupported_warnings,
)
from autoscaler.config import Config
from autoscaler.providers.registry import load_config

ENV_SOURCE = "SimpleScaleVM environment variables"
SCALEIT_SOURCE = "ScaleIt environment variables"
NO_CONFIG = (
    "no configuration: pass a configuration file (--config FILE; `check FILE`), set "
    "AUTOSCALER_CONFIG, or set SimpleScaleVM's variables (REPLICA_CAPACITY, OPENSTACK_*, ...) "
    "or ScaleIt's (APP_SERVICE_URL, SCALE_METRIC, ..., or AUTOSCALER_COMPAT=scaleit)"
)


def _scaleit(env: Mapping[str, str]) -> bool:
    return scaleit.looks_like_scaleit(env) and not looks_like_simplescalevm(env)


class NoConfiguration(Exception):
    """Neither a file nor SimpleScaleVM's variables were given."""


@dataclass(frozen=True)
class Loaded:
    config: Config
    source: str  # the file, or ENV_SOURCE
    warnings: tuple[str, ...]  # unsupported variables that are set, with what to use instead


def describe(path: str | None, env: Mapping[str, str], *, env_only: bool = False) -> str:
    """The source `load` would read, for messages (also when loading fails)."""
    if not env_only and (path or env.get("AUTOSCALER_CONFIG")):
        return path or env["AUTOSCALER_CONFIG"]
    return SCALEIT_SOURCE if _scaleit(env) else ENV_SOURCE


def load(path: str | None, env: Mapping[str, str], *, env_only: bool = False) -> Loaded:
    """The validated configuration; raises ConfigError, or NoConfiguration."""
    warnings = tuple(unsupported_warnings(env))
    if not env_only:
        path = path or env.get("AUTOSCALER_CONFIG") or None
        if path:
            return Loaded(load_config(Path(path), env), path, warnings)
    if _scaleit(env):
        # A drop-in for ScaleIt: its six variables alone describe the app's group.
        return Loaded(scaleit.config_from_env(env), SCALEIT_SOURCE, warnings)
    if env_only or looks_like_simplescalevm(env):
        return Loaded(config_from_env(env), ENV_SOURCE, warnings)
    raise NoConfiguration(NO_CONFIG)
