"""The provider contract, run against every OpenStack backend (real Nova, the emulator).

A test module opts in by subclassing `ProviderContract` and defining one fixture,
`cloud`, returning a `ContractCloud`: the provider options that reach that backend, and
what the backend can do. The same assertions hold for both backends; that the emulator
passes them too is what keeps it honest.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from autoscaler.core.model import Replica, ReplicaState
from autoscaler.providers.base import ProviderError
from autoscaler.providers.openstack import provider as openstack
from tests.provider_conformance import (
    BlackHole,
    Failure,
    Hung,
    ReplicaProviderContract,
    unsupported,
    wait_for,
)

_group_ids = itertools.count(1)
WRONG_PASSWORD = "Wr0ng-Passw0rd"


@dataclass
class ContractCloud:
    """One backend, as the contract suite sees it."""

    name: str
    options: dict[str, Any]  # flavor, image, network and how to connect
    secrets: list[str]  # values that must never appear in a message
    set_instance_quota: Callable[[int], None] | None = None
    bad_auth_options: dict[str, Any] | None = None  # a wrong password, where auth is real
    settle_seconds: float = 60.0  # BUILD -> ACTIVE and delete completion, upper bound
    lose_next_create_answer: Callable[[], None] | None = None  # make, then answer 500
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def make_provider(
    cloud: ContractCloud, group: str | None = None, **overrides: Any
) -> openstack.OpenStackProvider:
    group = group or f"c{next(_group_ids)}-{int(time.time() * 1000) % 100000}"
    options = {**cloud.options, **overrides}
    assert openstack.check_options(options, "groups[0].provider") == []
    return openstack.OpenStackProvider(openstack.Settings.from_options(group, options))


def active(provider: openstack.OpenStackProvider, n: int, timeout: float) -> list[Replica]:
    def ready() -> list[Replica] | None:
        reps = [r for r in provider.list() if r.state is not ReplicaState.DELETING]
        ok = len(reps) == n and all(r.state is ReplicaState.ACTIVE for r in reps)
        return reps if ok else None

    return wait_for(ready, timeout, f"{n} active replicas")


def gone(provider: openstack.OpenStackProvider, timeout: float) -> None:
    wait_for(lambda: provider.list() == [], timeout, "every replica deleted")


class ProviderContract:
    """The behaviour every OpenStack backend must show through the provider."""

    @pytest.fixture
    def provider(self, cloud: ContractCloud):
        providers: list[openstack.OpenStackProvider] = []

        def factory(group: str | None = None, **overrides: Any) -> openstack.OpenStackProvider:
            p = make_provider(cloud, group, **overrides)
            providers.append(p)
            return p

        yield factory
        for p in providers:  # never leave servers behind on a shared backend
            try:
                ids = [r.id for r in p.list()]
                if ids:
                    p.delete(ids)
            finally:
                p.close()

    def test_list_before_first_create_then_create(self, provider, cloud):
        p = provider()  # the daemon's order: every cycle lists before it acts
        assert p.list() == []
        res = p.create(1)
        assert res.failed == [] and len(res.succeeded) == 1
        active(p, 1, cloud.settle_seconds)

    def test_new_group_is_empty(self, provider):
        assert provider().list() == []

    def test_create_then_active_with_metrics_address(self, provider, cloud):
        p = provider(metrics_port=9123)
        res = p.create(2)
        assert res.failed == [] and res.quota_exceeded is None
        assert len(res.succeeded) == 2 and len(set(res.succeeded)) == 2
        listed = p.list()
        assert {r.id for r in listed} == set(res.succeeded)
        assert all(r.state in (ReplicaState.BUILDING, ReplicaState.ACTIVE) for r in listed)
        reps = active(p, 2, cloud.settle_seconds)
        for r in reps:
            host, _, port = r.address.rpartition(":")
            assert port == "9123" and host, r.address
            assert r.group == p.s.group
            assert r.metadata["group"] == p.s.group
            assert r.name.startswith(f"autoscaler-{p.s.group}-")
            assert abs(r.created_at - time.time()) < 3600
        assert len({r.name for r in reps}) == 2

    def test_groups_are_separated_by_metadata(self, provider, cloud):
        a, b = provider(), provider()
        ids_a = a.create(1).succeeded
        ids_b = b.create(2).succeeded
        assert {r.id for r in a.list()} == set(ids_a)
        assert {r.id for r in b.list()} == set(ids_b)

    def test_custom_metadata_key_and_value(self, provider, cloud):
        p = provider(metadata_key="pool", metadata_value="scaled")
        (sid,) = p.create(1).succeeded
        (r,) = p.list()
        assert r.id == sid and r.metadata["pool"] == "scaled"
        assert provider(group=p.s.group).list() == []  # default key: not the same group

    def test_delete_removes_and_is_idempotent(self, provider, cloud):
        p = provider()
        ids = p.create(2).succeeded
        active(p, 2, cloud.settle_seconds)
        res = p.delete(ids[:1])
        assert res.succeeded == ids[:1] and res.failed == []
        wait_for(
            lambda: [r.id for r in p.list() if r.state is not ReplicaState.DELETING] == ids[1:],
            cloud.settle_seconds,
            "one replica left",
        )
        gone_id = ids[0]
        wait_for(lambda: gone_id not in {r.id for r in p.list()}, cloud.settle_seconds, "gone")
        again = p.delete([gone_id])  # already gone: nothing to do, not an error
        assert again.succeeded == [gone_id] and again.failed == []

    def test_create_zero_does_nothing(self, provider):
        p = provider()
        res = p.create(0)
        assert res.succeeded == [] and res.failed == []
        assert p.list() == []

    def test_adopts_servers_made_elsewhere(self, provider, cloud):
        """A server with the group's metadata (e.g. made by SimpleScaleVM) is a replica."""
        p = provider()
        r = p._resolve()
        server = p.conn.compute.create_server(
            name="made-by-hand",
            image_id=r["image"],
            flavor_id=r["flavor"],
            networks=[{"uuid": r["network_id"]}],
            metadata={"group": p.s.group},
        )
        (rep,) = p.list()
        assert rep.id == server.id and rep.name == "made-by-hand"

    def test_create_token_lookup_finds_exactly_one(self, provider, cloud):
        """The retry path relies on Nova's regex name filter: anchored, it finds one."""
        p = provider()
        (sid,) = p.create(1).succeeded
        (rep,) = p.list()
        token = rep.metadata[openstack.TOKEN_KEY]
        assert rep.name.endswith(token)
        assert p._find_token(rep.name, token) == sid
        assert p._find_token(rep.name[:-1], token) is None  # a prefix is not a match
        assert p._find_token(rep.name, "0000000000") is None

    def test_quota_stops_creates_and_names_the_quota(self, provider, cloud):
        if cloud.set_instance_quota is None:
            pytest.skip(f"{cloud.name}: quota cannot be set")
        cloud.set_instance_quota(2)
        p = provider(max_concurrency=1)
        res = p.create(4)
        assert len(res.succeeded) == 2
        assert res.quota_exceeded == "instances"
        assert len(res.failed) == 1  # reported once; the rest were not even tried
        assert len(p.list()) == 2

    def test_bad_credentials_never_show_the_password(self, cloud):
        if cloud.bad_auth_options is None:
            pytest.skip(f"{cloud.name}: no real authentication")
        options = {**cloud.options, **cloud.bad_auth_options}
        p = openstack.OpenStackProvider(openstack.Settings.from_options("badauth", options))
        try:
            with pytest.raises(ProviderError) as info:
                p.list()
            text = str(info.value) + repr(info.value)
            for secret in cloud.secrets + [options["auth"]["password"]]:
                assert secret not in text
        finally:
            p.close()


