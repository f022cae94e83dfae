"""Local processes as replicas: the embedded default provider (used by `make demo` and tests).

Each replica is one OS process, by default `python -m autoscaler.demo.replica`, listening
on its own loopback port. The provider keeps no state in memory that matters: every
replica has a state file `<run_dir>/<group>/<replica_id>.json`, and processes run in
their own session so they outlive the autoscaler. A restarted autoscaler reads the state
files and adopts the running replicas under the same ids.

Crash safety of `create` (no orphans, no duplicates):
1. The state file is written (atomically: tmp + rename) with `"status": "starting"`, the
   chosen port and the command BEFORE the process is spawned.
2. The process is spawned with `AUTOSCALER_REPLICA=<group>/<replica_id>` in its
   environment (inherited by anything a custom command forks).
3. The state file is rewritten with the pid and the process start time, `"running"`.
If the autoscaler dies between 1 and 3, the record has no pid; `list` and `delete` then
find the process by scanning `/proc/*/environ` for that marker, so it is adopted or
stopped, never orphaned. A record without a process after a short grace period is
reported FAILED and `delete` removes it.

Pid reuse: the record holds the process start time (field 22 of `/proc/<pid>/stat`). A
pid whose start time differs is someone else's process: it is never signalled, and the
replica is reported FAILED.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoscaler.config import Config
from autoscaler.core.model import Replica, ReplicaState
from autoscaler.core.spec import GroupConfig
from autoscaler.providers.base import ActionResult, ReplicaProvider, delete_each

try:  # advisory lock between two autoscalers sharing a run_dir (Linux always has it)
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]

ENV_MARKER = "AUTOSCALER_REPLICA"
STARTING_GRACE_SECONDS = 10.0  # a record still without a process after this is FAILED
READY_TIMEOUT_SECONDS = 0.5  # per readiness probe of GET /metrics
VALID_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # a file name, no path tricks
PLACEHOLDERS = ("{port}", "{replica_id}", "{group}", "{host}")

DEFAULTS: dict[str, Any] = {
    "run_dir": "./run",
    "work_seconds": 1.0,
    "stop_timeout_seconds": 5.0,
    "host": "127.0.0.1",
    "command": None,
    # "slots" defaults to the group's replica_capacity
}
KNOWN_OPTIONS = frozenset(DEFAULTS) | {"slots"}


# --------------------------------------------------------------------------- options


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_options(options: Mapping[str, Any], path: str) -> list[str]:
    """Every problem in the `local` provider options, each naming key, bad value, allowed."""
    errors: list[str] = []
    if not isinstance(options, Mapping):
        return [f"{path}: got {options!r}, expected a mapping of options"]
    for key in sorted(set(options) - KNOWN_OPTIONS):
        errors.append(
            f"{path}.{key}: unknown option for the local provider; "
            f"allowed: {', '.join(sorted(KNOWN_OPTIONS))}"
        )
    if "run_dir" in options:
        v = options["run_dir"]
        if not isinstance(v, str) or not v.strip():
            errors.append(f"{path}.run_dir: got {v!r}, expected a non-empty directory path")
    if "slots" in options:
        v = options["slots"]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            errors.append(f"{path}.slots: got {v!r}, expected an integer >= 1")
    if "work_seconds" in options:
        v = options["work_seconds"]
        if not _is_number(v) or v < 0:
            errors.append(f"{path}.work_seconds: got {v!r}, expected a number >= 0")
    if "stop_timeout_seconds" in options:
        v = options["stop_timeout_seconds"]
        if not _is_number(v) or v <= 0:
            errors.append(f"{path}.stop_timeout_seconds: got {v!r}, expected a number > 0")
    if "host" in options:
        v = options["host"]
        if not isinstance(v, str) or not v.strip() or any(c.isspace() for c in v):
            errors.append(f"{path}.host: got {v!r}, expected a host name or IP, e.g. 127.0.0.1")
    if options.get("command") is not None:
        v = options["command"]
        if not isinstance(v, list) or not v or not all(isinstance(a, str) and a for a in v):
            errors.append(
                f"{path}.command: got {v!r}, expected a non-empty list of strings "
                f"(placeholders: {' '.join(PLACEHOLDERS)})"
            )
        elif not any("{port}" in a for a in v):
            errors.append(
                f"{path}.command: got {v!r}, expected the {{port}} placeholder somewhere "
                "(the replica must listen on the port the provider chose)"
            )
    return errors


# --------------------------------------------------------------------------- /proc helpers


def process_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot, None if gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ")"
    fields = raw[raw.rfind(")") + 2 :].split()
    # fields[0] is field 3 (state), so field 22 (starttime) is fields[19]
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _find_by_marker(marker: str) -> int | None:
    """The pid of a live process carrying `AUTOSCALER_REPLICA=<marker>` in its environment."""
    needle = f"{ENV_MARKER}={marker}".encode() + b"\0"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes() + b"\0"
        except OSError:
            continue
        if (b"\0" + env).find(b"\0" + needle) >= 0 and process_start_time(int(entry.name)):
            return int(entry.name)
    return None


def _free_port(host: str, avoid: set[int]) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port
    raise OSError("no free port found")


def _answers(host: str, port: int) -> bool:
    """True once the replica's HTTP server answers at all (any status counts)."""
    try:
        with urllib.request.urlopen(
            f"http://{host}:{port}/metrics", timeout=READY_TIMEOUT_SECONDS
        ) as resp:
            resp.read(1)
        return True
    except urllib.error.HTTPError:
        return True  # a custom replica may serve no /metrics: it is up nonetheless
    except (OSError, ValueError):
        return False


