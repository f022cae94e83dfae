"""A replica process for the suite: reports the free capacity the control file says.

    python -m autoscaler.chaos.replica --port P --replica-id ID --control FILE

`replica_capacity` is `replicas[ID]` of the control file, else `capacity` (default 4): a
number, or a raw text such as "NaN" (a replica reporting garbage). SIGTERM exits at once.
"""

from __future__ import annotations

import argparse
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from autoscaler.chaos.control import Reader


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--replica-id", required=True)
    p.add_argument("--control", required=True)
    args = p.parse_args(argv)
    control = Reader(args.control)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            c = control.get()
            value = c.get("replicas", {}).get(args.replica_id, c.get("capacity", 4))
            body = (
                "# TYPE replica_capacity gauge\n"
                f"replica_capacity {value}\n"
                "# TYPE replica_termination gauge\n"
                "replica_termination 0\n"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True

    def stop(_s: int, _f: FrameType | None) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