class OpenStackConformance(ReplicaProviderContract):
    """The shared provider contract (tests/provider_conformance.py) on an OpenStack
    backend. A subclass overrides `contract_backend` to return its `ContractCloud`."""

    backend: ContractCloud

    def make_provider(self, group: str) -> openstack.OpenStackProvider:
        return make_provider(self.backend, group)

    def custom(self, group: str, **overrides: Any) -> openstack.OpenStackProvider:
        """A provider with other options, cleaned up like `provider()`."""
        options = {**self.backend.options, **overrides}
        return self.kept(
            openstack.OpenStackProvider(openstack.Settings.from_options(group, options))
        )

    def group_of(self, p: Any) -> str:
        return str(p.s.group)

    def secrets(self) -> list[str]:
        return [*self.backend.secrets, WRONG_PASSWORD]

    def _raw_server(
        self, p: openstack.OpenStackProvider, name: str, metadata: dict[str, str]
    ) -> str:
        r = p._resolve()
        server = p.conn.compute.create_server(
            name=name,
            image_id=r["image"],
            flavor_id=r["flavor"],
            networks=[{"uuid": r["network_id"]}],
            metadata=metadata,
        )
        return str(server.id)

    def add_foreign_replicas(self, group: str) -> None:
        p = self.make_provider(group)
        made = [
            self._raw_server(p, f"autoscaler-{group}-nolabel", {}),  # our name, no metadata
            self._raw_server(p, f"autoscaler-{group}-other", {"group": f"{group}x"}),
            self._raw_server(p, f"autoscaler-{group}-key", {"pool": group}),  # another key
        ]

        def remove() -> None:
            for sid in made:
                p.conn.compute.delete_server(sid, ignore_missing=True)
            p.close()

        self.on_cleanup(remove)

    def crash_between_create_and_list(self, group: str) -> None:
        # What a create leaves when the autoscaler dies before reading the answer: a
        # server with the group's metadata and a create token, its id known to no one.
        p = self.make_provider(group)
        token = "0123456789"
        self._raw_server(
            p, f"autoscaler-{group}-{token}", {"group": group, openstack.TOKEN_KEY: token}
        )
        p.close()

    def lose_next_create_answer(self, provider: Any) -> None:
        if self.backend.lose_next_create_answer is None:
            unsupported(f"{self.backend.name}: cannot make it lose an answer")
        self.backend.lose_next_create_answer()

    def kill_externally(self, group: str, replica_id: str) -> None:
        p = self.make_provider(group)
        try:
            p.conn.compute.delete_server(replica_id)
        finally:
            p.close()

    def hung_calls(self, group: str) -> list[Hung]:
        # Keystone answers; the compute endpoint accepts connections and never answers.
        hole = BlackHole()
        self.on_cleanup(hole.close)
        hung = self.custom(
            group,
            endpoint_overrides={"compute": f"{hole.url}/v2.1"},
            request_timeout_seconds=1,
        )
        # list: one request; create: the flavor lookup first; each request bounded by 1 s.
        # (delete retries a hung DELETE three times: tests/openstack/test_faults.py)
        return [
            Hung("list against a hung Nova", hung.list, 3 * 1.0),
            Hung("create against a hung Nova", lambda: hung.create(1), 3 * 1.0),
        ]

    def failing_calls(self, group: str) -> list[Failure]:
        no_flavor = self.custom(group, flavor="no-such-flavor-x1")
        out = [
            Failure(
                "create with an unknown flavor", lambda: no_flavor.create(1), "no-such-flavor-x1"
            )
        ]
        if self.backend.bad_auth_options is not None:
            bad = self.custom(
                group, auth={**self.backend.options["auth"], "password": WRONG_PASSWORD}
            )
            out.append(Failure("list with a wrong password", bad.list, "401"))
        return out
