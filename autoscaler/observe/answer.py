"""Validation of Prometheus HTTP API answers.

Every answer is checked in full before any of it is read: an HTTP 200 whose body is not
a Prometheus query result (a proxy's HTML page, `status: error`, no `data`, `result` as
an object, a series without `metric`, values that are not `[timestamp, "value"]` pairs,
a non-finite timestamp) is a failed query, never data and never an exception that could
reach the control loop.
"""

from __future__ import annotations

import functools
import gc
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec


class InvalidAnswer(ValueError):
    """The answer is not the Prometheus result the query asked for."""


@dataclass(frozen=True)
class Series:
    """One series of a result: its labels and its samples (timestamp, value), ascending."""

    labels: dict[str, str]
    samples: tuple[tuple[float, float], ...]


def parse_answer(body: bytes | bytearray, status_code: int, expect: Sequence[str]) -> list[Series]:
    """The series of a query answer whose `resultType` must be one of `expect`.

    Raises InvalidAnswer saying what is wrong (short, no body dump beyond a prefix).
    """
    return parse_result(body, status_code, expect)[1]


def parse_result(
    body: bytes | bytearray, status_code: int, expect: Sequence[str]
) -> tuple[str, list[Series]]:
    """As `parse_answer`, with the answer's `resultType` (one of `expect`) beside it."""
    # No garbage collection while decoding: a 100,000-series answer is millions of new
    # objects, none of them cyclic, and collections triggered by their count alone
    # cost more than the decoding (restored as it was, whatever happens).
    paused = gc.isenabled()
    gc.disable()
    try:
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
        if kind == "vector":
            return kind, _vector(result)
        return kind, [_series(s, kind, i) for i, s in enumerate(result)]
    finally:
        if paused:
            gc.enable()


def _vector(result: list[object]) -> list[Series]:
    """An instant vector's series: the checks of `_series`, unrolled for the common case
    (the answer may have 100,000 series); anything unusual is judged by `_series`."""
    out = []
    for i, raw in enumerate(result):
        # JSON objects decode to dicts with string keys: only the values need a look.
        if type(raw) is dict:
            labels, pair = raw.get("metric"), raw.get("value")
            if type(labels) is dict and type(pair) is list and len(pair) == 2:
                ts, value = pair
                if (type(ts) is float or type(ts) is int) and type(value) is str:
                    try:
                        v = float(value)
                    except ValueError:
                        v = None
                    if v is not None and math.isfinite(ts):
                        for label in labels.values():
                            if type(label) is not str:
                                break
                        else:
                            out.append(Series(labels, ((float(ts), v),)))
                            continue
        out.append(_series(raw, "vector", i))  # raises InvalidAnswer, saying why
    return out


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


# --- the replica queries' answers, fast --------------------------------------------------


@dataclass
class ReplicaVector:
    """The values of a replica signal by group and replica: one per series."""

    # group -> replica -> the value of its first series
    values: dict[str, dict[str, float]] = field(default_factory=dict)
    # (group, replica) -> every series' value, for the few replicas with several series
    several: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, group: str, replica: str, value: float) -> None:
        by_replica = self.values.get(group)
        if by_replica is None:
            by_replica = self.values[group] = {}
        if replica in by_replica:
            self.several.setdefault((group, replica), [by_replica[replica]]).append(value)
        else:
            by_replica[replica] = value

    def get(self, group: str, replica: str) -> list[float] | None:
        """Every series' value for one replica (None: no series)."""
        value = self.values.get(group, {}).get(replica)
        if value is None:
            return None
        return self.several.get((group, replica)) or [value]


# Only a successful instant vector whose every part has the type `_series` demands: any
# other answer, valid or not, is left to `parse_result` (which says what is wrong).
# The document is decoded with each series left as raw JSON (one small object pointing
# into the body), and the series decoded one at a time into their values: a 100,000-series
# answer never exists as 700,000 objects at once (30 MB at the cycle's peak).
class _Row(msgspec.Struct, gc=False):
    metric: dict[str, str]
    value: tuple[float, str]


class _Data(msgspec.Struct, gc=False):
    resultType: str  # noqa: N815 - Prometheus' name
    result: list[msgspec.Raw]


class _Answer(msgspec.Struct, gc=False):
    status: str
    data: _Data


_answer = msgspec.json.Decoder(_Answer)
_row = msgspec.json.Decoder(_Row)


@functools.lru_cache(maxsize=8)
def _two_labels(group_label: str, replica_label: str) -> msgspec.json.Decoder[Any] | None:
    """A decoder for the usual series, which has only the group and replica labels: no
    dict per series. Any other label fails it, and the series is decoded with its labels
    as a dict, every value checked."""
    if group_label == replica_label:
        return None
    names = {"group": group_label, "replica": replica_label}
    # A default of None, not a None type: an absent label is None, a null one invalid.
    labels = msgspec.defstruct(
        "_Labels",
        [("group", str, None), ("replica", str, None)],
        rename=names,
        forbid_unknown_fields=True,
        gc=False,
    )
    row: Any = msgspec.defstruct(
        "_Row2", [("metric", labels), ("value", tuple[float, str])], gc=False
    )
    return msgspec.json.Decoder(row)


def replica_vector(
    body: bytes | bytearray, status_code: int, group_label: str, replica_label: str
) -> ReplicaVector | None:
    """The values of a vector answer by group and replica label (series without both
    are not ours: skipped), exactly as `parse_result` would read them; None when the
    answer is anything else (a matrix, an error, an invalid document).

    Decoded and type-checked by msgspec in C: on 100,000 series, about a third of the
    time of `json.loads` plus the same checks in Python (`_vector`).
    """
    if status_code != 200:
        return None
    try:
        answer = _answer.decode(body)
    except msgspec.MsgspecError:
        return None
    if answer.status != "success" or answer.data.resultType != "vector":
        return None
    two = _two_labels(group_label, replica_label)
    decode_any = _row.decode
    decode = two.decode if two is not None else decode_any
    isfinite = math.isfinite
    out = ReplicaVector()
    values, add = out.values, out.add
    numbers: dict[str, float] = {}  # value text -> its float: one object per distinct value
    group_now: str | None = None  # the series come group by group: one lookup per group
    by_replica: dict[str, float] = {}
    for raw in answer.data.result:
        try:
            row: Any = decode(raw)
        except msgspec.MsgspecError:  # more labels (a replica's several series), or invalid
            try:
                row = decode_any(raw)
            except msgspec.MsgspecError:
                return None
        ts, text = row.value
        value = numbers.get(text)
        if value is None:
            try:
                value = float(text)
            except ValueError:
                return None
            if len(numbers) < 64:
                numbers[text] = value
        if not isfinite(ts):
            return None
        labels = row.metric
        if type(labels) is dict:
            group, replica = labels.get(group_label), labels.get(replica_label)
        else:
            group, replica = labels.group, labels.replica
        if group is None or replica is None:
            continue
        if group != group_now:
            group_now, by_replica = group, values.setdefault(group, {})
        if replica in by_replica:
            add(group, replica, value)  # a replica's second series
        else:
            by_replica[replica] = value
    return out
