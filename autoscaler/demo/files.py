"""The files `autoscaler demo` runs with, found inside the installed package.

prometheus.yml, rules/*.yml and local.yaml in this directory are symlinks to the
repository's own prometheus.yml, rules/ and examples/local.yaml in a source tree (one
copy, shared with docker-compose.yml and the tests); a built wheel holds real copies
(pyproject.toml `[tool.setuptools.package-data]`). prometheus.yml loads rules/*.yml
relative to itself, in both layouts.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(name: str) -> Path:
    """The packaged file `name` (e.g. "prometheus.yml") as a path on disk."""
    found = Path(str(resources.files("autoscaler.demo").joinpath(name)))
    if not found.is_file():
        raise FileNotFoundError(
            f"{found} is missing: the package is incomplete (reinstall it with `pip install .`)"
        )
    return found


def prometheus_yml() -> Path:
    return path("prometheus.yml")


def example_config() -> Path:
    return path("local.yaml")
