"""`autoscaler check CONFIG`: validate a configuration without touching anything.

Exit 0 and "OK: N groups (names)" on stdout when valid; exit 2 with every error on
stderr otherwise (syntax errors with line and column, a missing file, bad values).
The environment overrides apply, exactly as for `autoscaler run`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from autoscaler.config import ConfigError, redacted
from autoscaler.providers.registry import load_config

EXIT_OK = 0
EXIT_INVALID = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="path of the YAML configuration file")
    parser.add_argument(
        "--show",
        action="store_true",
        help="also print the effective configuration as JSON (defaults filled in, "
        "environment applied, secrets redacted)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, os.environ)
    except ConfigError as exc:
        count = len(exc.errors)
        print(
            f"{args.config}: invalid configuration, {count} error{'s' if count != 1 else ''}:",
            file=sys.stderr,
        )
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return EXIT_INVALID
    names = ", ".join(group.name for group in config.groups)
    count = len(config.groups)
    print(f"OK: {count} group{'s' if count != 1 else ''} ({names})")
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
