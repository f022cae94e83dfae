"""Real HTTP load for the demo replicas, following a demand curve.

`LoadGenerator(demand, targets)` sends `GET /work` to the replicas at `demand(t)`
requests per second (t = seconds since start): Poisson arrivals by default, or evenly
spaced. Requests go round-robin (or at random) over the current targets, through a
bounded pool of workers with short timeouts; when every worker is busy a request is
counted as `dropped` instead of queueing without bound. A 200 is `ok`, a 503 is
`rejected` (the replica was full), anything else is an `error`.

The demo takes its targets from the autoscaler's `/sd` endpoint (`sd_targets`), so the
load follows the replicas the autoscaler creates and deletes.

    autoscaler loadgen --sd-url http://127.0.0.1:9100/sd --pattern ramp --peak-rps 20
    autoscaler loadgen --sd-url URL --pattern trace --trace T.csv --peak-rps 20 --duration 300
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType

from autoscaler.simulation import traces

TICK_SECONDS = 0.02  # arrivals are released in batches this far apart
RESULTS = ("ok", "rejected", "error", "dropped", "no_target")
BALANCE_MODES = ("round-robin", "random", "first")


# --------------------------------------------------------------------------- demand curves


def ramp_spike_fall(period_seconds: float, base: float, peak: float) -> Callable[[float], float]:
    """A repeating demand shape that exercises scale-up, a spike and scale-down.

    Per period: 0-30 % ramp from `base` to halfway to `peak`; 30-40 % a spike at `peak`;
    40-60 % a linear fall back to `base`; 60-100 % steady at `base`.
    """
    if period_seconds <= 0:
        raise ValueError(f"period_seconds must be > 0, got {period_seconds}")
    if base < 0 or peak < 0:
        raise ValueError(f"base and peak must be >= 0, got {base}, {peak}")
    mid = (base + peak) / 2

    def demand(t: float) -> float:
        p = (max(0.0, t) % period_seconds) / period_seconds
        if p < 0.3:
            return base + (mid - base) * p / 0.3
        if p < 0.4:
            return peak
        if p < 0.6:
            return peak + (base - peak) * (p - 0.4) / 0.2
        return base

    return demand


def constant(rps: float) -> Callable[[float], float]:
    return lambda t: rps


# --------------------------------------------------------------------------- targets


def sd_targets(url: str, timeout: float = 2.0) -> list[str]:
    """The "host:port" targets of an http_sd endpoint (a JSON list of target groups)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        doc = json.loads(resp.read())
    if not isinstance(doc, list):
        raise ValueError(f"{url}: expected a JSON list of target groups")
    out: list[str] = []
    for entry in doc:
        if isinstance(entry, dict) and isinstance(entry.get("targets"), list):
            out.extend(t for t in entry["targets"] if isinstance(t, str) and t)
    return out


# --------------------------------------------------------------------------- generator


@dataclass(frozen=True)
class LoadStats:
    """Counts over the last `interval_seconds` (or since start, for totals)."""

    demand: float  # requests per second asked right now
    interval_seconds: float
    sent: int
    ok: int
    rejected: int
    errors: int
    dropped: int  # every worker busy: not sent
    no_target: int  # no replica to send to: not sent
    targets: int  # replicas known right now

    @property
    def sent_rps(self) -> float:
        return self.sent / self.interval_seconds if self.interval_seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"demand={self.demand:.1f}/s sent={self.sent_rps:.1f}/s ok={self.ok} "
            f"rejected={self.rejected} errors={self.errors} dropped={self.dropped} "
            f"no_target={self.no_target} targets={self.targets}"
        )


