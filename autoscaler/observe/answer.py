"""Validation of Prometheus HTTP API answers.

Every answer is checked in full before any of it is read: an HTTP 200 whose body is not
a Prometheus query result (a proxy's HTML page, `status: error`, no `data`, `result` as
an object, a series without `metric`, values that are not `[timestamp, "value"]` pairs,
a non-finite timestamp) is a failed query, never data and never an exception that could
reach the control loop.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass


class InvalidAnswer(ValueError):
    """The answer is not the Prometheus result the query asked for."""


@dataclass(frozen=True)
class Series:
    """One series of a result: its labels and its samples (timestamp, value), ascending."""

    labels: dict[str, str]
    samples: tuple[tuple[float, float], ...]


def parse_answer(body: bytes, status_code: int, expect: Sequence[str]) -> list[Series]:
    """The series of a query answer whose `resultType` must be one of `expect`.

    Raises InvalidAnswer saying what is wrong (short, no body dump beyond a prefix).
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        prefix = body[:80].decode("utf-8", "replace")
        raise InvalidAnswer(f"HTTP {status_code}, not JSON: {prefix!r}") from None
    if not isinstance(doc, dict):
        raise InvalidAnswer(f"HTTP {status_code}, JSON {type(doc).__name__}, not an object")
    status = doc.get("status")
    if status != "success":
        kind, error = doc.get("errorType"), doc.get("error")
        detail = f"{kind}: {error}" if kind or error else f"status {status!r}"
        raise InvalidAnswer(f"HTTP {status_code}, {detail}")
    if status_code != 200:
        raise InvalidAnswer(f"HTTP {status_code} with status success")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise InvalidAnswer("no `data` object")
    kind = data.get("resultType")
    if not isinstance(kind, str) or kind not in expect:
        raise InvalidAnswer(f"resultType {kind!r}, expected {' or '.join(expect)}")
    result = data.get("result")
    if not isinstance(result, list):
        raise InvalidAnswer(f"`result` is {type(result).__name__}, not a list")
    return [_series(s, kind, i) for i, s in enumerate(result)]


def _series(raw: object, kind: str, i: int) -> Series:
    where = f"result[{i}]"
    if not isinstance(raw, dict):
        raise InvalidAnswer(f"{where} is {type(raw).__name__}, not an object")
    labels = raw.get("metric")
    if not isinstance(labels, dict):
        raise InvalidAnswer(f"{where} has no `metric` object")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise InvalidAnswer(f"{where}.metric has a label that is not a string")
    samples: tuple[tuple[float, float], ...]
    if kind == "vector":
        if "value" not in raw:
            raise InvalidAnswer(f"{where} has no `value`")
        samples = (_sample(raw["value"], f"{where}.value"),)
    else:
        values = raw.get("values")
        if not isinstance(values, list):
            raise InvalidAnswer(f"{where} has no `values` list")
        samples = tuple(_sample(v, f"{where}.values[{j}]") for j, v in enumerate(values))
        if any(t0 >= t1 for (t0, _), (t1, _) in zip(samples, samples[1:], strict=False)):
            raise InvalidAnswer(f"{where}.values are not in ascending time order")
    return Series(labels=dict(labels), samples=samples)


def _sample(raw: object, where: str) -> tuple[float, float]:
    """[timestamp, "value"]: a finite number and a string float() reads. The value may
    be NaN or infinite (Prometheus writes "NaN", "+Inf"); the decision core judges it."""
    if not (isinstance(raw, list) and len(raw) == 2):
        raise InvalidAnswer(f"{where} is not a [timestamp, value] pair")
    ts, value = raw
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise InvalidAnswer(f"{where} has a timestamp that is not a finite number: {ts!r}")
    if not isinstance(value, str):
        raise InvalidAnswer(f"{where} has a value that is not a string: {value!r}")
    try:
        v = float(value)
    except ValueError:
        raise InvalidAnswer(f"{where} has a value that is not a number: {value[:40]!r}") from None
    return float(ts), v
