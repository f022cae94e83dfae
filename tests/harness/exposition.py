"""Samples out of a /metrics page (the text exposition format), for tests."""

from __future__ import annotations


def sample_values(text: str, name: str, labels: dict[str, str] | None = None) -> list[float]:
    """The values of every sample named exactly `name` that carries `labels`."""
    out = []
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if line.startswith("#") or series.split("{")[0] != name:
            continue
        if labels and not all(f'{k}="{v}"' in series for k, v in labels.items()):
            continue
        out.append(float(value))
    return out
