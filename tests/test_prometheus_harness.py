"""The test harness's Prometheus survives its port being taken between pick and bind."""

from __future__ import annotations

import socket

import pytest

from autoscaler.testing.prometheus import PrometheusServer


def _occupy(port: int) -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def test_a_port_taken_before_prometheus_binds_it_is_replaced() -> None:
    server = PrometheusServer(autoscaler="127.0.0.1:9")
    taken = server.port
    blocker = _occupy(taken)  # another process got there first
    try:
        server.start()
        assert server.port != taken
        assert server.query("vector(1)")[0]["value"][1] == "1"
    finally:
        server.cleanup()
        blocker.close()


def test_a_port_the_caller_chose_is_never_replaced() -> None:
    server = PrometheusServer(autoscaler="127.0.0.1:9")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        chosen = probe.getsockname()[1]
    blocker = _occupy(chosen)
    server.port, server.url = chosen, f"http://127.0.0.1:{chosen}"
    try:
        with pytest.raises(RuntimeError, match="did not start"):
            server.start()
        assert server.port == chosen
    finally:
        server.cleanup()
        blocker.close()
