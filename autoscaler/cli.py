"""Command line: `autoscaler run | check | once | simulate | bridge | loadgen | demo`.

Each subcommand lives in its own module with `add_arguments(parser)` and `run(args)`;
this file only wires them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata

# name -> (module, add_arguments function, run function, one-line help)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "run": ("autoscaler.runtime.daemon", "add_run_arguments", "run", "run the autoscaler daemon"),
    "check": (
        "autoscaler.runtime.check_command",
        "add_arguments",
        "run",
        "validate a configuration file, or with --env (or no file) the environment-only "
        "configuration, without touching anything (exit 2 on errors)",
    ),
    "once": (
        "autoscaler.runtime.daemon",
        "add_once_arguments",
        "once",
        "run one cycle and print each group's decision as JSON "
        "(exit 1 when a query, a listing or a decided action failed)",
    ),
    "simulate": (
        "autoscaler.simulation",
        "add_arguments",
        "run",
        "replay a demand trace or a Prometheus range query through the planner",
    ),
    "bridge": (
        "autoscaler.bridge.server",
        "add_arguments",
        "run",
        "serve /probe?target=URL: JSON replica APIs as Prometheus metrics",
    ),
    "loadgen": (
        "autoscaler.demo.loadgen",
        "add_arguments",
        "run",
        "send HTTP load to the demo replicas following a demand curve",
    ),
    "demo": (
        "autoscaler.demo.demo",
        "add_arguments",
        "run",
        "Prometheus + autoscaler + local replicas + load, with a live line per cycle",
    ),
}


def version() -> str:
    """The installed package's version (the source tree's when not installed)."""
    try:
        return metadata.version("autoscaler")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that subcommand's module is imported.

    Importing lazily keeps `check` and `run` from loading matplotlib or openstacksdk
    they do not need; `build_parser()` with no argument loads everything (for tests).
    """
    parser = argparse.ArgumentParser(
        prog="autoscaler",
        description="Keeps groups of replicas at the right size from Prometheus data.",
    )
    parser.add_argument("--version", action="version", version=f"autoscaler {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, add, run, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            mod = importlib.import_module(module)
            getattr(mod, add)(p)
            p.set_defaults(_run=getattr(mod, run))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    args = build_parser(only=command).parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
