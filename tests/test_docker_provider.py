"""The docker provider against a real Docker-compatible engine: Podman's API service.

Two podman services on two sockets (tests/harness/podman.py) are two engines, i.e.
microscaler's two availability zones. Every container made here is removed: by the
provider fixture's finalizer, and in any case when the engines stop.
"""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from autoscaler.core.model import ReplicaState
from autoscaler.providers import registry
from autoscaler.providers.base import ProviderError, ReplicaProvider
from autoscaler.providers.docker import LABEL_GROUP, DockerProvider, Settings, check_options
from tests.harness import podman
from tests.provider_conformance import BlackHole, Failure, Hung, ReplicaProviderContract

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(podman.missing() is not None, reason=str(podman.missing())),
]

# Serves /www on 8080 and leaves at once on SIGTERM (a shell as PID 1 ignores it otherwise).
SERVE = ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]


@pytest.fixture(scope="module")
def engines() -> Iterator[tuple[podman.PodmanEngine, podman.PodmanEngine]]:
    a, b = podman.PodmanEngine(), podman.PodmanEngine()
    try:
        threads = [threading.Thread(target=e.start) for e in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert a.ping() and b.ping(), a.log_text()[-500:] + b.log_text()[-500:]
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture(scope="module")
def www() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="docker-www-") as d:
        (Path(d) / "metrics").write_text("replica_capacity 3\n")
        yield Path(d)


@pytest.fixture
def make(engines, www) -> Iterator[Callable[..., DockerProvider]]:
    made: list[DockerProvider] = []

    def factory(*urls: str, group: str | None = None, **options: Any) -> DockerProvider:
        opts: dict[str, Any] = {
            "engines": list(urls) or [engines[0].base_url],
            "image": podman.IMAGE,
            "command": SERVE,
            "volumes": {str(www): "/www:ro"},
            "request_timeout_seconds": 20,
            "stop_timeout_seconds": 2,
        }
        opts.update(options)
        assert check_options(opts, "p") == []
        p = DockerProvider(Settings.from_options(group or f"g{secrets.token_hex(3)}", opts))
        made.append(p)
        return p

    yield factory
    for p in made:
        p.close()
        cleaner = DockerProvider(p.s)  # a fresh one: the test may have closed p
        try:
            cleaner.delete([r.id for r in cleaner.list()])
        except ProviderError:
            pass  # an unreachable engine: the engines' own teardown removes everything
        finally:
            cleaner.close()


