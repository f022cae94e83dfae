"""Scale benchmark: one control cycle of the real controller at 1k .. 100k replicas.

Builds the whole setup itself: a synthetic exporter serving `replica_capacity` and
`replica_termination` for G groups x R replicas (one job per size, split into shards of
10,000 replicas so each scrape stays small), a real Prometheus scraping it every 5 s
(autoscaler/testing/prometheus.py), and, per size, a fresh Python process running the
real Controller (autoscaler/runtime/controller.py) with a provider that does no I/O.
A fresh process per size keeps peak RSS (ru_maxrss) from mixing between sizes.

Each child runs one warm-up cycle, then `--cycles` measured ones, and reports per cycle:
CPU (time.process_time: every thread of the process), wall time, queries and bytes
received from Prometheus; and the process's peak RSS. The table ends with the growth
exponent of CPU and wall time against replicas (least-squares slope on log-log): 1.0 is
linear. Numbers live here, never in timed unit tests.

Run: `make bench-scale` or `.venv/bin/python bench/scale.py --sizes 1000,10000,100000`.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere: this checkout's package

import requests  # noqa: E402

from autoscaler.testing.prometheus import PrometheusServer, free_port  # noqa: E402

SHARD = 10_000  # replicas per scrape target
SCRAPE = 5  # seconds, as in the issue
STALE_AFTER = 30.0  # the groups' stale_after_seconds (the default)
SLOTS = 4.0  # replica_capacity of every group


def _name(size: int) -> str:
    return f"scale_{size}"


def _shape(size: int, per_group: int) -> tuple[int, int]:
    per_group = min(per_group, size)
    return max(1, size // per_group), per_group


# --- the synthetic exporter --------------------------------------------------------------


def exposition(size: int, per_group: int, shard: int) -> bytes:
    """One shard of a size's series: every replica reports 1 free slot of 4 and no
    termination request, so every group holds (in band, nothing idle to remove)."""
    groups, replicas = _shape(size, per_group)
    lines = ["# TYPE replica_capacity gauge"]
    term = ["# TYPE replica_termination gauge"]
    for n in range(shard * SHARD, min(size, (shard + 1) * SHARD)):
        g, r = divmod(n, replicas)
        if g >= groups:
            break
        labels = f'group="g{g}",replica="g{g}-r{r}"'
        lines.append(f"replica_capacity{{{labels}}} 1")
        term.append(f"replica_termination{{{labels}}} 0")
    return ("\n".join(lines + term) + "\n").encode()


class Exporter:
    """Loopback HTTP server: /metrics?size=N&shard=K, each body rendered once."""

    def __init__(self, sizes: Sequence[int], per_group: int) -> None:
        self.bodies = {
            (size, k): exposition(size, per_group, k)
            for size in sizes
            for k in range(math.ceil(size / SHARD))
        }
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (stdlib naming)
                q = parse_qs(urlsplit(self.path).query)
                body = bodies.get((int(q["size"][0]), int(q["shard"][0])), b"")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Exporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def prometheus_config(sizes: Sequence[int], port: int) -> str:
    jobs = []
    for size in sizes:
        targets = ", ".join(
            f'{{targets: ["127.0.0.1:{port}"], labels: {{__param_shard: "{k}"}}}}'
            for k in range(math.ceil(size / SHARD))
        )
        jobs.append(
            f"  - job_name: {_name(size)}\n"
            f"    honor_labels: true\n"
            f"    params: {{size: ['{size}']}}\n"
            f"    static_configs: [{targets}]\n"
        )
    return (
        f"global: {{scrape_interval: {SCRAPE}s, scrape_timeout: {SCRAPE}s, "
        f"evaluation_interval: {SCRAPE}s}}\nscrape_configs:\n" + "".join(jobs)
    )


def wait_ready(prom: PrometheusServer, sizes: Sequence[int], timeout: float = 300.0) -> None:
    """Every size's series are in, with a full `stale_after` window of samples behind
    them (about six per series, as in production)."""
    deadline = time.monotonic() + timeout
    for size in sizes:
        expr = f'count(replica_termination{{job="{_name(size)}"}})'
        while True:
            # A loaded machine slows Prometheus' first ingestion of 100k series: be patient.
            reply = requests.get(f"{prom.url}/api/v1/query", params={"query": expr}, timeout=60)
            res = reply.json()["data"]["result"] if reply.status_code == 200 else []
            if res and int(float(res[0]["value"][1])) == size:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expr} never reached {size}: {res}")
            time.sleep(1)
    time.sleep(STALE_AFTER + SCRAPE)


# --- one size, in a fresh process ---------------------------------------------------------


def child(
    size: int, per_group: int, url: str, cycles: int, profile: str | None = None
) -> dict[str, Any]:
    from autoscaler.config import Config, PrometheusConfig
    from autoscaler.core.model import Replica, ReplicaState
    from autoscaler.core.spec import GroupConfig, HeadroomPolicyConfig, ProviderConfig
    from autoscaler.providers.base import ActionResult, ReplicaProvider
    from autoscaler.runtime.controller import Controller
    from autoscaler.runtime.exporter import SharedState
    from autoscaler.runtime.metrics import Metrics

    groups, replicas = _shape(size, per_group)
    created = time.time() - 3600  # past warm-up

    class NoIO(ReplicaProvider):
        """Lists a fixed fleet, accepts every action, touches nothing."""

        kind = "bench"

        def __init__(self, group: str) -> None:
            self.group = group

        def list(self) -> list[Replica]:
            # New objects each time, as a provider makes them from its API's answer.
            g = self.group
            return [
                Replica(f"{g}-r{r}", g, ReplicaState.ACTIVE, created, f"10.0.0.1:{r}")
                for r in range(replicas)
            ]

        def create(self, count: int) -> ActionResult:
            return ActionResult(succeeded=[f"new-{i}" for i in range(count)])

        def delete(self, replica_ids: Sequence[str]) -> ActionResult:
            return ActionResult(succeeded=list(replica_ids))

    cfg = Config(
        prometheus=PrometheusConfig(url=url, timeout_seconds=60),
        groups=tuple(
            GroupConfig(
                name=f"g{g}",
                provider=ProviderConfig(type="bench"),
                min=1,
                max=replicas * 2,
                replica_capacity=SLOTS,
                policies=(HeadroomPolicyConfig(name="headroom", min_available=replicas),),
                stale_after_seconds=STALE_AFTER,
            )
            for g in range(groups)
        ),
        interval_seconds=SCRAPE,
        capacity_metric=f'replica_capacity{{job="{_name(size)}"}}',
        termination_metric=f'replica_termination{{job="{_name(size)}"}}',
    )
    providers = {g.name: NoIO(g.name) for g in cfg.groups}
    controller = Controller(cfg, providers, Metrics(), SharedState(cfg.interval_seconds))
    rows: list[dict[str, float]] = []
    prof = cProfile.Profile() if profile else None
    try:
        for i in range(cycles + 1):
            if prof and i:
                prof.enable()
            cpu, wall = time.process_time(), time.perf_counter()
            ok = controller.cycle()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if prof:
                prof.disable()
            if not ok:
                raise RuntimeError(f"cycle {i} failed: {controller.failures.failing()}")
            if i:  # the first cycle pays for imports and first-time series: not counted
                rows.append(
                    {
                        "cpu": cpu,
                        "wall": wall,
                        "queries": controller.reader.queries_last_cycle,
                        "bytes": getattr(controller.reader, "bytes_last_cycle", 0),
                    }
                )
        # Everyone in band: a decision per group, and the replicas all read.
        reporting = sum(
            len(rt.observation.metrics) for rt in controller.groups.values() if rt.observation
        )
        if reporting != size:
            raise RuntimeError(f"{reporting} of {size} replicas had a fresh sample")
    finally:
        controller.close()
    if prof:
        prof.dump_stats(f"{profile}.{size}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    return {
        "groups": groups,
        "replicas": size,
        **mean,
        "cpu_min": min(r["cpu"] for r in rows),
        "rss": peak,
    }


# --- the table ---------------------------------------------------------------------------


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log(y) on log(x): the growth exponent."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-9)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((x - mx) ** 2 for x in lx)
    return sum((x - mx) * (y - my) for x, y in zip(lx, ly, strict=True)) / den if den else 0.0


def table(results: Sequence[dict[str, Any]]) -> str:
    head = (
        f"{'groups x replicas':>18} {'CPU s/cycle':>11} {'(min)':>7} {'wall s/cycle':>12} "
        f"{'peak RSS MiB':>12} {'queries/cycle':>13} {'MB/cycle':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        shape = f"{r['groups']} x {r['replicas'] // r['groups']}"
        lines.append(
            f"{shape:>18} {r['cpu']:>11.3f} {r['cpu_min']:>7.3f} {r['wall']:>12.3f} "
            f"{r['rss'] / 2**20:>12.0f} {r['queries']:>13.0f} {r['bytes'] / 1e6:>9.2f}"
        )
    if len(results) > 1:
        xs = [r["replicas"] for r in results]
        lines.append(
            f"growth exponent (log-log fit against replicas): "
            f"CPU {slope(xs, [r['cpu'] for r in results]):.2f}, "
            f"wall {slope(xs, [r['wall'] for r in results]):.2f}, "
            f"bytes {slope(xs, [r['bytes'] for r in results]):.2f}"
        )
    return "\n".join(lines)


def run_sizes(
    sizes: Sequence[int], args: argparse.Namespace, url: str
) -> list[dict[str, Any]] | None:
    """Each size in its own process; None when one failed (its output is printed)."""
    results = []
    for size in sizes:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                f"--child={size}",
                f"--per-group={args.per_group}",
                f"--cycles={args.cycles}",
                f"--prometheus={url}",
                *([f"--profile={args.profile}"] if args.profile else []),
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        if out.returncode != 0:
            print(out.stdout, out.stderr, file=sys.stderr)
            return None
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  {size} replicas done", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="replicas, comma-separated")
    ap.add_argument("--per-group", type=int, default=100, help="replicas per group")
    ap.add_argument("--cycles", type=int, default=3, help="measured cycles per size")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--serve", action="store_true", help="start the setup and keep it running")
    ap.add_argument("--prometheus", help="URL of a setup left running by --serve")
    ap.add_argument("--profile", help="write cProfile stats of the measured cycles to FILE.N")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        res = child(args.child, args.per_group, args.prometheus, args.cycles, args.profile)
        print(json.dumps(res))
        return 0
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    started = time.monotonic()
    if args.prometheus:  # a setup left running by --serve
        results = run_sizes(sizes, args, args.prometheus)
    else:
        with Exporter(sizes, args.per_group) as exporter:
            prom = PrometheusServer(
                autoscaler="unused:1", config_text=prometheus_config(sizes, exporter.port)
            )
            try:
                prom.start()
                print(f"waiting for {sum(sizes)} replicas' series and a full window...")
                wait_ready(prom, sizes)
                if args.serve:
                    # SIGTERM too ends in `finally`, which stops Prometheus.
                    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
                    print(f"serving: --prometheus={prom.url} (Ctrl-C stops)", flush=True)
                    while True:
                        time.sleep(3600)
                results = run_sizes(sizes, args, prom.url)
            finally:
                prom.cleanup()
    if results is None:
        return 1
    print(
        f"\nreal Prometheus ({SCRAPE} s scrapes), real controller, no-I/O provider; "
        f"{args.cycles} cycles per size after one warm-up; {os.cpu_count()} CPUs"
    )
    print(table(results))
    print(f"({time.monotonic() - started:.0f} s in all)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
