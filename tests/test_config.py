"""Configuration loading, validation, environment overrides, redaction and `check`."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.config import REDACTED, ConfigError, PrometheusConfig, parse_host_port, redacted
from autoscaler.core.spec import (
    GroupConfig,
    HeadroomPolicyConfig,
    PredictivePolicyConfig,
    ScalingBehavior,
    TargetPolicyConfig,
)
from autoscaler.providers import registry
from autoscaler.providers.registry import load_config, parse_config
from autoscaler.runtime import check_command as config_check

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-hunter2"


@pytest.fixture(autouse=True)
def tiny_provider():
    registry.register("tiny", "tests.tiny_provider")
    try:
        yield
    finally:
        registry.unregister("tiny")


def minimal() -> dict[str, Any]:
    return {
        "groups": {
            "web": {
                "provider": {"type": "tiny"},
                "min": 1,
                "max": 5,
                "replica_capacity": 4,
                "policies": [{"type": "headroom", "min_available": 4}],
            }
        }
    }


def errors_of(raw: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, env or {})
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- valid input


def test_minimal_config_takes_defaults_from_the_dataclasses():
    config = parse_config(minimal(), {})
    assert config.prometheus == PrometheusConfig()
    assert config.interval_seconds == 10.0 and config.listen == "127.0.0.1:9100"
    assert config.bridge_address is None and config.log_level == "info"
    (group,) = config.groups
    defaults = GroupConfig(
        name="web",
        provider=group.provider,
        min=1,
        max=5,
        replica_capacity=4.0,
        policies=(HeadroomPolicyConfig(name="headroom", min_available=4.0),),
    )
    assert group == defaults
    assert group.provider.type == "tiny" and dict(group.provider.options) == {}


def full_raw(secret_file: Path, ca_file: Path) -> dict[str, Any]:
    """Every key of every schema dataclass, none at its default."""
    return {
        "prometheus": {
            "url": "https://prom.example:9443/prefix",
            "timeout_seconds": 2.5,
            "username": "scaler",
            "password_file": str(secret_file),
            "ca_file": str(ca_file),
            "insecure_skip_verify": True,
        },
        "interval_seconds": 3,
        "listen": "[::1]:0",
        "capacity_metric": "free_slots",
        "termination_metric": "please_remove",
        "group_label": "pool",
        "replica_label": "instance_id",
        "target_labels": {"autoscaler": "a"},
        "bridge_address": "127.0.0.1:9101",
        "log_level": "DEBUG",
        "state_dir": "/var/lib/autoscaler",
        "ha": {
            "endpoints": ["http://10.0.0.1:2379", "https://10.0.0.2:2379/"],
            "key_prefix": "/scalers/web/",
            "lease_ttl_seconds": 15,
            "renew_seconds": 4,
            "poll_seconds": 0.5,
            "timeout_seconds": 1.5,
            "safety_margin_seconds": 2,
            "identity": "scaler-a",
            "ca_file": str(ca_file),
            "cert_file": str(ca_file),
            "key_file": str(secret_file),
            "username": "scaler",
            "password_file": str(secret_file),
        },
        "groups": {
            "batch": {
                "provider": {"type": "tiny", "size": 3},
                "min": 0,
                "max": 9,
                "replica_capacity": 2.5,
                "policies": [
                    {"type": "headroom", "name": "room", "min_available": 3},
                    {"type": "target", "query": "q1", "target": 2, "tolerance": 0.2},
                    {
                        "type": "target",
                        "query": "q2",
                        "target": 0.5,
                        "tolerance_up": 0.05,
                        "tolerance_down": 0.3,
                    },
                    {
                        "type": "predictive",
                        "name": "forecast",
                        "query": "sum by (group) (rate(requests_total[1m]))",
                        "demand_per_replica": 50,
                        "target": 0.7,
                        "horizon_seconds": 300,
                        "season_seconds": 604800,
                        "seasons": 4,
                        "level_seconds": 600,
                        "trend_seconds": 0,
                        "max_growth": 2.5,
                    },
                ],
                "scale_up": {
                    "cooldown_seconds": 5,
                    "stabilization_seconds": 6,
                    "max_step_replicas": 7,
                    "max_step_percent": 50,
                },
                "scale_down": {"cooldown_seconds": 8, "enabled": False},
                "warmup_seconds": 0,
                "dry_run": True,
                "stale_after_seconds": 12,
                "fallback_replicas": 4,
                "scale_in_order": "newest",
                "max_replacements_per_cycle": 0,
                "max_terminations_per_cycle": 3,
                "termination_below_min": True,
                "via_bridge": True,
                "replica_api": {"port": 8081, "path": "/status"},
            }
        },
    }


def test_every_schema_field_is_loadable(tmp_path):
    secret_file = write(tmp_path, SECRET + "\n", "pw")
    ca_file = write(tmp_path, "-----BEGIN CERTIFICATE-----\n", "ca.pem")
    config = parse_config(full_raw(secret_file, ca_file), {})
    assert config.prometheus == PrometheusConfig(
        url="https://prom.example:9443/prefix",
        timeout_seconds=2.5,
        username="scaler",
        password=SECRET,  # read from the file, trailing newline dropped
        bearer_token_file=None,
        ca_file=str(ca_file),
        insecure_skip_verify=True,
    )
    assert (config.interval_seconds, config.listen, config.log_level) == (3.0, "[::1]:0", "debug")
    assert (config.capacity_metric, config.termination_metric) == ("free_slots", "please_remove")
    assert (config.group_label, config.replica_label) == ("pool", "instance_id")
    assert config.target_labels == {"autoscaler": "a"}
    assert config.bridge_address == "127.0.0.1:9101"
    assert config.state_dir == "/var/lib/autoscaler"
    (group,) = config.groups
    assert group.policies == (
        HeadroomPolicyConfig(name="room", min_available=3.0),
        TargetPolicyConfig(
            name="target-1", query="q1", target=2.0, tolerance_up=0.2, tolerance_down=0.2
        ),
        TargetPolicyConfig(
            name="target-2", query="q2", target=0.5, tolerance_up=0.05, tolerance_down=0.3
        ),
        PredictivePolicyConfig(
            name="forecast",
            query="sum by (group) (rate(requests_total[1m]))",
            demand_per_replica=50.0,
            target=0.7,
            horizon_seconds=300.0,
            season_seconds=604800.0,
            seasons=4,
            level_seconds=600.0,
            trend_seconds=0.0,
            max_growth=2.5,
        ),
    )
    assert group.scale_up == ScalingBehavior(5, 6, 7, 50)
    # Keys left out of a scale_* block keep the group's default for that direction.
    assert group.scale_down == ScalingBehavior(8, 300, 1, None, enabled=False)
    assert (group.warmup_seconds, group.dry_run, group.stale_after_seconds) == (0.0, True, 12.0)
    assert (group.fallback_replicas, group.scale_in_order) == (4, "newest")
    assert (group.max_replacements_per_cycle, group.via_bridge) == (0, True)
    assert (group.max_terminations_per_cycle, group.termination_below_min) == (3, True)
    assert group.provider.options == {"size": 3}
    # Every dataclass field was set away from its default: none is unloadable.
    assert config.ha is not None
    assert config.ha.endpoints == ("http://10.0.0.1:2379", "https://10.0.0.2:2379")
    assert config.ha.key_prefix == "/scalers/web"  # the trailing / dropped
    assert (config.ha.username, config.ha.password) == ("scaler", SECRET)
    for obj in (config, config.prometheus, group, group.policies[3], config.ha):
        for f in dataclasses.fields(obj):
            # base_dir is not a key: load_config sets it to the file's directory.
            # expect_capacity cannot be false beside a headroom policy: tested below.
            skip = ("bearer_token_file", "type", "base_dir", "expect_capacity")
            if f.default is not dataclasses.MISSING and f.name not in skip:
                assert getattr(obj, f.name) != f.default, f.name


def test_expect_capacity_false_for_a_target_only_group():
    raw = minimal()
    raw["groups"]["web"]["policies"] = [{"type": "target", "query": "q", "target": 0.5}]
    raw["groups"]["web"]["expect_capacity"] = False
    assert parse_config(raw, {}).groups[0].expect_capacity is False


def test_bearer_token_file_and_null_step_limit(tmp_path):
    token = write(tmp_path, "tok", "token")
    raw = minimal()
    raw["prometheus"] = {"bearer_token_file": str(token)}
    raw["groups"]["web"]["scale_down"] = {"max_step_replicas": None}
    config = parse_config(raw, {})
    assert config.prometheus.bearer_token_file == str(token)
    assert config.groups[0].scale_down.max_step_replicas is None


def test_parse_config_does_not_modify_its_input():
    raw = minimal()
    raw["groups"]["web"]["provider"]["size"] = 2
    before = copy.deepcopy(raw)
    config = parse_config(raw, {"AUTOSCALER_DRY_RUN": "true", "AUTOSCALER_LISTEN": ":9200"})
    assert raw == before
    assert config.groups[0].dry_run is True


def test_groups_keep_file_order_and_names():
    raw = minimal()
    raw["groups"]["a-2"] = copy.deepcopy(raw["groups"]["web"])
    raw["groups"]["Z_1"] = copy.deepcopy(raw["groups"]["web"])
    assert [g.name for g in parse_config(raw, {}).groups] == ["web", "a-2", "Z_1"]


@pytest.mark.parametrize("name", ["local.yaml", "target.yaml", "full.yaml"])
def test_examples_are_valid(name):
    config = load_config(ROOT / "examples" / name, {})
    assert config.groups


def test_local_example_matches_the_demo():
    config = load_config(ROOT / "examples" / "local.yaml", {})
    (demo,) = config.groups
    assert demo.name == "demo" and demo.provider.type == "local"
    assert (demo.min, demo.max, demo.replica_capacity) == (1, 8, 4)
    assert demo.policies == (HeadroomPolicyConfig(name="headroom", min_available=4),)
    assert config.interval_seconds == 2 and demo.warmup_seconds == 12
    assert (demo.scale_down.stabilization_seconds, demo.scale_down.cooldown_seconds) == (20, 10)


# --------------------------------------------------------------------------- errors


def mutate(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set (or with value=DELETE remove) a dotted key path; [i] indexes lists."""
    keys = path.replace("[", ".").replace("]", "").split(".")
    node: Any = raw
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    last: Any = int(keys[-1]) if isinstance(node, list) else keys[-1]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return raw


