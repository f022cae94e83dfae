"""A threading HTTP server with bounded sockets, backlog and threads.

The stdlib server gives every connection a thread for as long as the client keeps it
open (no socket timeout) and listens with a backlog of 5: 300 idle connections held 303
threads. Here each connection's socket times out, the backlog is larger, and at most
`max_threads` handlers run at once; a connection beyond that gets a 503 and is closed
at once instead of queueing a thread.

With `web` set (runtime/web_config.py, `--web.config.file`), each connection's TLS
handshake runs in its handler thread, and every request passes basic auth first.
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Any

from autoscaler.runtime.web_config import WebConfig

log = logging.getLogger(__name__)

SOCKET_TIMEOUT = 10.0  # seconds a connection may stay silent (idle or mid-request)
REQUEST_QUEUE_SIZE = 64  # listen backlog
MAX_THREADS = 64  # concurrent handler threads

_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 5\r\nRetry-After: 1\r\nConnection: close\r\n\r\nbusy\n"
)


class BoundedHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = REQUEST_QUEUE_SIZE
    socket_timeout = SOCKET_TIMEOUT
    max_threads = MAX_THREADS
    web: WebConfig | None = None  # TLS and basic auth; set before serving

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(self.max_threads)

    def process_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.socket_timeout)
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread started: nobody else will release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            if self.web is not None:
                request = self.web.secure(request)  # None: handshake failed, closed
            if request is not None:
                super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        handler: Any = self.RequestHandlerClass
        if self.web is not None:
            handler = self.web.guard(handler)
        handler(request, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that left or stalled is routine: no traceback on stderr for it.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError | ssl.SSLError):
            log.debug("client %s went away", client_address)
            return
        super().handle_error(request, client_address)

    def _refuse(self, request: socket.socket) -> None:
        try:
            request.settimeout(0.5)  # never let a refusal block the accept loop
            request.sendall(_BUSY)
        except OSError:
            pass
        finally:
            self.shutdown_request(request)
