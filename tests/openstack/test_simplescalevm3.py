"""SimpleScaleVM 3.0 variables alone drive `autoscaler once` against the OpenStack emulator
and a real Prometheus: the 3.0 flavor is the one used, the fleet tagged with the 3.0
metadata value is adopted (no second fleet), and a decided action that fails makes
`once` exit 1 with the provider's message (it exited 0 before issue 10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openstack
import pytest

from tests.harness.prometheus import PrometheusServer
from tests.openstack.emulator import OpenStackEmulator

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def emu() -> Iterator[OpenStackEmulator]:
    e = OpenStackEmulator(build_seconds=0.1, delete_seconds=0.1).start()
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    with PrometheusServer(autoscaler="127.0.0.1:1") as prom:  # no replicas: empty answers
        yield prom


def once(emu: OpenStackEmulator, prom: PrometheusServer, tmp: Path, **env: str):
    variables = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        **emu.os_env(),
        "AUTOSCALER_PROMETHEUS_URL": prom.url,
        "AUTOSCALER_STATE_DIR": str(tmp / "state"),
        "REPLICA_CAPACITY": "1",
        "REPLICA_MIN_AVAILABLE_RESOURCES": "2",  # min 2 servers
        "OPENSTACK_SCALED_IMAGE": "cirros",
        "OPENSTACK_SCALED_NETWORK": "private",
        **env,
    }
    r = subprocess.run(
        [sys.executable, "-m", "autoscaler", "once"],
        capture_output=True,
        text=True,
        timeout=120,
        env=variables,
        cwd=REPO,
    )
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    return r, lines


def test_v3_variables_adopt_the_tagged_fleet_and_use_the_v3_flavor(emu, prometheus, tmp_path):
    # a server of the existing fleet, tagged as SimpleScaleVM 3.0 tags it
    conn = openstack.connect(
        auth=emu.provider_options()["auth"], region_name="RegionOne", load_yaml_config=False
    )
    try:
        image = conn.image.find_image("cirros").id
        flavor = conn.compute.find_flavor("m1.tiny").id
        network = conn.network.find_network("private").id
        conn.compute.create_server(
            name="gateway-host",
            image_id=image,
            flavor_id=flavor,
            networks=[{"uuid": network}],
            metadata={"group": "gateway"},
        )
    finally:
        conn.close()
    r, (line,) = once(
        emu,
        prometheus,
        tmp_path,
        OPENSTACK_SCALED_FLAVOR="m1.small",
        OPENSTACK_METADATA_SCALED_VALUE="gateway",
        OPENSTACK_SCALED_NAME="gateway-host",
    )
    assert r.returncode == 0, r.stderr
    d = line["decision"]
    assert (d["current"], d["create"]) == (1, 1), d  # the tagged server counts: one more
    assert line["errors"] == []
    servers = emu.live_servers()
    assert len(servers) == 2 and all(s.metadata["group"] == "gateway" for s in servers)
    (new,) = [s for s in servers if s.name != "gateway-host"]
    assert new.flavor["name"] == "m1.small"
    assert new.name.startswith("gateway-host-simplescalevm-")


def test_once_exits_1_when_a_decided_create_fails(emu, prometheus, tmp_path):
    r, (line,) = once(emu, prometheus, tmp_path, OPENSTACK_SCALED_FLAVOR="no-such-flavor")
    assert line["decision"]["create"] == 2
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "no-such-flavor" in r.stderr and "error: group simplescalevm: create" in r.stderr
    assert any("no-such-flavor" in e for e in line["errors"])
    assert emu.password not in r.stderr + r.stdout
    assert emu.live_servers() == []