DELETE = object()

CASES = [
    # (key path, value, expected error text)
    ("interval_seconds", 0, "interval_seconds: must be a number > 0 (got 0)"),
    ("interval_seconds", "10s", "interval_seconds: must be a number > 0 (got '10s')"),
    ("interval_seconds", True, "interval_seconds: must be a number > 0 (got true)"),
    ("interval_seconds", float("nan"), "interval_seconds: must be a number > 0 (got nan)"),
    ("listen", "localhost", "listen: must be host:port to listen on"),
    ("listen", "1.2.3.4:70000", "port out of range (got '1.2.3.4:70000')"),
    ("listen", "::1:9100", "write IPv6 addresses as [::1]:port"),
    ("bridge_address", ":9101", "bridge_address: must be host:port, e.g. 127.0.0.1:9101: no host"),
    ("bridge_address", "h:0", "port 0 cannot be reached"),
    ("log_level", "verbose", "log_level: must be one of: debug, info, warning, error"),
    ("log_level", "warn", "did you mean 'warning'?"),
    ("capacity_metric", "free-slots", "capacity_metric: must be a Prometheus series selector"),
    ("capacity_metric", 'c{job="x"}[1m]', "capacity_metric: must be a Prometheus series selector"),
    ("termination_metric", "t{job=x}", "termination_metric: must be a Prometheus series selector"),
    ("group_label", "__name__", "group_label: must be a Prometheus label name"),
    ("replica_label", "group", "replica_label: must differ from group_label"),
    ("target_labels", ["a"], "target_labels: must be a mapping of label name to value"),
    ("target_labels", {"a-b": "x"}, "target_labels.a-b: must be a Prometheus label name"),
    ("target_labels", {"group": "x"}, "target_labels.group: is set by the autoscaler itself"),
    ("target_labels", {"env": 1}, "target_labels.env: must be a non-empty string (quote numbers)"),
    ("intervall_seconds", 5, "intervall_seconds: unknown key (did you mean 'interval_seconds'?)"),
    ("zzz", 5, "zzz: unknown key; allowed: bridge_address, capacity_metric"),
    ("groups", {}, "groups: must be a non-empty mapping of group name to group settings"),
    ("groups", [], "groups: must be a non-empty mapping"),
    ("groups.web", "x", "groups.web: must be a mapping (got 'x')"),
    ("groups.web.min", DELETE, "groups.web.min: is required: an integer >= 0"),
    ("groups.web.min", -1, "groups.web.min: must be an integer >= 0 (got -1)"),
    ("groups.web.max", 2.5, "groups.web.max: must be an integer >= 0 (got 2.5)"),
    ("groups.web.min", 6, "groups.web.min: must be <= max (5) (got 6)"),
    ("groups.web.replica_capacity", 0, "groups.web.replica_capacity: must be a number > 0"),
    ("groups.web.fallback_replicas", 0, "fallback_replicas: must be between min and max (1..5)"),
    ("groups.web.fallback_replicas", 6, "fallback_replicas: must be between min and max (1..5)"),
    ("groups.web.scale_in_order", "random", "scale_in_order: must be one of: oldest, newest"),
    ("groups.web.dry_run", "yes", "groups.web.dry_run: must be true or false (got 'yes')"),
    ("groups.web.warmup_seconds", -1, "warmup_seconds: must be a number >= 0 (got -1)"),
    ("groups.web.stale_after_seconds", 0, "stale_after_seconds: must be a number > 0"),
    ("groups.web.max_replacements_per_cycle", -2, "max_replacements_per_cycle: must be an integer"),
    ("groups.web.max_terminations_per_cycle", -1, "max_terminations_per_cycle: must be an integer"),
    ("groups.web.termination_below_min", "no", "termination_below_min: must be true or false"),
    ("groups.web.via_bridge", True, "groups.web.via_bridge: needs the top-level bridge_address"),
    ("groups.web.expect_capacity", "yes", "expect_capacity: must be true or false"),
    (
        "groups.web.expect_capacity",
        False,
        "expect_capacity: cannot be false with a headroom policy",
    ),
    ("groups.web.scale_down", 5, "groups.web.scale_down: must be a mapping (got 5)"),
    ("groups.web.scale_down.max_step_percent", 0, "max_step_percent: must be a number > 0 or null"),
    ("groups.web.scale_up.max_step_replicas", 0, "max_step_replicas: must be an integer >= 1"),
    (
        "groups.web.scale_up.cooldown_seconds",
        -5,
        "scale_up.cooldown_seconds: must be a number >= 0",
    ),
    (
        "groups.web.scale_up.cooldown",
        5,
        "scale_up.cooldown: unknown key (did you mean 'cooldown_seconds'?)",
    ),
    ("groups.web.name", "x", "groups.web.name: unknown key"),
    ("groups.web.provider", DELETE, "groups.web.provider: is required: a mapping with a type"),
    ("groups.web.provider", "tiny", "groups.web.provider: must be a mapping with a type"),
    ("groups.web.provider.type", DELETE, "groups.web.provider.type: is required: one of:"),
    # the list grows with every provider: checked in full by test_registry_builds_the_provider
    ("groups.web.provider.type", "tinny", "provider.type: must be one of: "),
    ("groups.web.provider.size", 0, "groups.web.provider.size: must be an integer >= 1 (got 0)"),
    ("groups.web.provider.sise", 2, "groups.web.provider.sise: unknown option; allowed: size"),
    ("groups.web.policies", [], "groups.web.policies: must be a non-empty list of policies"),
    ("groups.web.policies", DELETE, "groups.web.policies: is required"),
    ("groups.web.policies[0]", "headroom", "policies[0]: must be a mapping with a type"),
    (
        "groups.web.policies[0].type",
        "headrom",
        "policies[0].type: must be one of: headroom, target",
    ),
    ("groups.web.policies[0].min_available", -4, "min_available: must be a number >= 0"),
    ("groups.web.policies[0].query", "up", "policies[0].query: unknown key"),
    ("groups.web.policies[0].name", "a b", "policies[0].name: must be a name of letters, digits"),
]


