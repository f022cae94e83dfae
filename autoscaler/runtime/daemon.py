"""`autoscaler run` and `autoscaler once`: wire configuration, providers, Prometheus,
the exporter and the controller together.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from autoscaler.compat.simplescalevm import warn_unsupported
from autoscaler.config import Config, ConfigError, parse_host_port, redact_url
from autoscaler.config.replica_api import sd_target
from autoscaler.providers.base import Provider, ProviderError
from autoscaler.providers.registry import build_provider
from autoscaler.runtime import config_source, logs, reload, web_config
from autoscaler.runtime.clock import SystemClock
from autoscaler.runtime.controller import Controller, decision_json
from autoscaler.runtime.exporter import SharedState, serve
from autoscaler.runtime.ha import setup as ha_setup
from autoscaler.runtime.metrics import Metrics
from autoscaler.runtime.state_lock import StateDirLocked, StateLock, acquire
from autoscaler.runtime.state_store import open_store, state_dir

log = logging.getLogger("autoscaler")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        default=os.environ.get("AUTOSCALER_CONFIG"),
        help="YAML configuration file (default: $AUTOSCALER_CONFIG; without either, "
        "SimpleScaleVM's or ScaleIt's environment variables describe the group)",
    )
    parser.add_argument(
        "config_file",
        nargs="?",
        metavar="CONFIG",
        help="the configuration file, as an argument (the same as --config CONFIG)",
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)
    parser.add_argument(
        "--watch-config",
        type=float,
        nargs="?",
        const=5.0,
        default=None,
        metavar="SECONDS",
        help="also reload when the configuration file's content changes, checked every "
        "SECONDS (default 5); SIGHUP reloads in any case",
    )
    web_config.add_arguments(parser)
    parser.add_argument(
        "--web.listen-address",
        dest="web_listen_address",
        metavar="HOST:PORT",
        default=None,
        help="serve the endpoints here instead of the configuration's `listen`",
    )


def add_once_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)
    parser.add_argument(
        "--dry-run", action="store_true", help="decide and print, never touch replicas"
    )


def config_path(args: argparse.Namespace) -> str | None:
    """The file named by `CONFIG` or `--config`; raises ValueError saying what to type."""
    given = getattr(args, "config_file", None)  # absent in Namespaces built by hand
    flag = args.config
    if flag is not None and flag.startswith("onfig"):  # `-config F` reads as `-c onfig`
        raise ValueError("`-config` is read as `-c onfig`: write --config FILE, or just FILE")
    if given and flag and flag != os.environ.get("AUTOSCALER_CONFIG") and flag != given:
        raise ValueError(f"two configuration files given ({given} and --config {flag}): pick one")
    return given or flag


def load(args: argparse.Namespace) -> Config | None:
    """The validated configuration, or None after printing every error (exit code 2)."""
    try:
        path = config_path(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return None
    try:
        return config_source.load(path, os.environ).config
    except ConfigError as e:
        source = config_source.describe(path, os.environ)
        print(f"error: invalid configuration ({source}):\n{e}", file=sys.stderr)
    except config_source.NoConfiguration as e:
        print(f"error: {e}", file=sys.stderr)
    return None


def _secrets(config: Config) -> list[str | None]:
    out: list[str | None] = [config.prometheus.password]
    if config.ha is not None:
        out.append(config.ha.password)
    token = config.prometheus.bearer_token_file
    if token and Path(token).is_file():
        out.append(Path(token).read_text().strip())
    return out


def _build(config: Config) -> dict[str, Provider] | None:
    providers: dict[str, Provider] = {}
    try:
        for g in config.groups:
            providers[g.name] = build_provider(g, config)
    except (ProviderError, OSError, ValueError) as e:
        print(f"error: cannot set up the provider of a group: {e}", file=sys.stderr)
        for p in providers.values():
            p.close()
        return None
    return providers


def _prepare(
    args: argparse.Namespace, *, dry_run: bool = False
) -> tuple[Config, dict[str, Provider]] | None:
    """Configuration, logging with secrets registered, and every group's provider."""
    config = load(args)
    if config is None:
        return None
    if dry_run:
        config = dataclasses.replace(
            config, groups=tuple(dataclasses.replace(g, dry_run=True) for g in config.groups)
        )
    logs.setup(config.log_level)
    warn_unsupported(os.environ)  # after setup: in the log format the operator reads
    for secret in _secrets(config):
        logs.redactor.add(secret)
    logs.redactor.registry.add_basic(config.prometheus.username, config.prometheus.password)
    providers = _build(config)
    return None if providers is None else (config, providers)


