"""The suite's control file: what the faulty provider, the replicas and the daemon's clock
do right now. Written atomically by the suite, re-read by the others at most every 0.1 s.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

ENV = "AUTOSCALER_CHAOS_CONTROL"


def write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


class Reader:
    """The control file's content, cached for 0.1 s (read in hot paths: time.time)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._at = -1.0
        self._data: dict[str, Any] = {}

    def get(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            if now - self._at >= 0.1:
                self._at = now
                try:
                    self._data = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    pass  # keep the last good content
            return self._data
