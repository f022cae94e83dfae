"""Logging set-up: secrets redacted, and repeated failures logged once.

A failing dependency (Prometheus down, a cloud API erroring) would otherwise print the
same line every cycle; operators want one line when it starts, with context, and one
when it recovers, while the metrics count every occurrence.
"""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

from autoscaler.config.secrets import SecretRegistry
from autoscaler.config.secrets import registry as secret_registry

REDACTED = "<redacted>"


class RedactingFilter(logging.Filter):
    """Replaces every registered secret, in every form, in log records with <redacted>.

    The values live in the shared registry (autoscaler.config.secrets) so the observe
    layer registers a re-read bearer token the moment it reads it.
    """

    def __init__(self, registry: SecretRegistry = secret_registry) -> None:
        super().__init__()
        self.registry = registry

    @property
    def secrets(self) -> frozenset[str]:
        return self.registry.values

    def add(self, secret: str | None) -> None:
        self.registry.add(secret)

    def redact(self, text: str) -> str:
        return self.registry.redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            # A traceback's message may hold an echoed header: format it here, redacted.
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
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


class FailureKey(NamedTuple):
    """What failed: structured, so a group's errors are found by equality, never by
    searching a string (a group named `list` must not match `provider web list`)."""

    scope: str  # "prometheus", "provider", "planner"
    group: str | None  # None for daemon-wide dependencies (Prometheus)
    op: str  # "query target", "list", "create", "plan", ...

    @property
    def label(self) -> str:
        """The text logs and /status show, e.g. `provider web list`."""
        return " ".join(part for part in self if part)


class FailureLog:
    """Log a failure when it starts or changes, and its recovery; stay quiet in between."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.lock = threading.Lock()
        self.active: dict[FailureKey, tuple[str, int]] = {}  # key -> (message, repeats)

    def failed(self, key: FailureKey, message: str) -> None:
        message = redactor.redact(message)  # stored for /status too, not only logged
        with self.lock:
            previous = self.active.get(key)
            if previous and previous[0] == message:
                self.active[key] = (message, previous[1] + 1)
                return
            self.active[key] = (message, 1)
        self.logger.warning("%s failed: %s", key.label, message)

    def ok(self, key: FailureKey) -> None:
        with self.lock:
            previous = self.active.pop(key, None)
        if previous:
            self.logger.info("%s recovered after %d failed attempt(s)", key.label, previous[1])

    def failing(self) -> dict[FailureKey, str]:
        """Every active failure and its latest message."""
        with self.lock:
            return {k: m for k, (m, _) in self.active.items()}

    def failing_for(self, group: str | None) -> dict[str, str]:
        """One group's active failures (None: the daemon-wide ones), by label."""
        with self.lock:
            return {k.label: m for k, (m, _) in self.active.items() if k.group == group}