@pytest.mark.parametrize(
    ("path", "value", "expected"), CASES, ids=[c[0] + "=" + repr(c[1]) for c in CASES]
)
def test_each_error_names_the_key_and_what_is_allowed(path, value, expected):
    errors = errors_of(mutate(minimal(), path, value))
    assert any(expected in e for e in errors), errors


TARGET = {"type": "target", "query": "sum(x)", "target": 1}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({**TARGET, "target": 0}, "policies[0].target: must be a number > 0 (got 0)"),
        ({**TARGET, "target": -1}, "policies[0].target: must be a number > 0"),
        ({**TARGET, "tolerance": 1}, "tolerance: must be a number >= 0 and < 1 (got 1)"),
        ({**TARGET, "tolerance_down": -0.1}, "tolerance_down: must be a number >= 0 and < 1"),
        ({**TARGET, "tolerance_up": 1.5}, "tolerance_up: must be a number >= 0 and < 1"),
        (
            {**TARGET, "tolerance_mode": "abs"},
            "policies[0].tolerance_mode: must be one of: relative, absolute",
        ),
        (
            {**TARGET, "tolerance_mode": "absolute", "tolerance": -1},
            "policies[0].tolerance: must be a number >= 0",
        ),
        ({**TARGET, "query": ""}, "policies[0].query: must be a non-empty PromQL query"),
        ({"type": "target", "target": 1}, "policies[0].query: is required"),
        ({**TARGET, "min_available": 3}, "policies[0].min_available: unknown key"),
    ],
)
def test_target_policy_errors(policy, expected):
    raw = mutate(minimal(), "groups.web.policies", [policy])
    errors = errors_of(raw)
    assert any(expected in e for e in errors), errors


