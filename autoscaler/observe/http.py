"""One HTTP request with a total deadline that a stop request can cut short.

`requests`' timeout bounds each socket read, not the request: a reply trickled one byte
at a time never trips it. Here the request runs in a worker thread that reads the body in
chunks and gives up at the deadline or when cancelled between chunks, while the caller
waits on the worker with the deadline and the stop event, so it returns at the deadline
(or within a fraction of a second of a stop request) whatever the socket does. A worker
left blocked in a read ends by itself at its own read timeout (never later than the
query's timeout) and then drops the connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import requests
import urllib3.exceptions

CHUNK = 64 * 1024
MAX_BODY = 256 * 1024 * 1024  # an answer larger than this is refused, not buffered
_POLL = 0.1  # seconds between looks at the stop event while waiting


class Deadline(Exception):
    """The request did not finish before its deadline."""


class Cancelled(Exception):
    """A stop was requested while the request was in progress."""


@dataclass
class Reply:
    status_code: int
    body: bytes | bytearray  # the buffer it was read into: no copy
    date: str | None = None  # the `Date` header: the server's wall clock
    received_at: float | None = None  # our wall clock when the headers arrived


def fetch(
    session: requests.Session,
    method: str,
    url: str,
    *,
    params: Mapping[str, str],
    headers: Mapping[str, str] | None,
    auth: tuple[str, str] | None,
    deadline: float,
    stop: threading.Event | None = None,
) -> Reply:
    """`method url` with `params`, finished by `deadline` (time.monotonic()).

    Raises Deadline, Cancelled, or what requests raises (connection errors, read timeouts).
    """
    cancel = threading.Event()
    box: dict[str, object] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["reply"] = _request(session, method, url, params, headers, auth, deadline, cancel)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=work, name="prometheus-query", daemon=True).start()
    try:
        while not done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                raise Deadline()
            if stop is not None and stop.is_set():
                raise Cancelled()
            done.wait(min(left, _POLL) if stop is not None else left)
    finally:
        cancel.set()  # the worker stops at its next chunk
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["reply"]  # type: ignore[return-value]


def _request(
    session: requests.Session,
    method: str,
    url: str,
    params: Mapping[str, str],
    headers: Mapping[str, str] | None,
    auth: tuple[str, str] | None,
    deadline: float,
    cancel: threading.Event,
) -> Reply:
    left = max(0.001, deadline - time.monotonic())
    # Form-encoded POST, as Prometheus accepts: long PromQL never hits URL length limits.
    data, query = (params, None) if method == "POST" else (None, params)
    with session.request(
        method,
        url,
        params=query,
        data=data,
        headers=dict(headers or {}),
        auth=auth,
        timeout=(left, left),  # each socket operation; the deadline bounds the total
        stream=True,
    ) as resp:
        received_at = time.time()
        # One growing buffer, not a list of chunks joined at the end: a 15 MB answer is
        # held once, not twice.
        body = bytearray()
        try:
            # read1: what one socket read brings (read() would wait for a whole chunk).
            while chunk := resp.raw.read1(CHUNK, decode_content=True):
                if cancel.is_set() or time.monotonic() > deadline:
                    raise Deadline()
                body += chunk
                if len(body) > MAX_BODY:
                    raise ValueError(f"answer larger than {MAX_BODY} bytes")
        # Reading the raw stream raises urllib3's own errors: give them requests' types.
        except urllib3.exceptions.ReadTimeoutError as e:
            raise requests.ReadTimeout(str(e)) from e
        except urllib3.exceptions.DecodeError as e:
            raise requests.exceptions.ContentDecodingError(str(e)) from e
        except urllib3.exceptions.HTTPError as e:
            raise requests.ConnectionError(str(e)) from e
        return Reply(resp.status_code, body, resp.headers.get("Date"), received_at)
