"""Read a configuration file: YAML (duplicate keys refused), environment, checks."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from autoscaler.config.checks import Checker, ProviderCatalog
from autoscaler.config.env import apply_env
from autoscaler.config.errors import ConfigError
from autoscaler.config.schema import Config


def load_config(
    path: str | Path,
    env: Mapping[str, str],
    providers: ProviderCatalog,
    *,
    provider_required: bool = True,
) -> Config:
    """Read, validate and return the configuration in `path`, or raise ConfigError.

    `providers` checks each group's provider block (`autoscaler.providers.registry`);
    with `provider_required=False` (a simulation) the block may be absent and is not checked.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{source}: file not found"], source) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{source}: not UTF-8 text"], source) from None
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror}"], source) from None
    raw, duplicates = parse_yaml(text, source)
    if raw is None:
        raise ConfigError([f"{source}: the file is empty; it needs at least `groups`"], source)
    try:
        config = parse_config(raw, env, providers, source, provider_required=provider_required)
    except ConfigError as exc:
        raise ConfigError(duplicates + exc.errors, source) from None
    if duplicates:
        raise ConfigError(duplicates, source)
    # absolute(), not resolve(): relative to the file as named, like Prometheus does.
    return dataclasses.replace(config, base_dir=Path(path).absolute().parent)


def parse_yaml(text: str, source: str = "<config>") -> tuple[Any, list[str]]:
    """The YAML document in `text`, and one error per duplicated mapping key.

    PyYAML silently keeps the last of two equal keys; a typo must not pass that way.
    Raises ConfigError (with line and column) on a syntax error. The message never quotes
    the offending line: it could hold a password.
    """
    try:
        # The reader checks the characters at once: a control character raises here.
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: YAML error: {_reader_problem(exc)}"], source) from None
    try:
        node = loader.get_single_node()
        duplicates = _duplicate_keys(node, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([f"{where}: YAML syntax error: {problem}"], source) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: YAML error: {type(exc).__name__}"], source) from None
    finally:
        loader.dispose()
    return data, duplicates


def _reader_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        return f"character #x{exc.character:04x} at position {exc.position} is not allowed"
    return type(exc).__name__


def _duplicate_keys(root: yaml.Node | None, source: str) -> list[str]:
    errors: list[str] = []
    seen_nodes: set[int] = set()
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # aliases may point back up the tree
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                stack.append(value)
                if not isinstance(key, yaml.ScalarNode) or key.tag.endswith(":merge"):
                    continue
                line = key.start_mark.line + 1
                if (key.tag, key.value) in first:
                    errors.append(
                        f"{source}:{line}:{key.start_mark.column + 1}: duplicate key "
                        f"{key.value!r} (first at line {first[(key.tag, key.value)]})"
                    )
                else:
                    first[(key.tag, key.value)] = line
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return sorted(errors, key=lambda e: int(e[len(source) + 1 :].split(":", 1)[0]))


def parse_config(
    raw: Mapping[str, Any],
    env: Mapping[str, str],
    providers: ProviderCatalog,
    source: str = "<config>",
    *,
    provider_required: bool = True,
) -> Config:
    """Validate `raw` (the YAML document, or a dict built elsewhere) with `env` overrides.

    Returns a complete Config or raises ConfigError listing every problem.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError([f"{source}: the top level must be a mapping of keys"], source)
    doc = _plain(raw)
    origins: dict[str, str] = {}
    apply_env(doc, env, origins)
    checker = Checker(origins, providers, provider_required=provider_required)
    config = checker.config(doc)
    if checker.errors or config is None:
        raise ConfigError(checker.errors, source)
    return config


def _plain(value: Any) -> Any:
    """A deep copy made of dicts and lists: the caller's data is never modified."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)