PREDICTIVE = {"type": "predictive", "query": "sum(rate(x[1m]))", "demand_per_replica": 10}


def test_predictive_policy_takes_defaults_from_the_dataclass():
    raw = mutate(minimal(), "groups.web.policies", [PREDICTIVE])
    (policy,) = parse_config(raw, {}).groups[0].policies
    assert policy == PredictivePolicyConfig(
        name="predictive", query="sum(rate(x[1m]))", demand_per_replica=10.0
    )
    assert (policy.target, policy.horizon_seconds, policy.seasons) == (0.8, 180.0, 7)
    assert isinstance(policy.seasons, int) and isinstance(policy.demand_per_replica, float)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            {**PREDICTIVE, "demand_per_replica": 0},
            "policies[0].demand_per_replica: must be a number > 0 (got 0)",
        ),
        (
            {"type": "predictive", "query": "q"},
            "policies[0].demand_per_replica: is required: a number > 0",
        ),
        ({**PREDICTIVE, "query": " "}, "policies[0].query: must be a non-empty PromQL query"),
        ({**PREDICTIVE, "target": 0}, "policies[0].target: must be a number > 0 (got 0)"),
        ({**PREDICTIVE, "seasons": 1.5}, "policies[0].seasons: must be an integer >= 0 (got 1.5)"),
        ({**PREDICTIVE, "seasons": -1}, "policies[0].seasons: must be an integer >= 0 (got -1)"),
        ({**PREDICTIVE, "season_seconds": 0}, "season_seconds: must be a number > 0 (got 0)"),
        ({**PREDICTIVE, "level_seconds": 0}, "level_seconds: must be a number > 0 (got 0)"),
        ({**PREDICTIVE, "trend_seconds": -1}, "trend_seconds: must be a number >= 0 (got -1)"),
        ({**PREDICTIVE, "horizon_seconds": "3m"}, "horizon_seconds: must be a number >= 0"),
        ({**PREDICTIVE, "max_growth": 0.5}, "max_growth: must be a number >= 1 (got 0.5)"),
        (
            {**PREDICTIVE, "horizon_seconds": 3600, "season_seconds": 3600},
            "policies[0].horizon_seconds: must be < season_seconds (3600) (got 3600)",
        ),
        ({**PREDICTIVE, "tolerance": 0.1}, "policies[0].tolerance: unknown key"),
        ({**PREDICTIVE, "horizon": 60}, "horizon: unknown key (did you mean 'horizon_seconds'?)"),
        ({**PREDICTIVE, "type": "predictiv"}, "did you mean 'predictive'?"),
    ],
)
def test_predictive_policy_errors(policy, expected):
    raw = mutate(minimal(), "groups.web.policies", [policy])
    errors = errors_of(raw)
    assert any(expected in e for e in errors), errors


