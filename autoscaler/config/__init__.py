"""Configuration: YAML file + environment -> frozen, validated specs (depends on core only).

Provider option checks are injected (`ProviderCatalog`); callers that want the registered
providers use `autoscaler.providers.registry.load_config`.
"""

from autoscaler.config.checks import ProviderCatalog, parse_host_port
from autoscaler.config.errors import ConfigError
from autoscaler.config.load import load_config, parse_config, parse_yaml
from autoscaler.config.schema import Config, PrometheusConfig
from autoscaler.config.secrets import REDACTED, is_secret_key, redact_url, redacted

__all__ = [
    "REDACTED",
    "Config",
    "ConfigError",
    "PrometheusConfig",
    "ProviderCatalog",
    "is_secret_key",
    "load_config",
    "parse_config",
    "parse_host_port",
    "parse_yaml",
    "redact_url",
    "redacted",
]
