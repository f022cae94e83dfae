"""A small, strict JSON path: `cpu.highPriority`, `items[0].free`, `["key.with.dots"]`.

Enough to point at one value in a replica's JSON answer. A leading `$` or `$.` is
accepted (JSONPath habit). No wildcards or filters: one path names exactly one value,
so a missing step is an error, never a default.
"""

from __future__ import annotations

import json
import re
from typing import Any

Step = str | int

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_INDEX = re.compile(r"\[(\d+)\]")
_DECODER = json.JSONDecoder()


class PathError(ValueError):
    """The path is not valid syntax."""


class MissingError(LookupError):
    """The document has no value at the path."""


def parse(path: str) -> tuple[Step, ...]:
    """Split a path into keys (str) and list indexes (int)."""
    s = path.strip()
    if s.startswith("$"):
        s = s[1:]
        if s.startswith("."):
            s = s[1:]
    steps: list[Step] = []
    i = 0
    expect_name = True  # at the start, or right after a dot
    while i < len(s):
        c = s[i]
        if c == "[":
            if s.startswith('"', i + 1):
                # a quoted key may contain '.', '[' or ']': read it as a JSON string
                try:
                    key, close = _DECODER.raw_decode(s, i + 1)
                except json.JSONDecodeError as e:
                    raise PathError(f"bad quoted key in path {path!r}") from e
                if not s.startswith("]", close):
                    raise PathError(f"missing ']' after quoted key in path {path!r}")
                steps.append(key)
                i = close + 1
            else:
                m = _INDEX.match(s, i)
                if not m:
                    raise PathError(f"bad index at {s[i:]!r} in path {path!r}")
                steps.append(int(m.group(1)))
                i = m.end()
            expect_name = False
        elif c == ".":
            if expect_name:
                raise PathError(f"empty key in path {path!r}")
            i += 1
            expect_name = True
        else:
            if not expect_name:
                raise PathError(f"missing '.' before {s[i:]!r} in path {path!r}")
            m = _NAME.match(s, i)
            if not m:
                raise PathError(f"bad key at {s[i:]!r} in path {path!r}")
            steps.append(m.group())
            i = m.end()
            expect_name = False
    if not steps or expect_name:
        raise PathError(f"empty path or trailing '.' in {path!r}")
    return tuple(steps)


def extract(doc: Any, steps: tuple[Step, ...]) -> Any:
    """The value at `steps`, or MissingError naming the first step that is not there."""
    cur = doc
    for n, step in enumerate(steps):
        where = format_path(steps[: n + 1])
        if isinstance(step, int):
            if not isinstance(cur, list) or step >= len(cur):
                raise MissingError(f"no item {where}")
            cur = cur[step]
        else:
            if not isinstance(cur, dict) or step not in cur:
                raise MissingError(f"no key {where}")
            cur = cur[step]
    return cur


def format_path(steps: tuple[Step, ...]) -> str:
    out = ""
    for step in steps:
        if isinstance(step, int):
            out += f"[{step}]"
        elif _NAME.fullmatch(step):
            out += f".{step}" if out else step
        else:
            out += "[" + json.dumps(step) + "]"
    return out
