"""SIGHUP: read the configuration again and apply it between two cycles.

The file is loaded exactly as `run`, `once` and `check` load it (runtime/config_source.py).
A file that does not validate, or whose new providers cannot be built, is rejected with
the message `check` prints and the last good configuration keeps running;
`autoscaler_config_last_reload_successful` says which happened, as Prometheus's own gauge does.
Settings bound at start (the listen address, the planner memory's directory) keep their
running value until a restart, with a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable

from autoscaler.config import Config, ConfigError
from autoscaler.providers.base import Provider
from autoscaler.providers.registry import build_provider
from autoscaler.runtime import config_source
from autoscaler.runtime.controller import Controller
from autoscaler.runtime.logs import redactor
from autoscaler.runtime.state_store import state_dir

log = logging.getLogger("autoscaler")

# Top-level settings read once at start: (name, how to compare).
_AT_START: tuple[tuple[str, Callable[[Config], object]], ...] = (
    ("listen", lambda c: c.listen),
    ("state_dir", state_dir),
    ("ha", lambda c: c.ha),
)


def mark(controller: Controller, ok: bool) -> None:
    controller.metrics.reload_ok.set(1 if ok else 0)
    if ok:
        controller.metrics.reload_time.set(time.time())


def invalid_message(source: str, error: ConfigError) -> str:
    """What `autoscaler check` prints for an invalid configuration."""
    count = len(error.errors)
    lines = [f"{source}: invalid configuration, {count} error{'s' if count != 1 else ''}:"]
    return "\n".join(lines + [f"  {e}" for e in error.errors])


def _keep_start_settings(running: Config, new: Config) -> Config:
    for name, value in _AT_START:
        if value(new) != value(running):
            log.warning(
                "reload: %s changed (%s -> %s); it needs a restart, keeping %s",
                name,
                value(running),
                value(new),
                value(running),
            )
    # Keep the running values, so the next reload compares against what is in effect.
    return dataclasses.replace(
        new, listen=running.listen, state_dir=running.state_dir, ha=running.ha
    )


def reload(
    path: str | None,
    controller: Controller,
    build: Callable[..., Provider] = build_provider,
) -> bool:
    """Load and apply the configuration; False (and the old one kept) when it is bad."""
    source = config_source.describe(path, os.environ)
    try:
        loaded = config_source.load(path, os.environ)
    except ConfigError as e:
        message = invalid_message(source, e)
        log.error("reload rejected, keeping the running configuration: %s", message)
        mark(controller, False)
        return False
    except Exception as e:  # noqa: BLE001 - NoConfiguration, OSError, a loader bug: all reject
        log.error("reload rejected, keeping the running configuration: %s", e)
        mark(controller, False)
        return False
    running = controller.config
    new = _keep_start_settings(running, loaded.config)
    if state_dir(new) != state_dir(running):
        # state_dir unset: derived from the first local group's run_dir, which may move.
        new = dataclasses.replace(new, state_dir=str(state_dir(running)))
    redactor.add(new.prometheus.password)
    token = new.prometheus.bearer_token_file
    if token and os.path.isfile(token):
        with open(token) as f:
            redactor.add(f.read().strip())
    try:
        changes = controller.apply_config(new, lambda g: build(g, new))
    except Exception as e:  # noqa: BLE001 - a provider SDK may raise anything
        log.error(
            "reload rejected, keeping the running configuration: cannot set up the provider "
            "of a group: %s",
            e,
        )
        mark(controller, False)
        return False
    mark(controller, True)
    logging.getLogger().setLevel(new.log_level.upper())
    log.info(
        "configuration reloaded from %s: %d group(s) %s; added %s, removed %s (replicas left "
        "running), changed %s",
        source,
        len(new.groups),
        ", ".join(g.name for g in new.groups),
        ", ".join(changes["added"]) or "none",
        ", ".join(changes["removed"]) or "none",
        ", ".join(changes["changed"]) or "none",
    )
    return True


def _fingerprint(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None  # missing for a moment (an editor's rename): a reload would reject it


def watch(
    path: str, every: float, request: threading.Event, stop: threading.Event
) -> threading.Thread:
    """`--watch-config`: request a reload when the file's content changes (its hash, not
    its mtime: a touch alone does not reload, an edit within the mtime's resolution does)."""

    def loop() -> None:
        last = _fingerprint(path)
        while not stop.wait(every):
            now = _fingerprint(path)
            if now is not None and last is not None and now != last:
                log.info("configuration file %s changed: reloading after this cycle", path)
                request.set()
            if now is not None:
                last = now

    thread = threading.Thread(target=loop, name="watch-config", daemon=True)
    thread.start()
    return thread
