"""Where the planner's memory survives a restart: a small JSON file in the state directory.

The memory is the stabilization window (recent recommendations) and the time of the last
accepted action per direction (issue #9: a crash loop must not become a fast scale-in).
It is kept on this process's monotonic timeline and persisted as wall-clock stamps
(`autoscaler.core.clock`), validated on load and ignored, with one warning, when it is
corrupt, from another version, saved "in the future" (the wall clock went back) or older
than any window it could matter for. Ignored memory is no worse than none: the controller
then starts from `initial_state`, as it always did.

`encode` and `decode` are the persisted form and its checks; a store only moves documents.
Two backends implement `PlannerMemoryStore` with them: this file store (one instance per
state directory) and, under HA, the etcd store (runtime/ha/memory.py), which every
instance reads and only the leader writes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from autoscaler.config import Config
from autoscaler.core.clock import (
    FUTURE_TOLERANCE_SECONDS,
    Clock,
    Reading,
    read,
    to_monotonic,
    to_wall,
)
from autoscaler.core.model import PlannerState
from autoscaler.core.planner import memory_horizon
from autoscaler.providers.local import DEFAULTS as LOCAL_DEFAULTS

__all__ = [
    "FILE_NAME",
    "VERSION",
    "InvalidMemory",
    "JsonFileMemoryStore",
    "PlannerMemoryStore",
    "decode",
    "encode",
    "open_store",
    "state_dir",
]

log = logging.getLogger(__name__)

FILE_NAME = "planner-memory.json"
VERSION = 1
MAX_RECOMMENDATIONS = 100_000  # a 1 h window at 1 s intervals has 3600: more is not ours


class PlannerMemoryStore(Protocol):
    """The planner memory of each group, on this process's monotonic timeline."""

    @property
    def where(self) -> str:
        """Where the memory is kept, for the start-up log line."""
        ...

    def load(self, group: str) -> PlannerState | None:
        """The group's memory, or None when there is none worth trusting (logged)."""
        ...

    def save(self, group: str, state: PlannerState) -> None:
        """Persist the group's memory; raises OSError when it cannot."""
        ...


class InvalidMemory(ValueError):
    """The persisted memory cannot be used; the message says why, for the one warning."""


def encode(state: PlannerState, at: Reading) -> dict[str, Any]:
    """The persisted form of one group's memory: wall-clock stamps and when it was saved."""

    def stamp(t: float | None) -> float | None:
        return None if t is None else to_wall(t, at)

    return {
        "saved_at": at.wall,
        "recommendations": [[to_wall(t, at), n] for t, n in state.recommendations],
        "last_scale_up": stamp(state.last_scale_up),
        "last_scale_down": stamp(state.last_scale_down),
    }


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidMemory(f"{what} is not a finite number: {value!r}")
    if value < 0:
        raise InvalidMemory(f"{what} is negative: {value!r}")
    return float(value)


def _stamp(value: Any, what: str, saved_at: float) -> float:
    t = _number(value, what)
    if t > saved_at:
        raise InvalidMemory(f"{what} {t} is after the memory was saved ({saved_at})")
    return t


def decode(entry: Any, at: Reading, horizon: float) -> PlannerState:
    """One group's persisted memory on this process's timeline; raises InvalidMemory.

    `horizon`: the longest window or cooldown of the group; older stamps cannot matter
    and are dropped, and memory saved longer ago than that is stale as a whole.
    """
    keys = {"saved_at", "recommendations", "last_scale_up", "last_scale_down"}
    if not isinstance(entry, dict) or set(entry) != keys:
        raise InvalidMemory(f"expected an object with keys {sorted(keys)}")
    saved_at = _number(entry["saved_at"], "saved_at")
    raw = entry["recommendations"]
    if not isinstance(raw, list) or len(raw) > MAX_RECOMMENDATIONS:
        raise InvalidMemory(f"recommendations is not a list of at most {MAX_RECOMMENDATIONS}")
    pairs: list[tuple[float, int]] = []
    for i, pair in enumerate(raw):
        if not isinstance(pair, list) or len(pair) != 2:
            raise InvalidMemory(f"recommendations[{i}] is not a [time, count] pair")
        t = _stamp(pair[0], f"recommendations[{i}] time", saved_at)
        n = pair[1]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidMemory(f"recommendations[{i}] count is not an integer >= 0: {n!r}")
        pairs.append((t, n))
    last = {
        key: None if entry[key] is None else _stamp(entry[key], key, saved_at)
        for key in ("last_scale_up", "last_scale_down")
    }
    age = at.wall - saved_at
    if age < -FUTURE_TOLERANCE_SECONDS:
        raise InvalidMemory(f"saved {-age:.0f}s in the future: the wall clock went back")
    if age >= horizon:
        raise InvalidMemory(f"stale: saved {age:.0f}s ago, longer than any window ({horizon:g}s)")

    def mono(stamp: float | None) -> float | None:
        return None if stamp is None else to_monotonic(stamp, at, horizon)

    recommendations: list[tuple[float, int]] = []
    for t, n in sorted(pairs):
        m = mono(t)
        if m is not None:
            recommendations.append((m, n))
    return PlannerState(
        recommendations=tuple(recommendations),
        last_scale_up=mono(last["last_scale_up"]),
        last_scale_down=mono(last["last_scale_down"]),
    )


