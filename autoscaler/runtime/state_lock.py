"""One acting instance per state directory: an exclusive lock on `<state_dir>/autoscaler.lock`.

Without etcd there is no leader election, and two daemons on one configuration would both
create and delete (issue 11). The daemon takes `flock(LOCK_EX)` at start and holds it for
its lifetime; the kernel drops it when the process dies, however it dies (SIGKILL too), so
a stale file never blocks a restart. The file holds who took it (pid, host, start time),
for the message the second instance prints.

flock is advisory and per host: it does not protect a state directory on a network file
system shared by two machines (NFS may not propagate it); use HA on etcd for that.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = "autoscaler.lock"


class StateDirLocked(Exception):
    """Another process holds the lock: the message names it."""


class StateLock:
    """The held lock; `release` (or process exit) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(info["started"])))
        return f"pid {int(info['pid'])} on {info['hostname']}, started {started}"
    except (ValueError, KeyError, TypeError, OSError):
        return "a process that has not written its name yet"


def acquire(directory: Path) -> StateLock:
    """Take the lock without waiting; StateDirLocked when another process has it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise StateDirLocked(
            f"state directory {directory} is in use by another autoscaler ({holder}; "
            f"lock {path}): only one instance may act on it. Stop that one, or give this "
            "one another state_dir"
        ) from None
    except OSError:
        os.close(fd)
        raise
    info = {"pid": os.getpid(), "hostname": socket.gethostname(), "started": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    return StateLock(path, fd)
