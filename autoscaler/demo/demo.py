"""`autoscaler demo`: the whole product on one machine, in minutes.

Starts a real Prometheus (the shipped prometheus.yml and rules, 1 s scrapes), the
autoscaler daemon on the local provider (examples/local.yaml), and a load generator
sending real HTTP requests to the replicas it discovers through the autoscaler's /sd,
following a ramp-spike-fall curve or a time-compressed real trace. Prints one line per
cycle: demand, replicas, free capacity, the decision and its reason. Ctrl-C (or
--duration) stops everything it started, replicas included.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from autoscaler.demo import files, loadgen
from autoscaler.simulation import traces
from autoscaler.testing import promconfig
from autoscaler.testing.prometheus import (
    REPO,
    PrometheusServer,
    free_port,
    stop_process,
    wait_http,
)

# Beside a source checkout only (../shared/traces): installed, --trace must be given.
SHARED_TRACE = REPO.parent / "shared" / "traces" / "azure_llm_conv_2023-11-16_1s.csv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="group definitions (default: the packaged examples/local.yaml)"
    )
    parser.add_argument(
        "--pattern",
        choices=("ramp", "trace"),
        default="ramp",
        help="load shape: a repeating ramp up and down (default), or a replayed --trace",
    )
    parser.add_argument(
        "--trace",
        default=str(SHARED_TRACE) if SHARED_TRACE.is_file() else None,
        help="trace CSV for --pattern trace",
    )
    parser.add_argument("--peak-rps", type=float, default=24.0, help="peak demand, requests/s")
    parser.add_argument("--period", type=float, default=240.0, help="ramp: seconds per cycle")
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0 = Ctrl-C)"
    )
    parser.add_argument("--prometheus-port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--port", type=int, default=0, help="autoscaler port (0 = a free port)")


def _demo_config(source: Path, prometheus_url: str, listen: str, run_dir: Path) -> dict[str, Any]:
    doc = yaml.safe_load(source.read_text())
    doc.setdefault("prometheus", {})["url"] = prometheus_url
    doc["listen"] = listen
    for group in doc.get("groups", {}).values():
        if group.get("provider", {}).get("type") == "local":
            group["provider"]["run_dir"] = str(run_dir)
    return doc


def _line(t: float, demand: float, status: dict[str, Any]) -> str:
    parts = [f"t={t:5.0f}s demand={demand:5.1f}/s"]
    for name, g in status.get("groups", {}).items():
        states: dict[str, int] = {}
        for r in g["replicas"]:
            states[r["state"]] = states.get(r["state"], 0) + 1
        obs, d = g.get("observation") or {}, g.get("decision") or {}
        free = obs.get("available_capacity")
        parts.append(
            f"{name}: replicas={sum(states.values())}"
            f" ({', '.join(f'{n} {s}' for s, n in sorted(states.items())) or 'none'})"
            f" free={'?' if free is None else f'{free:g}'}"
            f" | {d.get('direction', '-')} {d.get('current', '?')}->{d.get('desired', '?')}:"
            f" {d.get('reason', 'waiting for the first cycle')}"
        )
    return "  ".join(parts)


def run(args: argparse.Namespace) -> int:
    if args.pattern == "trace" and not args.trace:
        print("error: --pattern trace needs --trace FILE (a CSV t_seconds,demand)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="autoscaler-demo-"))
    port = args.port or free_port()
    listen = f"127.0.0.1:{port}"
    url = f"http://{listen}"
    # The packaged prometheus.yml, so an installed demo runs outside the repository too.
    prometheus = PrometheusServer(
        autoscaler=listen,
        config_text=promconfig.render(
            files.prometheus_yml(),
            autoscaler=listen,
            scrape_interval="1s",
            evaluation_interval="1s",
        ),
    )
    if args.prometheus_port:
        prometheus.port = args.prometheus_port
        prometheus.url = f"http://127.0.0.1:{args.prometheus_port}"
    config_path = workdir / "autoscaler.yaml"
    source = Path(args.config) if args.config else files.example_config()
    config = _demo_config(source, prometheus.url, listen, workdir / "run")
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    interval = float(config.get("interval_seconds", 2))

    if args.pattern == "trace":
        rows = traces.load_trace(args.trace)
        span = traces.trace_span_seconds(rows)
        # Compress the trace so a few minutes of wall time cover all of it.
        speedup = span / (args.duration or 600.0)
        demand = traces.trace_curve(rows, speedup, args.peak_rps)
        print(
            f"demand: {args.trace} ({span / 60:.0f} min) at x{speedup:.1f}, peak {args.peak_rps}/s"
        )
    else:
        demand = loadgen.ramp_spike_fall(args.period, args.peak_rps / 8, args.peak_rps)
        print(f"demand: ramp-spike-fall every {args.period:g}s, peak {args.peak_rps}/s")

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    daemon: subprocess.Popen[bytes] | None = None
    gen: loadgen.LoadGenerator | None = None
    log_path = workdir / "autoscaler.log"
    try:
        prometheus.start()
        print(f"prometheus: {prometheus.url}  (rules and targets: {prometheus.url}/targets)")
        with open(log_path, "wb") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "autoscaler", "run", "--config", str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ),
            )
        wait_http(f"{url}/metrics", timeout=20)
        print(f"autoscaler: {url}/status  {url}/metrics  (log: {log_path})")
        print("Ctrl-C stops everything.\n")
        gen = loadgen.LoadGenerator(
            demand, lambda: loadgen.sd_targets(f"{url}/sd?via=direct"), balance="first"
        ).start()
        started = time.monotonic()
        while not stop.wait(interval):
            if daemon.poll() is not None:
                print(f"autoscaler exited with {daemon.returncode}; see {log_path}")
                return 1
            t = time.monotonic() - started
            try:
                status = requests.get(f"{url}/status", timeout=2).json()
            except (requests.RequestException, ValueError) as e:
                print(f"t={t:5.0f}s status unavailable: {e}")
                continue
            print(_line(t, demand(gen.elapsed()), status), flush=True)
            if args.duration and t >= args.duration:
                break
        return 0
    finally:
        print("\nstopping: load, autoscaler, replicas, Prometheus")
        if gen is not None:
            gen.stop(wait_seconds=2)
        if daemon is not None:
            stop_process(daemon, timeout=15)
        _stop_replicas(config_path)
        prometheus.cleanup()


def _stop_replicas(config_path: Path) -> None:
    """The daemon leaves replicas running by design; the demo removes what it made."""
    from autoscaler.providers.registry import build_provider, load_config

    config = load_config(config_path, os.environ)
    for group in config.groups:
        provider = build_provider(group, config)
        try:
            ids = [r.id for r in provider.list()]
            if ids:
                provider.delete(ids)
        finally:
            provider.close()