class LoadGenerator:
    """Sends GET /work at demand(t) requests per second to the targets; see module doc."""

    def __init__(
        self,
        demand: Callable[[float], float],
        targets: Callable[[], list[str]],
        *,
        workers: int = 64,
        timeout_seconds: float = 5.0,
        poisson: bool = True,
        balance: str = "round-robin",  # or "random", or "first"
        slots_per_target: int = 4,  # "first": in-flight requests a target takes before the next
        path: str = "/work",
        interval_seconds: float = 5.0,
        targets_refresh_seconds: float = 2.0,
        seed: int | None = None,
    ) -> None:
        if balance not in BALANCE_MODES:
            raise ValueError(f"balance must be one of {', '.join(BALANCE_MODES)}, got {balance!r}")
        self.demand = demand
        self._targets_fn = targets
        self.workers = workers
        self.timeout_seconds = timeout_seconds
        self.poisson = poisson
        self.balance = balance
        self.slots_per_target = slots_per_target
        self._inflight: dict[str, int] = {}
        self.path = path
        self.interval_seconds = interval_seconds
        self.targets_refresh_seconds = targets_refresh_seconds
        self._rng = random.Random(seed)
        self._rr = itertools.count()
        self._lock = threading.Lock()
        self._events: deque[tuple[float, str]] = deque()  # (monotonic time, result)
        self._totals = dict.fromkeys(RESULTS, 0)
        self._slots = threading.BoundedSemaphore(workers)
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._refresher: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = 0.0
        self._targets: list[str] = []
        self.last_target_error: str | None = None

    # ----- lifecycle

    def start(self) -> LoadGenerator:
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="loadgen")
        self.refresh_targets()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="loadgen-clock", daemon=True)
        self._thread.start()
        self._refresher = threading.Thread(
            target=self._refresh_loop, name="loadgen-targets", daemon=True
        )
        self._refresher.start()
        return self

    def stop(self, wait_seconds: float | None = None) -> None:
        """Stop sending; wait for in-flight requests (at most the request timeout)."""
        self._stop.set()
        for thread in (self._thread, self._refresher):
            if thread is not None:
                thread.join(timeout=self.timeout_seconds + 5)
        if self._pool is not None:
            deadline = time.monotonic() + (
                wait_seconds if wait_seconds is not None else self.timeout_seconds + 1
            )
            for _ in range(self.workers):  # all slots back = nothing in flight
                if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    break
            self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    # ----- the clock

    def _run(self) -> None:
        # Non-homogeneous arrivals by time change: integrate the rate and fire whenever
        # the integral passes the next threshold (Exp(1) for Poisson, 1 for even spacing).
        integral, threshold = 0.0, self._next_threshold()
        last = time.monotonic()
        while not self._stop.wait(TICK_SECONDS):
            now = time.monotonic()
            rate = self._rate(now - self._started)
            integral += rate * (now - last)
            last = now
            while integral >= threshold and not self._stop.is_set():
                integral -= threshold
                threshold = self._next_threshold()
                self._send()

    def _next_threshold(self) -> float:
        return self._rng.expovariate(1.0) if self.poisson else 1.0

    def _rate(self, t: float) -> float:
        try:
            r = float(self.demand(t))
        except Exception:  # noqa: BLE001 - a broken curve must not kill the clock
            return 0.0
        return r if math.isfinite(r) and r > 0 else 0.0

    def refresh_targets(self) -> None:
        try:
            self._targets = list(self._targets_fn())
            self.last_target_error = None
        except Exception as e:  # noqa: BLE001 - keep the last known targets
            self.last_target_error = f"{type(e).__name__}: {e}"

    def _refresh_loop(self) -> None:
        # apart from the clock, so a slow /sd never delays arrivals
        while not self._stop.wait(self.targets_refresh_seconds):
            self.refresh_targets()

    def _send(self) -> None:
        targets = self._targets
        if not targets:
            self._record("no_target")
            return
        if self.balance == "random":
            target = self._rng.choice(targets)
        elif self.balance == "first":
            target = self._first_available(targets)
        else:
            target = targets[next(self._rr) % len(targets)]
        if not self._slots.acquire(blocking=False):
            self._record("dropped")
            return
        assert self._pool is not None
        with self._lock:  # counted now, not when a worker starts: a batch must see it
            self._inflight[target] = self._inflight.get(target, 0) + 1
        try:
            self._pool.submit(self._request, target)
        except RuntimeError:  # pool shut down while stopping
            with self._lock:
                self._inflight[target] -= 1
            self._slots.release()

    def _first_available(self, targets: list[str]) -> str:
        """HAProxy's `balance first`: fill targets in order, so the last ones go idle.

        With an even spread no replica is ever fully idle under load, and a headroom
        policy that removes only idle replicas could never scale in.
        """
        with self._lock:
            for t in targets:
                if self._inflight.get(t, 0) < self.slots_per_target:
                    return t
            return min(targets, key=lambda t: self._inflight.get(t, 0))

    def _request(self, target: str) -> None:
        try:
            url = f"http://{target}{self.path}"
            try:
                with urllib.request.urlopen(url, timeout=self.timeout_seconds) as resp:
                    resp.read()
                    result = "ok" if resp.status == 200 else "error"
            except urllib.error.HTTPError as e:
                result = "rejected" if e.code == 503 else "error"
                e.close()
            except (OSError, ValueError):
                result = "error"
            self._record(result, sent=True)
        finally:
            with self._lock:
                self._inflight[target] -= 1
            self._slots.release()

    # ----- counting

    def _record(self, result: str, *, sent: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            self._totals[result] += 1
            self._events.append((now, result))
            cutoff = now - self.interval_seconds
            while self._events and self._events[0][0] < cutoff:
                self._events.popleft()

    def stats(self) -> LoadStats:
        """Counts over the last `interval_seconds` (requests counted when answered)."""
        now = time.monotonic()
        with self._lock:
            cutoff = now - self.interval_seconds
            while self._events and self._events[0][0] < cutoff:
                self._events.popleft()
            counts = dict.fromkeys(RESULTS, 0)
            for _, r in self._events:
                counts[r] += 1
        window = min(self.interval_seconds, max(self.elapsed(), 1e-9))
        return self._make_stats(counts, window)

    def totals(self) -> LoadStats:
        """Counts since start."""
        with self._lock:
            counts = dict(self._totals)
        return self._make_stats(counts, max(self.elapsed(), 1e-9))

    def _make_stats(self, c: dict[str, int], window: float) -> LoadStats:
        return LoadStats(
            demand=self._rate(self.elapsed()),
            interval_seconds=window,
            sent=c["ok"] + c["rejected"] + c["error"],
            ok=c["ok"],
            rejected=c["rejected"],
            errors=c["error"],
            dropped=c["dropped"],
            no_target=c["no_target"],
            targets=len(self._targets),
        )


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("targets")
    src.add_argument("--sd-url", help="http_sd endpoint listing the replicas (the /sd URL)")
    src.add_argument(
        "--target", action="append", default=[], metavar="HOST:PORT", help="fixed target"
    )
    load = parser.add_argument_group("demand")
    load.add_argument(
        "--pattern",
        choices=("ramp", "trace", "constant"),
        default="ramp",
        help="demand curve: a repeating ramp (default), a replayed --trace, or --peak-rps flat",
    )
    load.add_argument("--peak-rps", type=float, default=20.0, help="peak requests per second")
    load.add_argument("--base-rps", type=float, default=None, help="ramp: base (peak/10)")
    load.add_argument("--period", type=float, default=120.0, help="ramp: seconds per cycle")
    load.add_argument("--trace", help="trace: CSV t_seconds,demand")
    load.add_argument(
        "--speedup",
        type=float,
        default=None,
        help="trace: trace seconds per wall second (default: the whole trace in --duration)",
    )
    load.add_argument("--offset", type=float, default=0.0, help="trace: start this far in (s)")
    run_ = parser.add_argument_group("run")
    run_.add_argument("--duration", type=float, default=300.0, help="seconds; 0 = until Ctrl-C")
    run_.add_argument("--workers", type=int, default=64)
    run_.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    run_.add_argument("--even", action="store_true", help="evenly spaced, not Poisson")
    run_.add_argument(
        "--balance",
        choices=BALANCE_MODES,
        default="round-robin",
        help="round-robin, random, or first (fill targets in order, like HAProxy's balance first)",
    )
    run_.add_argument("--slots", type=int, default=4, help="first: in-flight requests per target")
    run_.add_argument("--report-every", type=float, default=5.0, help="seconds between lines")


def _demand_from_args(args: argparse.Namespace) -> Callable[[float], float]:
    if args.pattern == "constant":
        return constant(args.peak_rps)
    if args.pattern == "ramp":
        base = args.base_rps if args.base_rps is not None else args.peak_rps / 10
        return ramp_spike_fall(args.period, base, args.peak_rps)
    if not args.trace:
        raise ValueError("--pattern trace needs --trace FILE")
    rows = traces.load_trace(args.trace)
    speedup = args.speedup
    if speedup is None:
        speedup = traces.trace_span_seconds(rows) / args.duration if args.duration > 0 else 60.0
    return traces.trace_curve(rows, speedup, args.peak_rps, offset_seconds=args.offset)


def run(args: argparse.Namespace) -> int:
    if not args.sd_url and not args.target:
        print("error: give --sd-url URL or at least one --target HOST:PORT")
        return 2
    try:
        demand = _demand_from_args(args)
    except (OSError, ValueError) as e:
        print(f"error: {e}")
        return 2
    fixed = list(args.target)
    sd_url = args.sd_url

    def targets() -> list[str]:
        return fixed + (sd_targets(sd_url) if sd_url else [])

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    gen = LoadGenerator(
        demand,
        targets,
        workers=args.workers,
        timeout_seconds=args.timeout,
        poisson=not args.even,
        balance=args.balance,
        slots_per_target=args.slots,
        interval_seconds=args.report_every,
    ).start()
    try:
        while not stop.wait(args.report_every):
            line = gen.stats().line()
            if gen.last_target_error:
                line += f" sd_error={gen.last_target_error!r}"
            print(f"t={gen.elapsed():.0f}s {line}", flush=True)
            if args.duration > 0 and gen.elapsed() >= args.duration:
                break
    finally:
        gen.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    t = gen.totals()
    print(
        f"total: sent={t.sent} ok={t.ok} rejected={t.rejected} errors={t.errors} "
        f"dropped={t.dropped} no_target={t.no_target}",
        flush=True,
    )
    return 0