def _lock(config: Config, providers: dict[str, Provider]) -> StateLock | None:
    """The state directory's lock, or None after saying who holds it (exit code 2)."""
    try:
        return acquire(state_dir(config))
    except (StateDirLocked, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        for p in providers.values():
            p.close()
        return None


def _web(args: argparse.Namespace) -> tuple[bool, web_config.WebConfig | None]:
    """`--web.config.file` and `--web.listen-address`: (False, None) after printing why."""
    listen = getattr(args, "web_listen_address", None)
    if listen is not None:
        try:
            parse_host_port(listen)
        except ValueError as e:
            print(f"error: --web.listen-address {listen!r}: {e}", file=sys.stderr)
            return False, None
    try:
        return True, web_config.from_args(args)
    except ConfigError as e:
        print(web_config.invalid_message(args.web_config_file, e), file=sys.stderr)
        return False, None


def run(args: argparse.Namespace) -> int:
    ok, web = _web(args)  # before anything starts: a bad file is exit 2, like the config
    if not ok:
        return 2
    prepared = _prepare(args)
    if prepared is None:
        return 2
    config, providers = prepared
    if config.ha is not None:
        return _run(config, providers, args, web)  # etcd elects the one that acts: no lock
    # Before listening: a second instance says why it refuses, not "address in use".
    lock = _lock(config, providers)
    if lock is None:
        return 2
    try:
        return _run(config, providers, args, web)
    finally:
        lock.release()


def _run(
    config: Config,
    providers: dict[str, Provider],
    args: argparse.Namespace,
    web: web_config.WebConfig | None = None,
) -> int:
    path = config_path(args)  # already checked by load()
    metrics = Metrics()
    clock = SystemClock()
    shared = SharedState(config.interval_seconds, clock)
    listen = getattr(args, "web_listen_address", None) or config.listen
    try:
        _, stop_server = serve(listen, metrics, shared, web)
    except OSError as e:
        print(f"error: cannot listen on {listen}: {e}", file=sys.stderr)
        for p in providers.values():
            p.close()
        return 2
    try:
        elector = None if config.ha is None else ha_setup.elector(config, metrics, shared)
    except ha_setup.MissingClient as e:
        print(f"error: {e}", file=sys.stderr)
        stop_server()
        for p in providers.values():
            p.close()
        return 2
    memory = (
        open_store(config, clock) if elector is None else ha_setup.memory(config, elector, clock)
    )
    controller = Controller(
        config,
        providers,
        metrics,
        shared,
        bridge_target=sd_target,
        clock=clock,
        memory=memory,
        guard=elector,
    )
    reload.mark(controller, True)  # the configuration loaded at start is the last good one
    stop = threading.Event()
    reload_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        # A query in progress is abandoned at once; provider calls already started finish.
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    def request_reload(_signum: int, _frame: object) -> None:
        # Only a flag: the loop reloads between two cycles, never in the middle of one.
        log.info("SIGHUP received: reloading the configuration after this cycle")
        reload_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, request_reload)
    watched = config_source.describe(path, os.environ)
    every = getattr(args, "watch_config", None)
    if every is not None and (path or os.environ.get("AUTOSCALER_CONFIG")):
        reload.watch(watched, max(0.5, every), reload_requested, stop)
    log.info(
        "autoscaler started: %d group(s) %s, Prometheus %s, every %gs, serving %s (%s), "
        "planner memory in %s",
        len(config.groups),
        ", ".join(g.name for g in config.groups),
        redact_url(config.prometheus.url),
        config.interval_seconds,
        listen,
        "plain HTTP, no auth" if web is None else web.settings.describe(),
        memory.where,
    )
    try:
        controller.run(stop, reload_requested, lambda: reload.reload(path, controller))
    finally:
        controller.close()  # actions still running end first: only then is leadership given up
        if elector is not None:
            elector.stop()
        stop_server()
        log.info("autoscaler stopped; replicas left running")
    return 0


def once(args: argparse.Namespace) -> int:
    """One cycle, each group's decision printed as a JSON line: handy to try a configuration."""
    prepared = _prepare(args, dry_run=args.dry_run)
    if prepared is None:
        return 2
    config, providers = prepared
    if config.ha is not None and not args.dry_run:
        print(
            "error: ha is configured: `once` would act beside the elected leader; "
            "use --dry-run, or `run`",
            file=sys.stderr,
        )
        for p in providers.values():
            p.close()
        return 2
    # Acting beside a running daemon is what the lock forbids; a dry run only reads.
    lock = None if args.dry_run else _lock(config, providers)
    if lock is None and not args.dry_run:
        return 2
    try:
        return _once(config, providers)
    except ha_setup.MissingClient as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if lock is not None:
            lock.release()


def _once(config: Config, providers: dict[str, Provider]) -> int:
    clock = SystemClock()
    controller = Controller(
        config,
        providers,
        Metrics(),
        SharedState(config.interval_seconds),
        bridge_target=sd_target,
        clock=clock,
        # Reads a running daemon's memory, never writes it: one cycle tried by hand must not
        # overwrite the daemon's windows and cooldowns.
        memory=open_store(config, clock, read_only=True)
        if config.ha is None
        else ha_setup.memory(config, ha_setup.LeaderElector(config.ha), clock, read_only=True),
    )
    try:
        ok = controller.cycle()
    finally:
        controller.close()
    failed = False
    for name, rt in controller.groups.items():
        d = rt.decision
        errors = list(rt.action_errors)
        if rt.acting is not None and not rt.acting.done():
            errors.append("action still running when the cycle ended: its outcome is unknown")
        for error in errors:
            print(f"error: group {name}: {error}", file=sys.stderr)
        failed = failed or bool(errors)
        line = {"group": name, "decision": None if d is None else decision_json(d)}
        print(json.dumps({**line, "errors": errors}))
    # 1: a query, a listing or an action this cycle decided failed (scripts can rely on it)
    return 0 if ok and not failed else 1
