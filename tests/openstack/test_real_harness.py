"""The real Nova + Keystone harness, driven by the real (unmodified) openstacksdk."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.openstack.real_nova import (
    DEFAULT_QUOTA,
    SKIP_REASON,
    RealOpenStack,
    nova_installed,
    running_openstack,
)

pytestmark = [
    pytest.mark.skipif(not nova_installed(), reason=SKIP_REASON),
    pytest.mark.timeout(180),
]


@pytest.fixture
def cloud(real_openstack: RealOpenStack) -> Iterator[RealOpenStack]:  # noqa: F811
    """The session cloud, emptied and with the default quota after each test."""
    try:
        yield real_openstack
    finally:
        real_openstack.set_instances_quota(DEFAULT_QUOTA)
        real_openstack.clean()


def _create(conn, cloud: RealOpenStack, name: str, group: str):
    return conn.compute.create_server(
        name=name,
        image_id=cloud.image_id,
        flavor_id=cloud.flavor_id,
        networks=[{"uuid": cloud.network_id}],
        metadata={"group": group},
    )


def test_token_comes_from_real_keystone_and_catalog_lists_nova(cloud: RealOpenStack) -> None:
    conn = cloud.connect()
    token = conn.session.get_token()
    r = requests.get(
        f"{cloud.keystone_url}/auth/tokens",
        headers={"X-Auth-Token": token, "X-Subject-Token": token},
        timeout=10,
    )
    assert r.status_code == 200
    assert r.json()["token"]["project"]["id"] == cloud.project_id
    assert conn.compute.get_endpoint().rstrip("/") == cloud.compute_url


@pytest.mark.parametrize("headers", [{"X-Auth-Token": "bogus-token"}, {}])
def test_nova_rejects_bogus_or_missing_token(cloud: RealOpenStack, headers: dict) -> None:
    r = requests.get(f"{cloud.compute_url}/servers", headers=headers, timeout=30)
    assert r.status_code == 401


def test_server_lifecycle_with_metadata(cloud: RealOpenStack) -> None:
    conn = cloud.connect()
    a = _create(conn, cloud, "g1-a", "g1")
    b = _create(conn, cloud, "g2-b", "g2")
    a = conn.compute.wait_for_server(a, status="ACTIVE", wait=60, interval=0.3)
    conn.compute.wait_for_server(b, status="ACTIVE", wait=60, interval=0.3)

    assert a.metadata == {"group": "g1"}
    # The fake Neutron gives every server the same fixed address on network "private".
    addresses = a.addresses[cloud.network_name]
    assert [x["addr"] for x in addresses] == ["192.168.1.30"]
    assert addresses[0]["OS-EXT-IPS:type"] == "fixed"

    assert [s.id for s in conn.compute.servers(metadata={"group": "g1"})] == [a.id]
    assert {s.name for s in conn.compute.servers()} == {"g1-a", "g2-b"}

    conn.compute.delete_server(a)
    conn.compute.wait_for_delete(a, wait=60, interval=0.3)
    assert [s.name for s in conn.compute.servers()] == ["g2-b"]


def test_instances_quota_can_be_lowered(cloud: RealOpenStack) -> None:
    conn = cloud.connect()
    _create(conn, cloud, "q-0", "g1")
    cloud.set_instances_quota(1)
    with pytest.raises(Exception, match="Quota exceeded for instances") as info:
        _create(conn, cloud, "q-1", "g1")
    assert getattr(info.value, "status_code", None) == 403
    assert [s.name for s in conn.compute.servers()] == ["q-0"]


def test_no_keystone_mode() -> None:
    with running_openstack(keystone=False, instances_quota=2) as plain:
        assert plain.keystone_url is None
        conn = plain.connect()
        server = _create(conn, plain, "plain-0", "g1")
        server = conn.compute.wait_for_server(server, wait=60, interval=0.3)
        assert server.addresses[plain.network_name][0]["addr"] == "192.168.1.30"
        _create(conn, plain, "plain-1", "g1")
        with pytest.raises(Exception, match="Quota exceeded"):
            _create(conn, plain, "plain-2", "g1")
        nova = plain.nova
        assert nova is not None and nova.proc is not None
        proc = nova.proc
    assert proc.poll() is not None  # stop() killed it


def test_startup_timeout_kills_processes_and_reports_logs() -> None:
    cloud = RealOpenStack(startup_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="failed to start") as info:
        cloud.start()
    assert time.monotonic() - started < 30
    assert "not ready after" in str(info.value)
    assert cloud.nova is not None and cloud.nova.proc is not None
    assert cloud.nova.proc.poll() is not None  # stop() killed it
    assert cloud._password not in str(info.value)
