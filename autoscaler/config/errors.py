"""The one error type of configuration loading."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration is invalid. `errors` holds every problem found, one message each."""

    def __init__(self, errors: list[str], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)
