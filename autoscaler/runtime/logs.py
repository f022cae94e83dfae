"""Logging set-up: secrets redacted, and repeated failures logged once.

A failing dependency (Prometheus down, a cloud API erroring) would otherwise print the
same line every cycle; operators want one line when it starts, with context, and one
when it recovers, while the metrics count every occurrence.
"""

from __future__ import annotations

import logging
import threading

REDACTED = "<redacted>"


class RedactingFilter(logging.Filter):
    """Replaces every registered secret value in log records with <redacted>."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:  # a 1-3 character "secret" would shred the logs
            self.secrets.add(secret)

    def redact(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self.redact(record.getMessage())
            record.args = None
        return True


redactor = RedactingFilter()


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # urllib3 warns on every retry, every cycle; our FailureLog already says it once.
    logging.getLogger("urllib3").setLevel(logging.ERROR)


class FailureLog:
    """Log a failure when it starts or changes, and its recovery; stay quiet in between."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.lock = threading.Lock()
        self.active: dict[str, tuple[str, int]] = {}  # key -> (message, repeats)

    def failed(self, key: str, message: str) -> None:
        with self.lock:
            previous = self.active.get(key)
            if previous and previous[0] == message:
                self.active[key] = (message, previous[1] + 1)
                return
            self.active[key] = (message, 1)
        self.logger.warning("%s failed: %s", key, message)

    def ok(self, key: str) -> None:
        with self.lock:
            previous = self.active.pop(key, None)
        if previous:
            self.logger.info("%s recovered after %d failed attempt(s)", key, previous[1])

    def failing(self) -> dict[str, str]:
        with self.lock:
            return {k: m for k, (m, _) in self.active.items()}
