"""The `http` provider against the ScaleIt-compatible app, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from autoscaler.core.model import ReplicaState
from autoscaler.providers import http as http_provider
from autoscaler.providers.base import ProviderError
from autoscaler.providers.count_adapter import CountAsReplicas
from autoscaler.providers.http import HttpCountProvider, HttpOptions, check_options
from autoscaler.testing.scaleit_app import ScaleItApp, steps
from tests.provider_conformance import BlackHole, CountProviderContract, Failure, Hung

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def app() -> Iterator[ScaleItApp]:
    with ScaleItApp(2.0, replicas=3, max_replicas=20) as a:
        yield a


def provider(url: str, **kw: object) -> HttpCountProvider:
    options = HttpOptions(status_url=f"{url}/app/status", set_url=f"{url}/app/replicas")
    for key, value in kw.items():
        object.__setattr__(options, key, value)
    return HttpCountProvider(options)


class Failures:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, method: str, endpoint: str) -> None:
        self.seen.append((method, endpoint))


def test_reads_and_sets_the_count_with_scaleit_requests(app: ScaleItApp) -> None:
    p = provider(app.url)
    failures = Failures()
    labels = p.report_request_failures(failures)
    assert labels == [("get", "/app/status"), ("put", "/app/replicas")]
    assert p.read_count() == 3
    res = p.set_count(5)
    assert res.succeeded == ["5"] and not res.failed
    assert app.replicas == 5 and p.read_count() == 5
    assert [(m, path) for m, path, _ in app.requests] == [
        ("GET", "/app/status"),
        ("PUT", "/app/replicas"),
        ("GET", "/app/status"),
    ]
    assert app.headers[0]["Accept"] == "application/json"
    assert app.headers[1]["Content-Type"] == "application/json"
    assert failures.seen == []
    p.close()


def test_a_4xx_is_a_rejected_value_logged_counted_and_not_sent_again(
    app: ScaleItApp, caplog: pytest.LogCaptureFixture
) -> None:
    p = provider(app.url)
    failures = Failures()
    p.report_request_failures(failures)
    p.read_count()
    res = p.set_count(0)  # the app takes 1..max_replicas
    assert not res.succeeded
    assert "rejected: HTTP 400" in res.failed[0][1] and "invalid replicas" in res.failed[0][1]
    assert failures.seen == [("put", "/app/replicas")]
    assert any("rejected" in r.getMessage() for r in caplog.records)
    sent = len(app.requests)
    again = p.set_count(0)  # same value, same state: not retried
    assert "not retried" in again.failed[0][1] and len(app.requests) == sent
    assert p.set_count(4).succeeded == ["4"]  # another value is sent
    assert app.replicas == 4
    p.close()


def test_5xx_are_counted_and_retried_next_cycle() -> None:
    with ScaleItApp(1.0, replicas=2, error_rate=1.0) as app:
        p = provider(app.url)
        failures = Failures()
        p.report_request_failures(failures)
        with pytest.raises(ProviderError, match=r"GET /app/status: HTTP 503"):
            p.read_count()
        res = p.set_count(3)
        assert "HTTP 503" in res.failed[0][1] and "retried next cycle" in res.failed[0][1]
        res = p.set_count(3)  # retried: sent again
        assert len([r for r in app.requests if r[0] == "PUT"]) == 2
        assert failures.seen == [("get", "/app/status"), ("put", "/app/replicas")] + [
            ("put", "/app/replicas")
        ]
        app.error_rate = 0.0
        assert p.set_count(3).succeeded == ["3"] and app.replicas == 3
        p.close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: a hung application."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        t.join(2)
        for c in held:
            c.close()
        sock.close()


def test_timeouts_are_honoured_counted_and_retried(silent_server: str) -> None:
    p = provider(silent_server, timeout_seconds=0.3)
    failures = Failures()
    p.report_request_failures(failures)
    start = time.monotonic()
    with pytest.raises(ProviderError, match="timed out"):
        p.read_count()
    res = p.set_count(2)
    assert "timed out" in res.failed[0][1] and "retried next cycle" in res.failed[0][1]
    assert time.monotonic() - start < 2.0
    assert failures.seen == [("get", "/app/status"), ("put", "/app/replicas")]
    p.close()


def test_unreachable_and_bad_answers_are_errors_without_secrets(app: ScaleItApp) -> None:
    p = provider("http://127.0.0.1:1", headers={"Authorization": "Bearer s3cr3t"})
    with pytest.raises(ProviderError) as e:
        p.read_count()
    assert "cannot connect" in str(e.value) and "s3cr3t" not in str(e.value)
    # a path that is not there, or not a count
    p = provider(app.url, count_path=("cpu", "highPriority"))
    with pytest.raises(ProviderError, match=r"cpu.highPriority is 0.6667.*not a count"):
        p.read_count()
    p = provider(app.url, count_path=("nope",))
    with pytest.raises(ProviderError, match="no key nope"):
        p.read_count()


def test_method_headers_paths_and_success_codes_are_configurable(app: ScaleItApp) -> None:
    opts = http_provider.options_from(
        {
            "status_url": f"{app.url}/app/status",
            "set_url": f"{app.url}/app/replicas",
            "count_path": "$.replicas",
            "headers": {"X-Team": "blue"},
            "success_codes": [204],
            "timeout_seconds": 2,
        }
    )
    p = HttpCountProvider(opts)
    assert p.read_count() == 3 and p.set_count(6).succeeded == ["6"]
    assert all(h.get("X-Team") == "blue" for h in app.headers)
    # success_codes are the set request's: the app's 204 is not in [200], so it failed
    p = HttpCountProvider(
        HttpOptions(opts.status_url, opts.set_url, success_codes=frozenset({200}))
    )
    assert p.read_count() == 6
    assert "HTTP 204; retried next cycle" in p.set_count(7).failed[0][1]
    # a nested body and another method: the app refuses POST (501) -> a retried failure
    p = HttpCountProvider(
        HttpOptions(opts.status_url, opts.set_url, set_method="POST", set_count_path=("spec", "n"))
    )
    assert "HTTP 501" in p.set_count(2).failed[0][1]


def test_options_are_checked_with_every_error_named() -> None:
    assert check_options({"status_url": "http://a/s", "set_url": "https://a/r"}, "p") == []
    errors = check_options(
        {
            "status_url": "ftp://a",
            "set_url": "http://u:pw@a/r",
            "count_path": "a..b",
            "set_count_path": "items[0]",
            "set_method": "GET",
            "headers": {"X": 1},
            "success_codes": [99],
            "timeout_seconds": 0,
            "colour": "red",
        },
        "p",
    )
    text = "\n".join(errors)
    for key in (
        "p.colour: unknown option",
        "p.status_url: got 'ftp://a'",
        "p.set_url: credentials in the URL are not allowed",
        "p.count_path: empty key",
        "p.set_count_path: got 'items[0]', expected keys only",
        "p.set_method: got 'GET'",
        "p.headers:",
        "p.success_codes:",
        "p.timeout_seconds:",
    ):
        assert key in text
    assert "pw" not in text
    assert check_options({}, "p") == [
        "p.status_url: required (an http:// or https:// URL)",
        "p.set_url: required (an http:// or https:// URL)",
    ]


# --- the adapter the controller drives -----------------------------------------------


def test_count_as_replicas_lists_stable_synthetic_replicas_and_sets_counts(
    app: ScaleItApp,
) -> None:
    clock = [1000.0]
    r = CountAsReplicas(provider(app.url), "web", wall=lambda: clock[0])
    first = r.list()
    assert [x.id for x in first] == ["web-1", "web-2", "web-3"]
    assert all(x.state is ReplicaState.ACTIVE and x.address is None for x in first)
    assert all(x.created_at == 0.0 for x in first)  # found running: not in warm-up
    assert [x.id for x in r.list()] == ["web-1", "web-2", "web-3"]  # stable across cycles
    clock[0] = 1010.0
    res = r.create(2)
    assert res.succeeded == ["web-4", "web-5"] and app.replicas == 5
    assert [x.created_at for x in r.list()][-2:] == [1010.0, 1010.0]
    res = r.delete(["web-2", "web-9"])  # web-9 is already gone: success
    assert sorted(res.succeeded) == ["web-2", "web-9"] and app.replicas == 4
    assert [x.id for x in r.list()] == ["web-1", "web-3", "web-4", "web-5"]
    puts = len([q for q in app.requests if q[0] == "PUT"])
    assert r.delete(["web-2"]).succeeded == ["web-2"]  # nothing to do: no request
    assert len([q for q in app.requests if q[0] == "PUT"]) == puts
    # the app scaled itself down: the newest go
    app.replicas = 2
    assert [x.id for x in r.list()] == ["web-1", "web-3"]
    # a refused count is a failure of the action, the replicas stay as they were
    res = r.delete(["web-1", "web-3"])  # 0 replicas: the app answers 400
    assert not res.succeeded and "rejected" in res.failed[0][1]
    assert len(r.list()) == 2
    r.close()


def test_the_app_simulator_follows_its_load_curve() -> None:
    with ScaleItApp(steps([(0.0, 1.6), (0.3, 4.0)]), replicas=2) as app:
        assert app.cpu() == pytest.approx(0.8)
        time.sleep(0.35)
        assert app.cpu() == 1.0  # capped at 1
        app.replicas = 8
        assert app.cpu() == pytest.approx(0.5)


# --- the provider conformance suite (count-level part) ---------------------------------


class TestHttpConformance(CountProviderContract):
    """The count-level contract: read, set, read back by a new instance, timeouts, errors.

    Skipped by the suite as not applicable to a count-level target: only ours listed,
    delete these ids, adoption after a crash (the application owns its replicas)."""

    start_count = 1
    settle_seconds = 5.0

    @pytest.fixture
    def contract_backend(self) -> Iterator[ScaleItApp]:
        with ScaleItApp(0.5, replicas=1) as a:
            yield a

    def make_provider(self, group: str) -> HttpCountProvider:
        return provider(self.backend.url, headers={"Authorization": "Bearer t0ps3cr3t"})

    def secrets(self) -> list[str]:
        return ["t0ps3cr3t"]

    def hung_calls(self, group: str) -> list[Hung]:
        hole = BlackHole()
        self.on_cleanup(hole.close)
        p = provider(hole.url, timeout_seconds=0.5)
        self.on_cleanup(p.close)
        return [
            Hung("read_count", p.read_count, 0.5),
            Hung("set_count", lambda: p.set_count(3), 0.5),
        ]

    def failing_calls(self, group: str) -> list[Failure]:
        failing = ScaleItApp(1.0, error_rate=1.0).start()
        self.on_cleanup(failing.stop)
        p = provider(failing.url, headers={"Authorization": "Bearer t0ps3cr3t"})
        refused = self.make_provider(group)
        self.on_cleanup(p.close)
        self.on_cleanup(refused.close)
        return [
            Failure("status answered 503", p.read_count, "GET /app/status: HTTP 503"),
            Failure("set answered 503", lambda: p.set_count(2), "PUT /app/replicas 2: HTTP 503"),
            Failure("value refused", lambda: refused.set_count(0), "rejected: HTTP 400"),
        ]
