"""OpenStack provider throughput: scale-ups of N servers against a slow cloud.

Starts the OpenStack emulator (tests/openstack/emulator.py, real HTTP on 127.0.0.1) with
a fixed latency on every API call, and drives the real provider through real
openstacksdk, as the controller does: a fresh provider lists its group, then creates N
servers (the first scale-up: authentication, version discovery and the flavor, image and
network look-ups happen here), then creates N more (a later scale-up). One row per
`max_concurrency`: the default, then each of --concurrency. Prints wall seconds and the
API calls by kind. Run: `.venv/bin/python bench/openstack.py` (also part of `make bench`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections import Counter
from pathlib import Path

# This file is named like the SDK: take its own folder off the path, put the repository on.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from autoscaler.providers.openstack import provider  # noqa: E402
from tests.openstack.emulator import OpenStackEmulator  # noqa: E402

KINDS = ("identity", "discovery", "flavor", "image", "network", "list", "create", "other")
_VERSION_ROOTS = {"/compute", "/compute/v2.1", "/network", "/network/v2.0", "/image", "/image/v2"}


def kind(method: str, path: str) -> str:
    """Which kind of API call a request of the emulator's log is."""
    path = path.split("?", 1)[0].rstrip("/") or "/"
    if path.startswith("/identity"):
        return "identity"
    if method == "GET" and path in _VERSION_ROOTS:
        return "discovery"
    if "/flavors" in path:
        return "flavor"
    if path.startswith("/image/"):
        return "image"
    if "/networks" in path:
        return "network"
    if method == "GET" and path.endswith(("/servers/detail", "/servers")):
        return "list"
    if method == "POST" and path.endswith("/servers"):
        return "create"
    return "other"


def calls(emu: OpenStackEmulator, since: int) -> Counter[str]:
    with emu.lock:
        return Counter(kind(m, p) for m, p in emu.requests[since:])


def fmt(c: Counter[str]) -> str:
    return " ".join(f"{k}={c[k]}" for k in KINDS if c[k])


def run(emu: OpenStackEmulator, concurrency: int | None, count: int, n: int) -> list[str]:
    options = emu.provider_options(request_timeout_seconds=30)
    if concurrency is not None:
        options["max_concurrency"] = concurrency
    assert provider.check_options(options, "bench") == []
    settings = provider.Settings.from_options(f"bench{n}", options)
    label = f"{settings.max_concurrency}" + (" (default)" if concurrency is None else "")
    rows = []
    p = provider.OpenStackProvider(settings)
    try:
        for phase in ("first", "later"):
            mark = len(emu.requests)
            t0 = time.monotonic()
            if phase == "first":
                p.list()  # the controller lists before it acts
            res = p.create(count)
            wall = time.monotonic() - t0
            ok = len(res.succeeded)
            c = calls(emu, mark)
            rows.append(
                f"| {label} | {phase} | {ok}/{count} | {wall:.1f} | {sum(c.values())} | {fmt(c)} |"
            )
    finally:
        p.close()
        with emu.lock:  # not through the API: deleting at 1 s a call is not what is measured
            emu.servers.clear()
            emu.ports.clear()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=1.0, help="seconds per API call")
    ap.add_argument("--count", type=int, default=50, help="servers per scale-up")
    ap.add_argument("--concurrency", type=int, nargs="*", default=[4, 16])
    args = ap.parse_args()
    importlib.import_module("openstack")  # the SDK's import time is not the cloud's
    default = int(provider.DEFAULTS["max_concurrency"])
    levels: list[int | None] = [None] + [c for c in args.concurrency if c != default]
    emu = OpenStackEmulator(
        latency=args.latency, build_seconds=0.1, delete_seconds=0.1, max_instances=10**6
    ).start()
    print(
        f"OpenStack provider, emulator with {args.latency:g} s per API call, {args.count} servers"
    )
    print()
    print("| max_concurrency | scale-up | created | wall s | API calls | by kind |")
    print("|---|---|---|---|---|---|")
    try:
        for n, level in enumerate(levels):
            for row in run(emu, level, args.count, n):
                print(row, flush=True)
    finally:
        emu.stop()
    print()
    print("first: a fresh provider lists its group, then creates; later: the same provider again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
