"""The provider contract against the emulator (Keystone + Nova + Neutron + Glance subset)."""

from __future__ import annotations

import pytest

from tests.openstack.contract import ContractCloud, OpenStackConformance, ProviderContract
from tests.openstack.emulator import Fault, OpenStackEmulator


@pytest.fixture
def emulator():
    emu = OpenStackEmulator(build_seconds=0.2, delete_seconds=0.2).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def cloud(emulator):
    def set_quota(n: int) -> None:
        emulator.max_instances = n

    return ContractCloud(
        name="emulator",
        options=emulator.provider_options(),
        secrets=[emulator.password, emulator.app_credential_secret],
        set_instance_quota=set_quota,
        bad_auth_options={"auth": {**emulator.password_auth(), "password": "Wr0ng-Passw0rd"}},
        settle_seconds=10,
        lose_next_create_answer=lambda: emulator.add_fault(
            Fault("POST", r"/servers$", status=500, after=True)
        ),
    )


class TestEmulatorContract(ProviderContract):
    pass


class TestEmulatorConformance(OpenStackConformance):
    """The shared provider contract (tests/provider_conformance.py) on the emulator."""

    settle_seconds = 10.0

    @pytest.fixture
    def contract_backend(self, cloud):
        return cloud
