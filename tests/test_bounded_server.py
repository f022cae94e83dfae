"""The exporter's and the bridge's HTTP servers bound sockets, backlog and threads."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import requests

from autoscaler.bridge.server import Bridge, BridgeSettings
from autoscaler.runtime.bounded_server import BoundedHTTPServer
from autoscaler.runtime.exporter import ExporterServer, SharedState, serve
from autoscaler.runtime.metrics import Metrics
from tests.harness.prometheus import free_port


@pytest.fixture()
def exporter() -> Iterator[tuple[ExporterServer, str]]:
    server, stop = serve(f"127.0.0.1:{free_port()}", Metrics(), SharedState(10))
    server.socket_timeout = 0.5  # the default is 10 s: the test waits for it to bite
    try:
        yield server, f"127.0.0.1:{server.server_address[1]}"
    finally:
        stop()


def _idle(address: str, n: int) -> list[socket.socket]:
    host, _, port = address.rpartition(":")
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\n")  # a request line, then silence
        socks.append(s)
    return socks


def _closed_by_server(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        while s.recv(4096):
            pass  # a 408 or nothing: either way the server ends the connection
        return True
    except TimeoutError:
        return False
    except OSError:
        return True


def test_defaults_are_bounded() -> None:
    assert BoundedHTTPServer.socket_timeout == 10.0
    assert BoundedHTTPServer.request_queue_size == 64
    assert BoundedHTTPServer.max_threads == 64


def test_idle_connections_are_closed_after_the_timeout(exporter) -> None:
    _, address = exporter
    socks = _idle(address, 5)
    try:
        started = time.monotonic()
        assert all(_closed_by_server(s, within=5) for s in socks)
        assert time.monotonic() - started < 5
    finally:
        for s in socks:
            s.close()


def test_idle_connections_do_not_block_metrics(exporter) -> None:
    server, address = exporter
    server.socket_timeout = 30  # idle ones stay for the whole test
    socks = _idle(address, 40)  # fewer than the thread cap
    try:
        started = time.monotonic()
        for _ in range(5):
            r = requests.get(f"http://{address}/metrics", timeout=5)
            assert r.status_code == 200
        assert time.monotonic() - started < 5
    finally:
        for s in socks:
            s.close()


def test_beyond_the_thread_cap_answers_503_at_once(exporter) -> None:
    server, address = exporter
    server.socket_timeout = 30
    socks = _idle(address, server.max_threads)
    try:
        # The idle ones hold every slot once the server has accepted them all.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = requests.get(f"http://{address}/metrics", timeout=5)
            if r.status_code == 503:
                break
            time.sleep(0.05)
        assert r.status_code == 503
    finally:
        for s in socks:
            s.close()
    # Slots come back when the idle clients leave.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if requests.get(f"http://{address}/metrics", timeout=5).status_code == 200:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the exporter never recovered its handler slots")


def test_bridge_server_is_bounded() -> None:
    bridge = Bridge(BridgeSettings(), f"127.0.0.1:{free_port()}")
    assert isinstance(bridge.server, BoundedHTTPServer)
    bridge.server.socket_timeout = 0.5
    bridge.start()
    try:
        socks = _idle(bridge.address, 3)
        try:
            r = requests.get(f"http://{bridge.address}/metrics", timeout=5)
            assert r.status_code == 200
            assert all(_closed_by_server(s, within=5) for s in socks)
        finally:
            for s in socks:
                s.close()
    finally:
        bridge.stop()
