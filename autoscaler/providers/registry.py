"""Provider types by name, imported lazily.

A provider module is imported only when a configuration uses it, so an optional
dependency (openstacksdk, libvirt, ...) is needed only by the people who use that
provider. Every provider module implements:

- `check_options(options: Mapping[str, Any], path: str) -> list[str]`: one error message
  per problem, each starting with the key path (`f"{path}.slots: must be ..."`), with no
  side effects and no secret values in the messages;
- `build(group: GroupConfig, config: Config) -> Provider`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from autoscaler import config

if TYPE_CHECKING:
    from autoscaler.config import Config
    from autoscaler.core.spec import GroupConfig
    from autoscaler.providers.base import Provider

__all__ = [
    "CATALOG",
    "build_provider",
    "check_provider_options",
    "load_config",
    "parse_config",
    "provider_types",
    "register",
    "unregister",
]

_PROVIDERS: dict[str, str] = {
    "docker": "autoscaler.providers.docker",
    "http": "autoscaler.providers.http",
    "libvirt": "autoscaler.providers.libvirt",
    "local": "autoscaler.providers.local",
    "openstack": "autoscaler.providers.openstack.provider",
}


def register(name: str, module_path: str) -> None:
    """Make `type: name` load the provider module `module_path` (plugins, tests)."""
    _PROVIDERS[name] = module_path


def unregister(name: str) -> None:
    """Forget a provider type; unknown names are ignored."""
    _PROVIDERS.pop(name, None)


def provider_types() -> list[str]:
    """Every registered provider type, sorted."""
    return sorted(_PROVIDERS)


def _module(type_name: str) -> ModuleType:
    try:
        module_path = _PROVIDERS[type_name]
    except KeyError:
        raise ValueError(
            f"unknown provider type {type_name!r}; known: {', '.join(provider_types())}"
        ) from None
    return importlib.import_module(module_path)


def check_provider_options(type_name: str, options: Mapping[str, Any], path: str) -> list[str]:
    """Errors in a provider block's options (everything but `type`), or []."""
    if type_name not in _PROVIDERS:
        return [f"{path}.type: must be one of: {', '.join(provider_types())} (got {type_name!r})"]
    try:
        module = _module(type_name)
    except ImportError as exc:
        # A missing optional dependency is a configuration problem the user can fix.
        return [f"{path}.type: provider {type_name!r} is not available: {exc}"]
    try:
        return list(module.check_options(options, path))
    except Exception as exc:  # a provider bug must not hide the other errors
        return [f"{path}: provider {type_name!r} failed to check its options: {type(exc).__name__}"]


def build_provider(group: GroupConfig, config: Config) -> Provider:
    """The provider for one group of a validated configuration."""
    return _module(group.provider.type).build(group, config)


CATALOG: config.ProviderCatalog = sys.modules[__name__]


def load_config(
    path: str | Path, env: Mapping[str, str] = os.environ, *, provider_required: bool = True
) -> Config:
    """`autoscaler.config.load_config` checked against the registered provider types."""
    return config.load_config(path, env, CATALOG, provider_required=provider_required)


def parse_config(
    raw: Mapping[str, Any], env: Mapping[str, str], source: str = "<config>"
) -> Config:
    """`autoscaler.config.parse_config` checked against the registered provider types."""
    return config.parse_config(raw, env, CATALOG, source)
