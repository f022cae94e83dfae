"""A ScaleIt-compatible application, for tests and the demo.

- `GET /app/status` -> 200 `{"cpu": {"highPriority": x}, "replicas": n}`, where
  x = min(1, load(t) / n): the load curve (in replicas' worth of work) spread over the
  replicas it runs.
- `PUT /app/replicas` `{"replicas": n}` -> 204; 400 for anything but an integer in
  [1, max_replicas].
- Both answer 503 at `error_rate` (seeded, so a test is repeatable), as ScaleIt's app
  does now and then on purpose.

    python -m autoscaler.testing.scaleit_app --port 8123 --load 0:1,60:6,180:1
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LoadCurve = Callable[[float], float]  # seconds since start -> replicas' worth of work


def steps(points: Sequence[tuple[float, float]]) -> LoadCurve:
    """A step curve: from each (t, load) on, the load is `load` until the next point."""
    ordered = sorted(points)

    def curve(t: float) -> float:
        value = ordered[0][1] if ordered else 0.0
        for at, load in ordered:
            if t >= at:
                value = load
        return value

    return curve


class ScaleItApp:
    def __init__(
        self,
        load: LoadCurve | float = 1.0,
        *,
        replicas: int = 1,
        max_replicas: int = 100,
        error_rate: float = 0.0,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.load: LoadCurve = load if callable(load) else steps([(0.0, float(load))])
        self.replicas = replicas
        self.max_replicas = max_replicas
        self.error_rate = error_rate
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.random = random.Random(seed)
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) answered
        self.headers: list[dict[str, str]] = []  # each request's headers, in order
        self.history: list[tuple[float, int]] = [(0.0, replicas)]  # (elapsed, replicas) set
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def cpu(self) -> float:
        with self.lock:
            n = self.replicas
        return max(0.0, min(1.0, self.load(time.monotonic() - self.started) / max(n, 1)))

    def set_load(self, load: float) -> None:
        self.load = steps([(0.0, load)])

    def start(self) -> ScaleItApp:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScaleItApp:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _fails(self) -> bool:
        with self.lock:
            return self.error_rate > 0 and self.random.random() < self.error_rate

    def _put(self, body: bytes) -> int:
        try:
            doc = json.loads(body)
        except ValueError:
            return 400
        n = doc.get("replicas") if isinstance(doc, dict) else None
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= self.max_replicas:
            return 400
        with self.lock:
            self.replicas = n
            self.history.append((time.monotonic() - self.started, n))
        return 204

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        app = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, doc: Any = None) -> None:
                body = b"" if doc is None else json.dumps(doc).encode()
                with app.lock:  # recorded before answering: the client may look at once
                    app.requests.append((self.command, self.path, status))
                    app.headers.append(dict(self.headers.items()))
                self.send_response(status)
                if body:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path != "/app/status":
                    return self._answer(404, {"error": "not found"})
                if app._fails():
                    return self._answer(503, {"error": "unavailable on purpose"})
                cpu = app.cpu()
                with app.lock:
                    n = app.replicas
                self._answer(200, {"cpu": {"highPriority": round(cpu, 4)}, "replicas": n})

            def do_PUT(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path != "/app/replicas":
                    return self._answer(404, {"error": "not found"})
                if app._fails():
                    return self._answer(503, {"error": "unavailable on purpose"})
                status = app._put(body)
                self._answer(status, None if status == 204 else {"error": "invalid replicas"})

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler


def _curve(text: str) -> LoadCurve:
    points = []
    for part in text.split(","):
        at, _, load = part.partition(":")
        points.append((float(at), float(load)) if load else (0.0, float(at)))
    return steps(points)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8123)
    p.add_argument("--load", default="1", help="LOAD or T:LOAD,T:LOAD,... (steps, seconds)")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--error-rate", type=float, default=0.0)
    args = p.parse_args(argv)
    app = ScaleItApp(
        _curve(args.load),
        replicas=args.replicas,
        error_rate=args.error_rate,
        host=args.host,
        port=args.port,
    )
    print(f"ScaleIt-compatible app on {app.url}/app/status", flush=True)
    try:
        app.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        app.server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