def test_predictive_policy_reports_every_error_at_once():
    bad = {**PREDICTIVE, "demand_per_replica": -1, "seasons": "7", "max_growth": None}
    raw = mutate(minimal(), "groups.web.policies", [bad, {**PREDICTIVE, "level_seconds": -5}])
    assert errors_of(raw) == [
        "groups.web.policies[0].demand_per_replica: must be a number > 0 (got -1)",
        "groups.web.policies[0].seasons: must be an integer >= 0 (got '7')",
        "groups.web.policies[0].max_growth: must be a number >= 1 (got null)",
        "groups.web.policies[1].level_seconds: must be a number > 0 (got -5)",
    ]


def test_a_scaling_direction_can_be_disabled():
    raw = mutate(minimal(), "groups.web.scale_down", {"enabled": False})
    group = parse_config(raw, {}).groups[0]
    assert group.scale_down.enabled is False and group.scale_up.enabled is True
    # the rest of the block keeps the direction's defaults
    assert group.scale_down.stabilization_seconds == 300
    errors = errors_of(mutate(minimal(), "groups.web.scale_up", {"enabled": "no"}))
    assert errors == ["groups.web.scale_up.enabled: must be true or false (got 'no')"]


def test_default_policy_names_and_uniqueness():
    raw = mutate(
        minimal(), "groups.web.policies", [TARGET, {"type": "headroom", "min_available": 1}, TARGET]
    )
    names = [p.name for p in parse_config(raw, {}).groups[0].policies]
    assert names == ["target-1", "headroom", "target-2"]

    raw = mutate(minimal(), "groups.web.policies", [TARGET, {**TARGET, "name": "target-1"}, TARGET])
    errors = errors_of(raw)
    assert errors == [
        "groups.web.policies[1].name: policy name 'target-1' is already used by "
        "groups.web.policies[0]; names must be unique within a group (set a distinct `name`)"
    ]
    # The same name in two groups is fine.
    raw = minimal()
    raw["groups"]["api"] = copy.deepcopy(raw["groups"]["web"])
    assert len(parse_config(raw, {}).groups) == 2


def test_group_name_must_be_label_safe():
    raw = minimal()
    raw["groups"] = {"web app": raw["groups"]["web"], 7: raw["groups"]["web"]}
    errors = errors_of(raw)
    assert len(errors) == 2
    assert errors[0].startswith("groups.web app: the group name must be a name of letters")


