"""The provider contract against real Nova behind real Keystone (tests/openstack/real_nova.py).

Skipped when nova/keystone are not installed (requirements-openstack-test.txt). Neutron
and Glance are the nova wheel's fixtures here, not in Keystone's catalog: the network and
image are given by id, and floating IPs are tested on the emulator only.
"""

from __future__ import annotations

import pytest

from tests.openstack.contract import ContractCloud, OpenStackConformance, ProviderContract
from tests.openstack.real_nova import DEFAULT_QUOTA, RealOpenStack


@pytest.fixture
def cloud(real_openstack: RealOpenStack):  # noqa: F811
    real_openstack.clean()
    auth = {k: v for k, v in real_openstack.auth.items() if k != "region_name"}
    quota_changed = []

    def set_quota(n: int) -> None:
        quota_changed.append(n)
        real_openstack.set_instances_quota(n)

    yield ContractCloud(
        name="real-nova",
        options={
            "auth": auth,
            "region_name": real_openstack.auth["region_name"],
            "flavor": "m1.tiny",  # by name: looked up through Nova's flavors API
            "image": real_openstack.image_id,
            "network": real_openstack.network_id,
            "request_timeout_seconds": 30,
        },
        secrets=[auth["password"]],
        set_instance_quota=set_quota,
        bad_auth_options={"auth": {**auth, "password": "Wr0ng-Passw0rd"}},
        settle_seconds=60,
    )
    if quota_changed:
        real_openstack.set_instances_quota(DEFAULT_QUOTA)
    real_openstack.clean()


class TestRealNovaContract(ProviderContract):
    pass


class TestRealNovaConformance(OpenStackConformance):
    """The shared provider contract (tests/provider_conformance.py) on real Nova behind
    real Keystone. Real Nova cannot be made to lose an answer: that test is skipped."""

    settle_seconds = 60.0

    @pytest.fixture
    def contract_backend(self, cloud):
        return cloud
