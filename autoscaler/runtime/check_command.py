"""`autoscaler check [CONFIG | --env]`: validate a configuration without touching anything.

What is checked is what `autoscaler run` would read (runtime/config_source.py): CONFIG,
else `$AUTOSCALER_CONFIG`, else the environment alone (SimpleScaleVM's variables);
`--env` checks the environment-only configuration even when AUTOSCALER_CONFIG is set.
Exit 0 and "OK: N groups (names)" on stdout when valid ("... from SimpleScaleVM
environment variables" for the environment-only configuration), with a "warning:"
line on stderr per set SimpleScaleVM variable we do not support; exit 2 with every error
on stderr otherwise (syntax errors with line and column, a missing file, bad values, a
2.0 and a 3.0 SimpleScaleVM name set differently, no configuration at all). The
environment overrides (AUTOSCALER_*) apply, exactly as for `autoscaler run`.

`--web.config.file F` also checks the web configuration (TLS, basic auth; certificates
and keys are loaded); alone (no CONFIG, no $AUTOSCALER_CONFIG, no --env) it checks only F.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from autoscaler.config import ConfigError, redacted
from autoscaler.runtime import config_source, web_config

EXIT_OK = 0
EXIT_INVALID = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        nargs="?",
        help="path of the YAML configuration file (default: $AUTOSCALER_CONFIG; without "
        "either, the environment-only configuration made of SimpleScaleVM's variables)",
    )
    parser.add_argument(
        "--env",
        action="store_true",
        help="check the environment-only configuration (SimpleScaleVM's variables, "
        "AUTOSCALER_* overrides), ignoring AUTOSCALER_CONFIG; not with CONFIG",
    )
    parser.add_argument(
        "--show",
        action="store_true",
        help="also print the effective configuration as JSON (defaults filled in, "
        "environment applied, secrets redacted)",
    )
    web_config.add_arguments(parser)


def _check_web(path: str) -> int:
    try:
        settings = web_config.load(path)
    except ConfigError as exc:
        print(web_config.invalid_message(path, exc), file=sys.stderr)
        return EXIT_INVALID
    print(f"OK: web configuration {path}: {settings.describe()}")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    web = getattr(args, "web_config_file", None)
    if web:
        code = _check_web(web)
        if not (args.config or getattr(args, "env", False) or os.environ.get("AUTOSCALER_CONFIG")):
            return code
        return max(code, _check_config(args))
    return _check_config(args)


def _check_config(args: argparse.Namespace) -> int:
    env_only = bool(getattr(args, "env", False))
    if env_only and args.config:
        print("error: give a configuration file or --env, not both", file=sys.stderr)
        return EXIT_INVALID
    source = config_source.describe(args.config, os.environ, env_only=env_only)
    try:
        loaded = config_source.load(args.config, os.environ, env_only=env_only)
    except config_source.NoConfiguration as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except ConfigError as exc:
        count = len(exc.errors)
        print(
            f"{source}: invalid configuration, {count} error{'s' if count != 1 else ''}:",
            file=sys.stderr,
        )
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return EXIT_INVALID
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    config = loaded.config
    names = ", ".join(group.name for group in config.groups)
    count = len(config.groups)
    origin = f" from {loaded.source}" if loaded.source == config_source.ENV_SOURCE else ""
    print(f"OK: {count} group{'s' if count != 1 else ''} ({names}){origin}")
    if args.show:
        print(json.dumps(redacted(config), indent=2))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m autoscaler.runtime.check_command CONFIG`, usable before the CLI is wired."""
    parser = argparse.ArgumentParser(prog="autoscaler check", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
