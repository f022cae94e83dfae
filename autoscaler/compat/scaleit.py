"""Run from ScaleIt's environment variables alone, as ScaleIt did.

ScaleIt reads `GET {APP_SERVICE_URL}:{APP_SERVICE_PORT}/app/status` every
`SCALE_RESOLUTION_TIME` seconds and, when |cpu - SCALE_METRIC| > SCALE_TOLERANCE, sends
`PUT /app/replicas` with ceil(replicas * cpu / SCALE_METRIC), at least 1. Here the same
variables give one group `scaleit`: the `http` provider on those two endpoints, a target
policy with an absolute tolerance on the app's cpu (read from Prometheus, which scrapes
the status through `autoscaler bridge --metric app_cpu_high_priority=cpu.highPriority`),
and what ScaleIt lacked: a maximum, damping on scale-down, and holding on missing data
(no cpu sample or a failed read never changes the count). Metrics are served on :8000
with ScaleIt's names. `raw_config` builds the document a YAML file would hold, so
validation and error messages are the normal ones; docs/scaleit.md has the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from autoscaler.config import Config, ConfigError
from autoscaler.providers.registry import parse_config

GROUP = "scaleit"
MODE_ENV = "AUTOSCALER_COMPAT"  # "scaleit" selects this mode even with every default
MARKERS = (
    "APP_SERVICE_URL",
    "APP_SERVICE_PORT",
    "SCALE_RESOLUTION_TIME",
    "SCALE_METRIC",
    "SCALE_TOLERANCE",
)
# ScaleIt's own defaults.
DEFAULTS = {
    "APP_SERVICE_URL": "http://localhost",
    "APP_SERVICE_PORT": "8123",
    "SCALE_RESOLUTION_TIME": "5",
    "SCALE_METRIC": "0.80",
    "SCALE_TOLERANCE": "0.10",
    "LOG_LEVEL": "INFO",
    # Ours: what ScaleIt did not have.
    "AUTOSCALER_LISTEN": "0.0.0.0:8000",
    "AUTOSCALER_MAX_REPLICAS": "100",
    "AUTOSCALER_SCALEIT_QUERY": f'max by (group) (app_cpu_high_priority{{group="{GROUP}"}})',
}
STATUS_PATH = "/app/status"
REPLICAS_PATH = "/app/replicas"
# Scale-down waits this many periods of lower cpu (the highest wins): one dip in a noisy
# cpu reading must not remove replicas that the next period needs again.
STABILIZATION_PERIODS = 6
_LEVELS = {"warn": "warning", "critical": "error", "fatal": "error"}


def looks_like_scaleit(env: Mapping[str, str]) -> bool:
    """True when the environment carries ScaleIt's configuration."""
    if env.get(MODE_ENV, "").strip().lower() == GROUP:
        return True
    return any(env.get(name, "").strip() for name in MARKERS)


def _get(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    return value.strip() if value.strip() else DEFAULTS[name]


def _number(env: Mapping[str, str], name: str, errors: list[str], *, positive: bool) -> float:
    text = _get(env, name)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        errors.append(f"{name}: must be a number {'> 0' if positive else '>= 0'} (got {text!r})")
    return value


def _int(env: Mapping[str, str], name: str, errors: list[str], low: int, high: int) -> int:
    text = _get(env, name)
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        errors.append(f"{name}: must be an integer in {low}..{high} (got {text!r})")
    return value


def app_url(env: Mapping[str, str], errors: list[str]) -> str:
    """URL + ":" + PORT, as ScaleIt joins them (a trailing "/" on the URL is dropped)."""
    url = _get(env, "APP_SERVICE_URL").rstrip("/")
    if not url.startswith(("http://", "https://")):
        errors.append(f"APP_SERVICE_URL: must start with http:// or https:// (got {url!r})")
    port = _int(env, "APP_SERVICE_PORT", errors, 1, 65535)
    return f"{url}:{port}"


def raw_config(env: Mapping[str, str]) -> dict[str, Any]:
    """The configuration document equivalent to ScaleIt's variables.

    Raises ConfigError for values the variables cannot hold (each message names the
    variable); everything else is checked by `parse_config`.
    """
    errors: list[str] = []
    base = app_url(env, errors)
    period = _number(env, "SCALE_RESOLUTION_TIME", errors, positive=True)
    target = _number(env, "SCALE_METRIC", errors, positive=True)
    tolerance = _number(env, "SCALE_TOLERANCE", errors, positive=False)
    maximum = _int(env, "AUTOSCALER_MAX_REPLICAS", errors, 1, 100_000)
    level = _get(env, "LOG_LEVEL").lower()
    if errors:
        raise ConfigError(errors, "environment")
    return {
        "interval_seconds": period,
        "listen": _get(env, "AUTOSCALER_LISTEN"),
        "log_level": _LEVELS.get(level, level),
        "groups": {
            GROUP: {
                "provider": {
                    "type": "http",
                    "status_url": base + STATUS_PATH,
                    "set_url": base + REPLICAS_PATH,
                    "count_path": "replicas",
                    "set_method": "PUT",
                    "set_count_path": "replicas",
                    # A read must fit in one period; ScaleIt used requests' default (none).
                    "timeout_seconds": max(1.0, min(10.0, period)),
                },
                "min": 1,
                "max": maximum,
                "replica_capacity": 1,
                "expect_capacity": False,  # the app exports cpu, not per-replica capacity
                "warmup_seconds": 0,
                # Samples older than 3 periods are missing data (hold), never stale values.
                "stale_after_seconds": max(3 * period, 15.0),
                "policies": [
                    {
                        "type": "target",
                        "name": "cpu",
                        "query": _get(env, "AUTOSCALER_SCALEIT_QUERY"),
                        "target": target,
                        "tolerance": tolerance,
                        "tolerance_mode": "absolute",
                    }
                ],
                # Up as ScaleIt (at once, the whole way); down damped.
                "scale_up": {
                    "cooldown_seconds": 0,
                    "stabilization_seconds": 0,
                    "max_step_replicas": None,
                    "max_step_percent": None,
                },
                "scale_down": {
                    "cooldown_seconds": 0,
                    "stabilization_seconds": STABILIZATION_PERIODS * period,
                    "max_step_replicas": None,
                    "max_step_percent": 50,
                },
            }
        },
    }


def config_from_env(env: Mapping[str, str]) -> Config:
    """A validated Config from ScaleIt's variables (AUTOSCALER_* overrides apply)."""
    return parse_config(raw_config(env), env, source="environment (ScaleIt variables)")