class JsonFileMemoryStore:
    """Every group's memory in one JSON file, `<directory>/planner-memory.json`.

    Read once, at the first load; every save rewrites the whole file atomically (a temporary
    file, fsync, rename), so a crash leaves the old memory or the new one, never half.
    Groups not saved yet keep what was read, so a group whose provider could not be listed
    at start-up loses nothing; groups of another daemon sharing the directory are kept.
    """

    def __init__(
        self,
        directory: Path,
        clock: Clock,
        horizons: Mapping[str, float],
        *,
        read_only: bool = False,
    ) -> None:
        self.path = Path(directory) / FILE_NAME
        self.clock = clock
        self.horizons = dict(horizons)
        self.read_only = read_only
        self._entries: dict[str, Any] | None = None

    @property
    def where(self) -> str:
        return str(self.path)

    def _read(self) -> dict[str, Any]:
        """This daemon's groups as first read (warnings logged once, then cached)."""
        if self._entries is None:
            on_disk = self._on_disk(warn=True)
            self._entries = {k: v for k, v in on_disk.items() if k in self.horizons}
        return self._entries

    def _on_disk(self, *, warn: bool) -> dict[str, Any]:
        """Every group in the file now; {} when there is none or it is unusable."""
        problem = None
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if warn:
                log.info("no planner memory at %s yet: starting fresh", self.path)
            return {}
        except (OSError, UnicodeDecodeError) as e:
            problem = f"unreadable: {e}"
        except ValueError as e:
            problem = f"is not JSON: {e}"
        else:
            if not isinstance(doc, dict) or doc.get("version") != VERSION:
                version = doc.get("version") if isinstance(doc, dict) else None
                problem = f"has version {version!r}, expected {VERSION}"
            elif not isinstance(doc.get("groups"), dict):
                problem = "has no groups object"
            else:
                return {str(k): v for k, v in doc["groups"].items()}
        if warn:
            log.warning("planner memory %s %s: starting fresh", self.path, problem)
        return {}

    def load(self, group: str) -> PlannerState | None:
        entry = self._read().get(group)
        horizon = self.horizons.get(group, 0.0)
        if entry is None or horizon <= 0:
            return None  # nothing saved, or no window nor cooldown: nothing to remember
        try:
            state = decode(entry, read(self.clock), horizon)
        except InvalidMemory as e:
            log.warning("planner memory of group %s ignored (%s): starting fresh", group, e)
            return None
        log.info(
            "group %s: planner memory restored (%d recommendations)",
            group,
            len(state.recommendations),
        )
        return state

    def save(self, group: str, state: PlannerState) -> None:
        entries = self._read()
        entries[group] = encode(state, read(self.clock))
        if self.read_only:
            return
        # Another daemon sharing the directory (a run_dir, say) keeps its own groups.
        others = {k: v for k, v in self._on_disk(warn=False).items() if k not in self.horizons}
        doc = {"version": VERSION, "groups": {**others, **entries}}
        _write_atomically(self.path, json.dumps(doc, separators=(",", ":"), sort_keys=True))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself survives a power cut only once the directory is synced.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def state_dir(config: Config) -> Path:
    """The directory of the planner's memory.

    `state_dir` when set, else the first local group's run_dir (it already holds that
    daemon's replica state), else `.autoscaler-state` next to the configuration file.
    Relative paths are relative to the configuration file's directory, as run_dir is
    (to the working directory for a configuration from SimpleScaleVM's variables).
    """
    chosen: str | None = config.state_dir
    if chosen is None:
        local = [g for g in config.groups if g.provider.type == "local"]
        if local:
            chosen = str(local[0].provider.options.get("run_dir", LOCAL_DEFAULTS["run_dir"]))
        else:
            chosen = ".autoscaler-state"
    path = Path(chosen).expanduser()
    if path.is_absolute() or config.base_dir is None:
        return path
    return config.base_dir / path


def open_store(config: Config, clock: Clock, *, read_only: bool = False) -> JsonFileMemoryStore:
    """The daemon's file store, in `state_dir(config)`, with each group's horizon."""
    horizons = {g.name: memory_horizon(g) for g in config.groups}
    return JsonFileMemoryStore(state_dir(config), clock, horizons, read_only=read_only)