def _write_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the provider


@dataclass(frozen=True)
class LocalOptions:
    run_dir: Path
    slots: int
    work_seconds: float
    stop_timeout_seconds: float
    host: str
    command: tuple[str, ...] | None


class LocalProvider(ReplicaProvider):
    """Replicas of one group as local processes, with their state on disk."""

    kind = "local"

    def __init__(self, group: str, options: LocalOptions) -> None:
        self.group = group
        self.options = options
        self.dir = options.run_dir / group
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # reaped when they exit
        self._ready: set[str] = set()  # ids seen answering: not probed again
        self._deleting: set[str] = set()  # deletes in progress in this instance

    # ----- records

    def _path(self, replica_id: str) -> Path:
        return self.dir / f"{replica_id}.json"

    def _records(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for p in sorted(self.dir.glob("*.json")):
            try:
                rec = json.loads(p.read_text())
            except (OSError, ValueError):
                continue  # removed meanwhile, or a torn file: never written by us (atomic)
            if isinstance(rec, dict) and rec.get("id") == p.stem:
                out[p.stem] = rec
        return out

    def _locked(self) -> _DirLock:
        return _DirLock(self.dir / ".lock", self._lock)

    def _command(self, replica_id: str, port: int) -> list[str]:
        o = self.options
        template = list(o.command) if o.command else [
            sys.executable, "-m", "autoscaler.demo.replica",
            "--port", "{port}", "--host", "{host}",
            "--slots", str(o.slots), "--work-seconds", str(o.work_seconds),
            "--replica-id", "{replica_id}", "--group", "{group}",
        ]  # fmt: skip
        values = {"{port}": str(port), "{replica_id}": replica_id, "{group}": self.group}
        values["{host}"] = o.host
        out = []
        for arg in template:
            for k, v in values.items():
                arg = arg.replace(k, v)
            out.append(arg)
        return out

    def _live_pid(self, rec: dict[str, Any], *, repair: bool) -> int | None:
        """The live process of a record, or None. Finds processes of interrupted creates."""
        self._reap(rec["id"])
        pid, start = rec.get("pid"), rec.get("start_time")
        if isinstance(pid, int) and isinstance(start, int):
            return pid if process_start_time(pid) == start else None
        found = _find_by_marker(f"{self.group}/{rec['id']}")
        if found is not None and repair:
            st = process_start_time(found)
            if st is not None:
                rec.update(pid=found, start_time=st, status="running")
                with self._locked():
                    if self._path(rec["id"]).exists():
                        _write_atomic(self._path(rec["id"]), rec)
        return found

    def _reap(self, replica_id: str) -> None:
        child = self._children.get(replica_id)
        if child is not None and child.poll() is not None:
            self._children.pop(replica_id, None)

    # ----- Provider interface

    def list(self) -> list[Replica]:
        now = time.time()
        records = self._records()
        states: dict[str, ReplicaState] = {}
        probe: list[str] = []
        for rid, rec in records.items():
            pid = self._live_pid(rec, repair=True)
            if rid in self._deleting:
                states[rid] = ReplicaState.DELETING
            elif rec.get("status") == "deleting":
                # a delete interrupted by a restart: FAILED, so the controller deletes again
                states[rid] = ReplicaState.FAILED
            elif pid is None:
                young = rec.get("pid") is None and now - rec.get("created_at", 0) < (
                    STARTING_GRACE_SECONDS
                )
                states[rid] = ReplicaState.BUILDING if young else ReplicaState.FAILED
                self._ready.discard(rid)
            elif rid in self._ready:
                states[rid] = ReplicaState.ACTIVE
            else:
                probe.append(rid)
        if probe:
            with ThreadPoolExecutor(max_workers=min(8, len(probe))) as pool:
                answers = pool.map(
                    lambda rid: _answers(self.options.host, records[rid]["port"]), probe
                )
                for rid, ok in zip(probe, answers, strict=True):
                    if ok:
                        self._ready.add(rid)
                    states[rid] = ReplicaState.ACTIVE if ok else ReplicaState.BUILDING
        return [self._replica(records[rid], states[rid]) for rid in records]

    def _replica(self, rec: dict[str, Any], state: ReplicaState) -> Replica:
        meta = {"port": str(rec["port"]), "status": str(rec.get("status", ""))}
        if rec.get("pid") is not None:
            meta["pid"] = str(rec["pid"])
        return Replica(
            id=rec["id"],
            group=self.group,
            state=state,
            created_at=float(rec["created_at"]),
            address=f"{rec['host']}:{rec['port']}",
            name=rec["id"],
            metadata=meta,
        )

    def create(self, count: int) -> ActionResult:
        result = ActionResult()
        for _ in range(max(0, count)):
            rid, err = self._create_one()
            if err is None:
                result.succeeded.append(rid)
            else:
                result.failed.append((rid, err))
        return result

    def _create_one(self) -> tuple[str, str | None]:
        with self._locked():
            records = self._records()
            rid = f"{self.group}-{secrets.token_hex(3)}"
            while rid in records:
                rid = f"{self.group}-{secrets.token_hex(3)}"
            try:
                port = _free_port(
                    self.options.host, {int(r["port"]) for r in records.values() if r.get("port")}
                )
            except OSError as e:
                return rid, f"cannot pick a port on {self.options.host}: {e}"
            command = self._command(rid, port)
            rec: dict[str, Any] = {
                "id": rid,
                "group": self.group,
                "host": self.options.host,
                "port": port,
                "command": command,
                "created_at": time.time(),
                "status": "starting",
                "pid": None,
                "start_time": None,
            }
            path = self._path(rid)
            _write_atomic(path, rec)  # before the spawn: a crash now leaves no orphan
            env = dict(os.environ, **{ENV_MARKER: f"{self.group}/{rid}"})
            try:
                with open(self.dir / f"{rid}.log", "ab") as log:
                    child = subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        start_new_session=True,  # outlives the autoscaler, own process group
                    )
            except OSError as e:
                path.unlink(missing_ok=True)
                (self.dir / f"{rid}.log").unlink(missing_ok=True)
                return rid, f"cannot start {command[0]!r}: {e.strerror or e}"
            self._children[rid] = child
            start = process_start_time(child.pid)
            if start is None:  # died at once: keep the record, list reports FAILED
                child.poll()
            rec.update(pid=child.pid, start_time=start, status="running")
            _write_atomic(path, rec)
            return rid, None

    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        return delete_each(replica_ids, self._delete_one)

    def _delete_one(self, rid: str) -> str | None:
        if not VALID_ID.fullmatch(rid):
            return f"{rid!r} is not a local replica id"
        path = self._path(rid)
        try:
            rec = json.loads(path.read_text())
        except FileNotFoundError:
            return None  # already gone: idempotent
        except (OSError, ValueError) as e:
            return f"cannot read state file {path}: {e}"
        self._deleting.add(rid)
        try:
            rec["status"] = "deleting"
            with self._locked():
                if path.exists():
                    _write_atomic(path, rec)
            pid = self._live_pid(rec, repair=False)
            if pid is not None:
                start = process_start_time(pid)
                if not self._stop(rid, pid, start):
                    return f"process {pid} still running after SIGKILL"
            path.unlink(missing_ok=True)
            (self.dir / f"{rid}.log").unlink(missing_ok=True)
            self._ready.discard(rid)
            return None
        finally:
            self._deleting.discard(rid)

    def _stop(self, rid: str, pid: int, start: int | None) -> bool:
        """SIGTERM, wait, SIGKILL; signal only while the start time still matches."""

        def gone(wait: float) -> bool:
            deadline = time.monotonic() + wait
            while True:
                self._reap(rid)
                if process_start_time(pid) != start:
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)

        for sig, wait in (
            (signal.SIGTERM, self.options.stop_timeout_seconds),
            (signal.SIGKILL, 5.0),
        ):
            if start is None or process_start_time(pid) != start:
                return True  # gone, or the pid now belongs to another process
            try:
                os.killpg(pid, sig)  # the replica leads its own group: reach its children
            except ProcessLookupError:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    return True
            except PermissionError:
                return False
            if gone(wait):
                return True
        return False

    def close(self) -> None:
        # the replicas keep running; Python reaps the Popen objects it still tracks
        self._children.clear()


