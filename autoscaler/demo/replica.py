"""A demo replica: N work slots behind HTTP, exposing the replica metrics contract.

    python -m autoscaler.demo.replica --port P --slots N --work-seconds W \\
        --replica-id ID --group G [--host 127.0.0.1] [--terminate-after SECONDS]

- `GET /work` occupies one free slot for W seconds, then answers 200; with every slot
  busy it answers 503 at once (a rejected request).
- `GET /metrics` (Prometheus text): `replica_capacity` (free slots), `replica_busy_slots`,
  `replica_slots`, `replica_termination` (0/1), `replica_requests_total{result}`.
- `GET /status` answers SimpleScaleVM-style JSON `{"capacity": ..., "termination": ...}`.
- `POST /terminate` sets the termination flag: the replica asks to be removed.

`replica_capacity` and `replica_busy_slots` are the mean over the last 2 s of the busy
count sampled every 100 ms, not a snapshot: with 1 s work and a 1 s scrape a snapshot
jumps between 0 and N, and the autoscaler would chase that noise.

On SIGTERM (or SIGINT) the replica stops accepting connections, lets in-flight requests
finish (at most work-seconds + 5 s) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)

SAMPLE_SECONDS = 0.1
WINDOW_SECONDS = 2.0


class Slots:
    """N slots; `busy_mean` is the busy count averaged over a sliding window."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.busy = 0
        self._lock = threading.Lock()
        self._samples: deque[int] = deque(maxlen=max(1, round(WINDOW_SECONDS / SAMPLE_SECONDS)))
        self._samples.append(0)

    def try_acquire(self) -> bool:
        with self._lock:
            if self.busy >= self.slots:
                return False
            self.busy += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.busy -= 1

    def sample(self) -> None:
        with self._lock:
            self._samples.append(self.busy)

    def busy_mean(self) -> float:
        with self._lock:
            return sum(self._samples) / len(self._samples)

    def free_mean(self) -> float:
        return self.slots - self.busy_mean()


class DemoReplica:
    """The replica's state and metrics, independent of the HTTP server."""

    def __init__(self, slots: int, work_seconds: float) -> None:
        self.slots = Slots(slots)
        self.work_seconds = work_seconds
        self.terminating = False
        self.stopping = threading.Event()
        self.inflight = 0  # /work requests not yet answered: shutdown waits for them
        self._inflight_lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Gauge("replica_capacity", "Free work slots (mean over 2 s)", registry=r).set_function(
            self.slots.free_mean
        )
        Gauge("replica_busy_slots", "Busy work slots (mean over 2 s)", registry=r).set_function(
            self.slots.busy_mean
        )
        Gauge("replica_slots", "Work slots of this replica", registry=r).set(slots)
        Gauge(
            "replica_termination", "1 when this replica asks to be removed", registry=r
        ).set_function(lambda: 1.0 if self.terminating else 0.0)
        self.requests = Counter(
            "replica_requests", "Work requests by result", ["result"], registry=r
        )
        for result in ("ok", "rejected"):
            self.requests.labels(result)  # export zeros from the start

    def sampler(self) -> None:
        while not self.stopping.wait(SAMPLE_SECONDS):
            self.slots.sample()

    def enter(self) -> None:
        with self._inflight_lock:
            self.inflight += 1

    def leave(self) -> None:
        with self._inflight_lock:
            self.inflight -= 1

    def work(self) -> bool:
        """One unit of work; False when rejected (no free slot, or shutting down)."""
        if self.stopping.is_set() or not self.slots.try_acquire():
            self.requests.labels("rejected").inc()
            return False
        try:
            time.sleep(self.work_seconds)
        finally:
            self.slots.release()
        self.requests.labels("ok").inc()
        return True

    def status(self) -> dict[str, object]:
        return {"capacity": round(self.slots.free_mean(), 3), "termination": self.terminating}


def make_handler(replica: DemoReplica, replica_id: str, group: str) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "demo-replica"

        def log_message(self, format: str, *args: object) -> None:
            pass  # no per-request logs

        def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, data: object) -> None:
            self._send(code, json.dumps(data).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            path = self.path.split("?", 1)[0]
            if path == "/work":
                replica.enter()
                try:
                    if replica.work():
                        self._send(200, b"ok\n")
                    else:
                        self._send(503, b"busy\n")
                finally:
                    replica.leave()
            elif path == "/metrics":
                self._send(200, generate_latest(replica.registry), CONTENT_TYPE_LATEST)
            elif path == "/status":
                self._json(200, replica.status())
            elif path == "/healthz":
                self._json(200, {"replica": replica_id, "group": group})
            else:
                self._send(404, b"not found\n")

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0] == "/terminate":
                replica.terminating = True
                self._json(200, replica.status())
            else:
                self._send(404, b"not found\n")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # shutdown drains in-flight requests itself, bounded
    request_queue_size = 128  # bursts from the load generator

    def handle_error(self, request: object, client_address: object) -> None:
        # a client that gave up (timeout, reset) is normal under load: no traceback
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="autoscaler.demo.replica", description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--work-seconds", type=float, default=1.0)
    p.add_argument("--replica-id", default="")
    p.add_argument("--group", default="")
    p.add_argument("--terminate-after", type=float, default=None, metavar="SECONDS")
    args = p.parse_args(argv)
    if args.slots < 1:
        p.error("--slots must be >= 1")
    if args.work_seconds < 0:
        p.error("--work-seconds must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    disable_created_metrics()  # no *_created series: less noise for 1 s scrapes
    replica = DemoReplica(args.slots, args.work_seconds)
    server = _Server((args.host, args.port), make_handler(replica, args.replica_id, args.group))

    def stop(signum: int, frame: FrameType | None) -> None:
        replica.stopping.set()
        # shutdown() waits for serve_forever, which runs in this (main) thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=replica.sampler, daemon=True).start()
    if args.terminate_after is not None:
        timer = threading.Timer(args.terminate_after, lambda: setattr(replica, "terminating", True))
        timer.daemon = True
        timer.start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()  # stop accepting; handler threads keep their sockets
    deadline = time.monotonic() + args.work_seconds + 5.0
    while replica.inflight > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