def test_five_mistakes_give_five_messages_at_once(tmp_path):
    path = write(
        tmp_path,
        """
interval_seconds: -1
groups:
  web:
    provider: {type: tiny}
    min: 3
    max: 2
    replica_capacity: 0
    policies:
      - {type: headroom, min_available: 4}
    scale_down: {max_step_percent: 0}
    warmup_secs: 5
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.errors == [
        "interval_seconds: must be a number > 0 (got -1)",
        "groups.web.warmup_secs: unknown key (did you mean 'warmup_seconds'?)",
        "groups.web.replica_capacity: must be a number > 0 (got 0)",
        "groups.web.scale_down.max_step_percent: must be a number > 0 or null (got 0)",
        "groups.web.min: must be <= max (2) (got 3)",
    ]
    assert str(info.value).count("\n") == 4


def test_a_misspelt_required_key_gives_both_messages():
    raw = mutate(minimal(), "groups.web.policies[0]", {"type": "headroom", "min_avaliable": 4})
    assert errors_of(raw) == [
        "groups.web.policies[0].min_avaliable: unknown key (did you mean 'min_available'?)",
        "groups.web.policies[0].min_available: is required: a number >= 0",
    ]


def test_prometheus_section_errors(tmp_path):
    raw = minimal()
    raw["prometheus"] = {
        "url": "ftp://prom:9090",
        "timeout_seconds": 0,
        "ca_file": str(tmp_path / "missing.pem"),
        "bearer_token_file": str(tmp_path),
        "insecure_skip_verify": "no",
        "user": "x",
    }
    errors = errors_of(raw)
    assert errors == [
        "prometheus.user: unknown key (did you mean 'username'?)",
        "prometheus.url: must be an http:// or https:// URL with a host (got 'ftp://prom:9090')",
        "prometheus.timeout_seconds: must be a number > 0 (got 0)",
        "prometheus.bearer_token_file: must be the path of a readable file (it is a directory) "
        f"(got {str(tmp_path)!r})",
        "prometheus.ca_file: must be the path of a readable file (No such file or directory) "
        f"(got {str(tmp_path / 'missing.pem')!r})",
        "prometheus.insecure_skip_verify: must be true or false (got 'no')",
    ]


@pytest.mark.parametrize("url", ["127.0.0.1:9090", "http://", "http://host:port", "https:///x"])
def test_url_needs_scheme_and_host(url):
    errors = errors_of(mutate(minimal(), "prometheus.url", url))
    assert errors == [
        f"prometheus.url: must be an http:// or https:// URL with a host (got {url!r})"
    ]


def test_auth_combinations(tmp_path):
    pw = write(tmp_path, "pw\n", "pw")
    token = write(tmp_path, "tok", "token")
    empty = write(tmp_path, "\n", "empty")
    base = minimal()
    cases = [
        ({"password": SECRET}, "prometheus.username: is required when a password is set"),
        (
            {"username": "u", "password": SECRET, "password_file": str(pw)},
            "prometheus.password_file: set either password or password_file, not both",
        ),
        (
            {"username": "u", "bearer_token_file": str(token)},
            "prometheus.bearer_token_file: cannot be combined with basic auth",
        ),
        ({"username": "u", "password_file": str(empty)}, "password_file: the file"),
    ]
    for section, expected in cases:
        errors = errors_of({**base, "prometheus": section})
        assert len(errors) == 1 and expected in errors[0], errors


def test_provider_that_cannot_be_imported():
    registry.register("broken", "tests.no_such_provider_module")
    try:
        errors = errors_of(mutate(minimal(), "groups.web.provider.type", "broken"))
    finally:
        registry.unregister("broken")
    assert errors == [
        "groups.web.provider.type: provider 'broken' is not available: "
        "No module named 'tests.no_such_provider_module'"
    ]


def test_top_level_must_be_a_mapping():
    assert errors_of(["groups"]) == ["<config>: the top level must be a mapping of keys"]
    assert errors_of({}) == ["groups: is required: a mapping of group name to group settings"]


# --------------------------------------------------------------------------- YAML and files


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    path = write(tmp_path, "groups:\n  web:\n    min: [1, 2\n    max: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    (error,) = info.value.errors
    assert error.startswith(f"{path}:4:") and "YAML syntax error" in error


def test_yaml_syntax_error_does_not_quote_the_line(tmp_path):
    path = write(tmp_path, f'prometheus:\n  username: u\n  password: "{SECRET}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert SECRET not in str(info.value) and "YAML syntax error" in str(info.value)


def test_duplicate_yaml_keys_are_errors(tmp_path):
    text = yaml.safe_dump(minimal(), sort_keys=False) + "interval_seconds: 1\ninterval_seconds: 2\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    (error,) = info.value.errors
    assert (
        error.startswith(f"{path}:") and "duplicate key 'interval_seconds' (first at line" in error
    )


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    path = write(
        tmp_path,
        """
groups:
  web: &base
    provider: {type: tiny}
    min: 1
    max: 5
    replica_capacity: 4
    policies: [{type: headroom, min_available: 4}]
  api:
    <<: *base
    max: 9
""",
    )
    config = load_config(path, {})
    assert [(g.name, g.max) for g in config.groups] == [("web", 5), ("api", 9)]


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml", {})
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(write(tmp_path, "# nothing\n"), {})


# --------------------------------------------------------------------------- environment


def test_environment_overrides_the_file(tmp_path):
    token = write(tmp_path, "tok", "token")
    ca = write(tmp_path, "ca", "ca.pem")
    raw = minimal()
    raw["groups"]["api"] = copy.deepcopy(raw["groups"]["web"])
    raw["prometheus"] = {"url": "http://file:9090", "timeout_seconds": 9}
    env = {
        "AUTOSCALER_PROMETHEUS_URL": "https://env:9091",
        "AUTOSCALER_PROMETHEUS_TIMEOUT_SECONDS": "1.5",
        "AUTOSCALER_PROMETHEUS_CA_FILE": str(ca),
        "AUTOSCALER_PROMETHEUS_BEARER_TOKEN_FILE": str(token),
        "AUTOSCALER_INTERVAL_SECONDS": "4",
        "AUTOSCALER_LISTEN": "0.0.0.0:9200",
        "AUTOSCALER_LOG_LEVEL": "warning",
        "AUTOSCALER_DRY_RUN": "true",
        "AUTOSCALER_BRIDGE_ADDRESS": "bridge:9101",
        "UNRELATED": "x",
    }
    config = parse_config(raw, env)
    assert config.prometheus == PrometheusConfig(
        url="https://env:9091", timeout_seconds=1.5, bearer_token_file=str(token), ca_file=str(ca)
    )
    assert (config.interval_seconds, config.listen, config.log_level) == (
        4.0,
        "0.0.0.0:9200",
        "warning",
    )
    assert config.bridge_address == "bridge:9101"
    assert [g.dry_run for g in config.groups] == [True, True]


def test_env_basic_auth_replaces_the_password_file(tmp_path):
    raw = minimal()
    raw["prometheus"] = {
        "username": "file-user",
        "password_file": str(write(tmp_path, "old", "pw")),
    }
    env = {"AUTOSCALER_PROMETHEUS_USERNAME": "env-user", "AUTOSCALER_PROMETHEUS_PASSWORD": SECRET}
    prom = parse_config(raw, env).prometheus
    assert (prom.username, prom.password) == ("env-user", SECRET)


def test_dry_run_false_and_empty_variables():
    raw = mutate(minimal(), "groups.web.dry_run", True)
    assert parse_config(raw, {"AUTOSCALER_DRY_RUN": "0"}).groups[0].dry_run is False
    # Empty means unset: the file (or the default) applies.
    config = parse_config(raw, {"AUTOSCALER_DRY_RUN": "", "AUTOSCALER_LISTEN": ""})
    assert config.groups[0].dry_run is True and config.listen == "127.0.0.1:9100"


def test_bad_environment_values_name_the_variable(tmp_path):
    env = {
        "AUTOSCALER_INTERVAL_SECONDS": "fast",
        "AUTOSCALER_PROMETHEUS_TIMEOUT_SECONDS": "-1",
        "AUTOSCALER_LISTEN": "nowhere",
        "AUTOSCALER_LOG_LEVEL": "loud",
        "AUTOSCALER_DRY_RUN": "maybe",
        "AUTOSCALER_PROMETHEUS_URL": "gopher://x",
        "AUTOSCALER_PROMETHEUS_CA_FILE": str(tmp_path / "none.pem"),
        "AUTOSCALER_BRIDGE_ADDRESS": "b",
    }
    errors = errors_of(minimal(), env)
    assert len(errors) == len(env), errors
    for var in env:
        assert sum(e.startswith(f"{var} (overrides ") for e in errors) == 1, (var, errors)
    assert (
        "AUTOSCALER_INTERVAL_SECONDS (overrides interval_seconds): "
        "must be a number > 0 (got 'fast')"
    ) in errors
    assert (
        "AUTOSCALER_DRY_RUN (overrides groups.web.dry_run): must be true or false (got 'maybe')"
        in errors
    )


# --------------------------------------------------------------------------- secrets


def test_secrets_never_appear_in_errors(tmp_path):
    raw = minimal()
    raw["prometheus"] = {
        "url": f"http://admin:{SECRET}@prom:9090",
        "password": 12345,  # wrong type: the value is still a secret
        "pasword": SECRET,  # a typo'd key: its value is never shown
    }
    raw["groups"]["web"]["provider"]["api_token"] = SECRET  # unknown provider option
    errors = errors_of(raw)
    text = "\n".join(errors)
    assert SECRET not in text and "12345" not in text and "admin" not in text
    assert "prometheus.password: must be a non-empty string or null (got <redacted>)" in errors
    assert any(e.startswith("prometheus.url: must be a URL without credentials") for e in errors)
    env_errors = errors_of(minimal(), {"AUTOSCALER_PROMETHEUS_PASSWORD": SECRET})
    assert SECRET not in "\n".join(env_errors)


def test_redacted_is_json_and_hides_secrets(tmp_path):
    raw = minimal()
    raw["prometheus"] = {"username": "u", "password": SECRET}
    raw["groups"]["web"]["provider"]["size"] = 2
    config = parse_config(raw, {})
    # Provider options of other providers may hold credentials, nested or not.
    group = dataclasses.replace(
        config.groups[0],
        provider=dataclasses.replace(
            config.groups[0].provider,
            options={
                "auth": {"password": SECRET, "username": "u"},
                "application_credential_secret": SECRET,
                "token_file": "/t",
            },
        ),
    )
    config = dataclasses.replace(config, groups=(group,))
    data = redacted(config)
    text = json.dumps(data)
    assert SECRET not in text
    assert data["prometheus"]["password"] == REDACTED and data["prometheus"]["username"] == "u"
    options = data["groups"][0]["provider"]["options"]
    assert options == {
        "auth": {"password": REDACTED, "username": "u"},
        "application_credential_secret": REDACTED,
        "token_file": "/t",
    }
    assert data["groups"][0]["policies"] == [
        {"name": "headroom", "min_available": 4.0, "type": "headroom", "scale_in": "idle"}
    ]
    assert repr(config.prometheus).count(SECRET) == 0  # the dataclass hides it too


def test_redacted_unset_password_stays_null():
    assert redacted(parse_config(minimal(), {}))["prometheus"]["password"] is None


# --------------------------------------------------------------------------- registry


def test_registry_builds_the_provider():
    assert {"local", "openstack", "tiny"} <= set(registry.provider_types())
    config = parse_config(mutate(minimal(), "groups.web.provider.size", 3), {})
    provider = registry.build_provider(config.groups[0], config)
    try:
        assert provider.kind == "tiny" and provider.size == 3
        assert provider.create(2).succeeded == ["web-0", "web-1"]
        assert [r.id for r in provider.list()] == ["web-0", "web-1"]
    finally:
        provider.close()
    known = ", ".join(registry.provider_types())
    assert "tiny" in known
    assert registry.check_provider_options("nope", {}, "p") == [
        f"p.type: must be one of: {', '.join(registry.provider_types())} (got 'nope')"
    ]
    assert "tiny" in registry.provider_types() and "libvirt" in registry.provider_types()


def test_parse_host_port():
    assert parse_host_port("127.0.0.1:9100") == ("127.0.0.1", 9100)
    assert parse_host_port("[::1]:0") == ("::1", 0)
    assert parse_host_port(":9100") == ("", 9100)
    for bad in ("9100", "host:", "a b:1", "[]:1", "h:99999"):
        with pytest.raises(ValueError):
            parse_host_port(bad)
    with pytest.raises(ValueError):
        parse_host_port(":1", allow_any_host=False)


# --------------------------------------------------------------------------- autoscaler check


def run_check(path: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    config_check.add_arguments(parser)
    return config_check.run(parser.parse_args([str(path), *extra]))


def test_check_valid(tmp_path, capsys, monkeypatch):
    for var in [k for k in os.environ if k.startswith("AUTOSCALER_")]:
        monkeypatch.delenv(var)
    raw = minimal()
    raw["groups"]["api"] = copy.deepcopy(raw["groups"]["web"])
    raw["prometheus"] = {"username": "u", "password": SECRET}
    path = write(tmp_path, yaml.safe_dump(raw, sort_keys=False))
    assert run_check(path, "--show") == 0
    out, err = capsys.readouterr()
    assert out.startswith("OK: 2 groups (web, api)\n") and err == ""
    assert json.loads(out.split("\n", 1)[1])["prometheus"]["password"] == REDACTED
    assert SECRET not in out


def test_check_invalid(tmp_path, capsys, monkeypatch):
    for var in [k for k in os.environ if k.startswith("AUTOSCALER_")]:
        monkeypatch.delenv(var)
    path = write(tmp_path, yaml.safe_dump(mutate(minimal(), "groups.web.min", 9)) + "listen: x\n")
    assert run_check(path) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}: invalid configuration, 2 errors:",
        "  listen: must be host:port to listen on, e.g. 127.0.0.1:9100 or [::1]:9100: "
        "no port (got 'x')",
        "  groups.web.min: must be <= max (5) (got 9)",
    ]


def test_check_command_exit_codes(tmp_path):
    """The real entry point, in a subprocess, with a clean environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOSCALER_")}
    valid = write(tmp_path, yaml.safe_dump(minimal()).replace("tiny", "local"), "ok.yaml")
    broken = write(tmp_path, "groups: {web: [\n", "broken.yaml")
    results = {}
    for name, path in {"valid": valid, "syntax": broken, "missing": tmp_path / "no.yaml"}.items():
        proc = subprocess.run(
            [sys.executable, "-m", "autoscaler.runtime.check_command", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )
        results[name] = (proc.returncode, proc.stdout, proc.stderr)
    assert results["valid"] == (0, "OK: 1 group (web)\n", "")
    code, out, err = results["syntax"]
    assert code == 2 and out == "" and f"{broken}:2:1: YAML syntax error" in err
    code, out, err = results["missing"]
    assert code == 2 and f"{tmp_path / 'no.yaml'}: file not found" in err


def test_replica_api_is_checked_by_the_bridge_rules():
    from autoscaler.bridge.server import ReplicaApi, replica_url

    raw = minimal()
    raw["groups"]["web"]["replica_api"] = {"port": 9000, "path": "/app/status"}
    group = parse_config(raw, {}).groups[0]
    api = ReplicaApi.from_mapping(group.replica_api, {})
    assert replica_url("10.0.0.5", api) == "http://10.0.0.5:9000/app/status"

    raw["groups"]["web"]["replica_api"] = {"port": "eighty", "colour": "blue"}
    (err,) = errors_of(raw)
    assert err.startswith("groups.web.replica_api: ") and "colour" in err
    raw["groups"]["web"]["replica_api"] = {"port": "eighty"}
    (err,) = errors_of(raw)
    assert err.startswith("groups.web.replica_api: ") and "'eighty'" in err
    raw["groups"]["web"]["replica_api"] = "http://x"
    (err,) = errors_of(raw)
    assert "must be a mapping of protocol, port, path" in err


def test_tolerance_mode_defaults_to_relative_and_absolute_takes_any_tolerance() -> None:
    def parsed(**policy: object) -> TargetPolicyConfig:
        doc = mutate(minimal(), "groups.web.policies", [{**TARGET, **policy}])
        (p,) = parse_config(doc, {}).groups[0].policies
        assert isinstance(p, TargetPolicyConfig)
        return p

    assert parsed().tolerance_mode == "relative"
    p = parsed(tolerance_mode="absolute", tolerance=5)
    assert (p.tolerance_mode, p.tolerance_up, p.tolerance_down) == ("absolute", 5, 5)