class _DirLock:
    """Thread lock plus an advisory file lock on the group directory."""

    def __init__(self, path: Path, lock: threading.Lock) -> None:
        self.path = path
        self.lock = lock
        self.fd: int | None = None

    def __enter__(self) -> _DirLock:
        self.lock.acquire()
        if fcntl is not None:
            self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None
        self.lock.release()


def _run_dir(value: str, config: Config) -> Path:
    """A relative run_dir is relative to the configuration file, not to the working
    directory: started from elsewhere, the daemon must find (and adopt) the same
    replicas instead of orphaning them and starting new ones."""
    path = Path(value).expanduser()
    if path.is_absolute() or config.base_dir is None:
        return path
    return config.base_dir / path


def build(group: GroupConfig, config: Config) -> LocalProvider:
    """The provider for `group`; raises ValueError listing every bad option."""
    options = dict(group.provider.options or {})
    errors = check_options(options, f"groups.{group.name}.provider.options")
    if errors:
        raise ValueError("; ".join(errors))
    slots = options.get("slots")
    if slots is None:
        slots = max(1, int(group.replica_capacity))
    cmd = options.get("command")
    return LocalProvider(
        group.name,
        LocalOptions(
            run_dir=_run_dir(options.get("run_dir", DEFAULTS["run_dir"]), config),
            slots=int(slots),
            work_seconds=float(options.get("work_seconds", DEFAULTS["work_seconds"])),
            stop_timeout_seconds=float(
                options.get("stop_timeout_seconds", DEFAULTS["stop_timeout_seconds"])
            ),
            host=str(options.get("host", DEFAULTS["host"])),
            command=tuple(cmd) if cmd else None,
        ),
    )