def _wait(what: str, predicate: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _metrics(address: str) -> str:
    return requests.get(f"http://{address}/metrics", timeout=3).text


def _serving(address: str | None) -> bool:
    try:
        return address is not None and "replica_capacity" in _metrics(address)
    except requests.RequestException:
        return False


# ------------------------------------------------------------------------ options


def test_options_are_checked_with_key_paths() -> None:
    errors = check_options(
        {
            "engines": ["ftp://x", {"url": "unix:///s", "zone": 1}],
            "cpus": 0,
            "memory": "lots",
            "address": "nat",
            "labels": {"io.autoscaler.group": "x"},
            "metrics_port": 0,
            "stop_timeout_seconds": -1,
            "bogus": 1,
        },
        "p",
    )
    text = "\n".join(errors)
    for key in (
        "p.engines[0]",
        "p.engines[1].zone",
        "p.image: required",
        "p.cpus",
        "p.memory",
        "p.address",
        "p.labels",
        "p.metrics_port",
        "p.stop_timeout_seconds",
        "p.bogus",
    ):
        assert key in text, (key, text)


def test_registry_knows_the_docker_type() -> None:
    assert "docker" in registry.provider_types()
    errs = registry.check_provider_options("docker", {"image": "x", "cpus": "1"}, "g.provider")
    assert errs == ["g.provider.cpus: must be a number of CPUs > 0, e.g. 0.5 (got '1')"]


# ------------------------------------------------------------------------ the contract


def test_create_list_delete_with_launch_configuration(make, engines) -> None:
    p = make(env={"MODE": "test"}, labels={"team": "web"}, cpus=0.5, memory="64m")
    result = p.create(2)
    assert len(result.succeeded) == 2 and not result.failed
    _wait("two active", lambda: [r.state for r in p.list()] == [ReplicaState.ACTIVE] * 2)
    reps = p.list()
    assert sorted(r.id for r in reps) == sorted(result.succeeded)
    for r in reps:
        assert r.address and r.address.startswith("127.0.0.1:")
        assert r.metadata["engine"] == engines[0].base_url
        _wait("metrics served", lambda r=r: _serving(r.address))
    client = engines[0].client()
    try:
        attrs = client.containers.get(reps[0].id).attrs
    finally:
        client.close()
    assert attrs["Config"]["Labels"]["team"] == "web"
    assert attrs["Config"]["Labels"][LABEL_GROUP] == p.s.group
    assert "MODE=test" in attrs["Config"]["Env"]
    assert attrs["HostConfig"]["NanoCpus"] == 500_000_000
    assert attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024

    gone = p.delete([reps[0].id])
    assert gone.succeeded == [reps[0].id]
    assert [r.id for r in p.list()] == [reps[1].id]
    again = p.delete([reps[0].id])  # already gone: success
    assert again.succeeded == [reps[0].id] and not again.failed


def test_only_our_labelled_containers_are_listed_or_deleted(make, engines) -> None:
    p = make()
    twin = make(group=p.s.group, instance="other")  # same group name, another autoscaler
    ours = p.create(1).succeeded[0]
    twin_id = twin.create(1).succeeded[0]
    client = engines[0].client()
    stranger = client.containers.run(podman.IMAGE, ["sleep", "60"], detach=True)
    try:
        assert [r.id for r in p.list()] == [ours]
        assert [r.id for r in twin.list()] == [twin_id]
        for foreign in (stranger.name, twin_id):  # not ours: never stopped
            refused = p.delete([foreign])
            assert refused.failed and "not one of this group's" in refused.failed[0][1]
        assert client.containers.get(stranger.id).status == "running"
        assert [r.id for r in twin.list()] == [twin_id]
    finally:
        stranger.remove(force=True)
        client.close()


def test_crashed_container_is_failed_and_replaceable(make) -> None:
    p = make()
    rid = p.create(1).succeeded[0]
    _wait("active", lambda: [r.state for r in p.list()] == [ReplicaState.ACTIVE])
    client = p._client(p.s.engines[0].url)
    client.containers.get(rid).kill()  # the process dies: microscaler's health manager case
    _wait("failed", lambda: [r.state for r in p.list()] == [ReplicaState.FAILED])
    assert p.list()[0].address is None
    assert p.delete([rid]).succeeded == [rid]
    assert p.list() == []

    crashing = make(command=["sh", "-c", "exit 3"])
    crashing.create(1)
    _wait("exited is failed", lambda: [r.state for r in crashing.list()] == [ReplicaState.FAILED])


def test_retried_create_adopts_instead_of_doubling(make, monkeypatch) -> None:
    p = make()
    engine = p.s.engines[0]
    containers = p._client(engine.url).containers
    real_create = containers.create

    def lost_answer(**kwargs):
        real_create(**kwargs)  # the engine made it ...
        raise requests.ReadTimeout("read timed out")  # ... but the answer was lost

    monkeypatch.setattr(containers, "create", lost_answer)
    result = p.create(1)
    monkeypatch.undo()
    assert len(result.succeeded) == 1, result
    assert [r.id for r in p.list()] == result.succeeded
    # the same name retried once more (a second attempt of the controller): still one
    assert p._create_one(engine, result.succeeded[0]) is None
    assert len(p.list()) == 1


def test_delete_is_graceful_then_forced_after_the_timeout(make) -> None:
    graceful = make(stop_timeout_seconds=5)
    rid = graceful.create(1).succeeded[0]
    _wait("active", lambda: graceful.list()[0].state is ReplicaState.ACTIVE)
    t = time.monotonic()
    assert graceful.delete([rid]).succeeded == [rid]
    assert time.monotonic() - t < 4, "a container that exits on SIGTERM is not waited for"

    stubborn = make(command=["sh", "-c", "trap '' TERM; while true; do sleep 1; done"])
    rid = stubborn.create(1).succeeded[0]
    _wait("active", lambda: stubborn.list()[0].state is ReplicaState.ACTIVE)
    t = time.monotonic()
    assert stubborn.delete([rid]).succeeded == [rid]
    took = time.monotonic() - t
    assert 1.5 <= took < 10, f"stop_timeout_seconds 2 then SIGKILL, took {took:.1f}s"
    assert stubborn.list() == []


def test_replicas_spread_evenly_over_engines(make, engines) -> None:
    a, b = engines
    p = make(a.base_url, b.base_url)
    assert len(p.create(4).succeeded) == 4
    per = {a.base_url: [], b.base_url: []}
    for r in p.list():
        per[r.metadata["engine"]].append(r.id)
    assert [len(v) for v in per.values()] == [2, 2]
    assert len(p.delete(per[a.base_url]).succeeded) == 2
    p.create(1)
    p.create(1)  # both go to the emptier engine
    counts = {u: 0 for u in per}
    for r in p.list():
        counts[r.metadata["engine"]] += 1
    assert counts == {a.base_url: 2, b.base_url: 2}


def test_container_ip_address_mode(make) -> None:
    p = make(address="container_ip")
    p.create(1)
    _wait("active", lambda: p.list()[0].state is ReplicaState.ACTIVE)
    address = p.list()[0].address
    assert address and address.endswith(":8080") and not address.startswith("127.")
    _wait("metrics on the container IP", lambda: _serving(address))


# ------------------------------------------------------------------------ failures


def test_unreachable_engine_fails_list_and_is_skipped_for_placement(make, engines) -> None:
    dead = f"unix://{tempfile.gettempdir()}/no-such-engine-{secrets.token_hex(3)}.sock"
    p = make(engines[0].base_url, dead)
    with pytest.raises(ProviderError) as exc:
        p.list()
    assert "no-such-engine" in str(exc.value) and "docker" in str(exc.value)
    result = p.create(2)  # placed on the engine that answers
    assert len(result.succeeded) == 2
    live = make(engines[0].base_url, group=p.s.group)
    assert len(live.list()) == 2


def test_docker_example_is_valid() -> None:
    config = registry.load_config(Path(__file__).parents[1] / "examples" / "docker.yaml", {})
    (group,) = config.groups
    assert group.provider.type == "docker"
    s = Settings.from_options(group.name, group.provider.options)
    assert [e.address_host for e in s.engines] == ["127.0.0.1", "docker02.example.net"]
    assert (s.cpus, s.memory, s.metrics_port) == (1.0, "1024m", 9080)


# ------------------------------------------------------------------------ conformance


class TestDockerConformance(ReplicaProviderContract):
    """The shared provider contract (tests/provider_conformance.py) on a podman engine."""

    settle_seconds = 20.0

    @pytest.fixture
    def contract_backend(self, engines, www):
        return {"engine": engines[0], "www": www}

    def options(self, **extra: Any) -> dict[str, Any]:
        return {
            "engines": [self.backend["engine"].base_url],
            "image": podman.IMAGE,
            "command": SERVE,
            "volumes": {str(self.backend["www"]): "/www:ro"},
            "stop_timeout_seconds": 2,
            **extra,
        }

    def make_provider(self, group: str, **extra: Any) -> DockerProvider:
        return DockerProvider(Settings.from_options(group, self.options(**extra)))

    def custom(self, group: str, **extra: Any) -> DockerProvider:
        return self.kept(self.make_provider(group, **extra))

    def _client(self):
        client = self.backend["engine"].client()
        self.on_cleanup(client.close)
        return client

    def add_foreign_replicas(self, group: str) -> None:
        client = self._client()
        labels = [
            {},  # nobody's
            {LABEL_GROUP: group, "io.autoscaler.instance": "someone-else"},  # another autoscaler
            {LABEL_GROUP: f"{group}x", "io.autoscaler.instance": "default"},  # another group
        ]
        for lab in labels:
            c = client.containers.run(podman.IMAGE, ["sleep", "60"], detach=True, labels=lab)
            self.on_cleanup(lambda c=c: c.remove(force=True))

    def lose_next_create_answer(self, provider: ReplicaProvider) -> None:
        assert isinstance(provider, DockerProvider)
        containers = provider._client(provider.s.engines[0].url).containers
        real = containers.create

        def once(**kwargs):
            containers.create = real  # only the next one
            real(**kwargs)
            raise requests.ConnectionError("connection reset by peer")

        containers.create = once

    def kill_externally(self, group: str, replica_id: str) -> None:
        self._client().containers.get(replica_id).remove(force=True)

    def hung_calls(self, group: str) -> list[Hung]:
        d = tempfile.mkdtemp(prefix="hung-engine-")
        hole = BlackHole(unix_path=f"{d}/docker.sock")
        self.on_cleanup(hole.close)
        p = self.custom(group, engines=[hole.url], request_timeout_seconds=1)
        # the client asks the API version first, then the call itself: two timeouts
        return [
            Hung("list on an engine that never answers", p.list, 2),
            Hung("create on an engine that never answers", lambda: p.create(1), 2),
            Hung("delete on an engine that never answers", lambda: p.delete(["x"]), 2),
        ]

    def failing_calls(self, group: str) -> list[Failure]:
        missing = self.custom(group, image="localhost/no-such-image:1", pull=False)
        stranger = self._client().containers.run(podman.IMAGE, ["sleep", "60"], detach=True)
        self.on_cleanup(lambda: stranger.remove(force=True))
        ours = self.custom(self.new_group())
        return [
            Failure("create of a missing image", lambda: missing.create(1), "docker create"),
            Failure(
                "delete of a container that is not ours",
                lambda: ours.delete([stranger.name]),
                "not one of this group's",
            ),
        ]
