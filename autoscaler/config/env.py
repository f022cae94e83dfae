"""Environment variables that override keys of the configuration file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# variable -> (key path in the file, how to read the string)
ENV_OVERRIDES: dict[str, tuple[tuple[str, ...], str]] = {
    "AUTOSCALER_PROMETHEUS_URL": (("prometheus", "url"), "str"),
    "AUTOSCALER_PROMETHEUS_TIMEOUT_SECONDS": (("prometheus", "timeout_seconds"), "number"),
    "AUTOSCALER_PROMETHEUS_USERNAME": (("prometheus", "username"), "str"),
    "AUTOSCALER_PROMETHEUS_PASSWORD": (("prometheus", "password"), "str"),
    "AUTOSCALER_PROMETHEUS_BEARER_TOKEN_FILE": (("prometheus", "bearer_token_file"), "str"),
    "AUTOSCALER_PROMETHEUS_CA_FILE": (("prometheus", "ca_file"), "str"),
    "AUTOSCALER_INTERVAL_SECONDS": (("interval_seconds",), "number"),
    "AUTOSCALER_LISTEN": (("listen",), "str"),
    "AUTOSCALER_LOG_LEVEL": (("log_level",), "str"),
    "AUTOSCALER_BRIDGE_ADDRESS": (("bridge_address",), "str"),
    "AUTOSCALER_STATE_DIR": (("state_dir",), "str"),
}
DRY_RUN_ENV = "AUTOSCALER_DRY_RUN"  # sets dry_run on every group


def _env_value(text: str, kind: str) -> Any:
    """The typed value of an environment string; left as text when it does not parse,
    so the checker reports it like a bad value in the file."""
    if kind == "number":
        try:
            return int(text.strip()) if text.strip().lstrip("+-").isdigit() else float(text)
        except ValueError:
            return text
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    return text


def apply_env(doc: dict[str, Any], env: Mapping[str, str], origins: dict[str, str]) -> None:
    """Write the environment overrides into `doc`, remembering which key came from where.

    Empty variables count as unset (compose files often pass `VAR=${VAR:-}`).
    """
    for var, (keys, kind) in ENV_OVERRIDES.items():
        text = env.get(var)
        if not text:
            continue
        section = doc
        for key in keys[:-1]:
            if section.get(key) is None:
                section[key] = {}
            section = section[key]
            if not isinstance(section, dict):
                break  # the checker reports the section's type
        else:
            section[keys[-1]] = _env_value(text, kind)
            origins[".".join(keys)] = var
            if keys[-1] == "password":
                section.pop("password_file", None)  # the variable replaces the file
    text = env.get(DRY_RUN_ENV)
    groups = doc.get("groups")
    if text and isinstance(groups, dict):
        for name, group in groups.items():
            if isinstance(group, dict):
                group["dry_run"] = _env_value(text, "bool")
                origins[f"groups.{name}.dry_run"] = DRY_RUN_ENV
