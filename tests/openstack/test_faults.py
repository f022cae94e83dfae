"""Faults on demand (emulator): every one ends with the right servers, none orphaned,
and the failure visible in the result the controller turns into metrics."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoscaler.core.model import ReplicaState
from autoscaler.providers.base import ProviderError
from autoscaler.providers.openstack import provider as openstack
from tests.openstack.contract import active, wait_for
from tests.openstack.emulator import Fault, OpenStackEmulator

ROOT = Path(__file__).resolve().parents[2]
CREATE = r"/servers$"
DELETE = r"/servers/[0-9a-f-]+$"


@pytest.fixture
def emu():
    e = OpenStackEmulator(build_seconds=0.2, delete_seconds=0.2).start()
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture
def make(emu):
    made: list[openstack.OpenStackProvider] = []

    def factory(group: str = "web", **overrides) -> openstack.OpenStackProvider:
        options = emu.provider_options(**overrides)
        assert openstack.check_options(options, "p") == []
        p = openstack.OpenStackProvider(openstack.Settings.from_options(group, options))
        made.append(p)
        return p

    yield factory
    for p in made:
        p.close()


def posts(emu: OpenStackEmulator) -> int:
    return sum(1 for m, path in emu.requests if m == "POST" and path.endswith("/servers"))


# ------------------------------------------------------------------------- create
def test_create_500_before_is_retried_once(emu, make):
    emu.add_fault(Fault("POST", CREATE, status=500))
    p = make()
    res = p.create(1)
    assert len(res.succeeded) == 1 and res.failed == []
    assert len(emu.live_servers()) == 1
    assert posts(emu) == 2


def test_create_500_after_the_server_was_made_is_adopted_not_doubled(emu, make):
    emu.add_fault(Fault("POST", CREATE, status=500, after=True))
    p = make()
    res = p.create(1)
    assert len(res.succeeded) == 1 and res.failed == []
    (server,) = emu.live_servers()
    assert res.succeeded == [server.id]
    assert posts(emu) == 1  # found by its create token, never posted again


def test_create_409_after_is_adopted(emu, make):
    emu.add_fault(Fault("POST", CREATE, status=409, after=True))
    res = make().create(2)
    assert len(res.succeeded) == 2 and res.failed == []
    assert len(emu.live_servers()) == 2


def test_create_timeout_is_not_reposted_and_the_server_is_counted_later(emu, make):
    # Nova answers after the client gave up; the server exists all the same.
    emu.add_fault(Fault("POST", CREATE, status=None, delay=2.5))
    p = make(request_timeout_seconds=1)
    res = p.create(1)
    assert res.succeeded == [] and len(res.failed) == 1
    assert "timed out" in res.failed[0][1]
    assert posts(emu) == 1  # a blind resend could have made two
    reps = wait_for(p.list, 10, "the slow server to appear in the list")
    assert len(reps) == 1 and len(emu.live_servers()) == 1


def test_create_persistent_500_fails_after_bounded_retries(emu, make):
    emu.add_fault(Fault("POST", CREATE, status=500, count=None))
    res = make().create(2)
    assert res.succeeded == [] and len(res.failed) == 2
    assert all("500" in msg or "Injected" in msg for _, msg in res.failed)
    assert posts(emu) == 6  # three attempts each, then reported
    assert emu.live_servers() == []


def test_create_400_is_not_retried(emu, make):
    res = make(key_name="no-such-key").create(1)
    assert res.succeeded == [] and len(res.failed) == 1
    assert "key_name" in res.failed[0][1]
    assert posts(emu) == 1


def test_quota_413_stops_the_cycle(emu, make):
    emu.add_fault(
        Fault("POST", CREATE, status=413, message="Quota exceeded for cores: Requested 2")
    )
    res = make(max_concurrency=1).create(3)
    assert res.quota_exceeded == "cores"
    assert res.succeeded == [] and len(res.failed) == 1
    assert posts(emu) == 1


def test_quota_403_from_nova_counts(emu, make):
    emu.max_instances = 3
    p = make(max_concurrency=2)
    res = p.create(5)
    assert res.quota_exceeded == "instances"
    assert len(res.succeeded) == 3 and len(emu.live_servers()) == 3
    assert len(res.failed) >= 1  # once per create that hit it, never for those not tried


# ------------------------------------------------------------------------- delete
def test_delete_500_and_timeout_are_retried(emu, make):
    p = make(request_timeout_seconds=1)
    ids = p.create(2).succeeded
    emu.add_fault(Fault("DELETE", DELETE, status=500))
    emu.add_fault(Fault("DELETE", DELETE, status=None, delay=2))
    res = p.delete(ids)
    assert sorted(res.succeeded) == sorted(ids) and res.failed == []
    wait_for(lambda: emu.live_servers() == [], 10, "servers deleted")


def test_delete_409_persistent_is_reported_and_the_server_kept(emu, make):
    p = make()
    ids = p.create(1).succeeded
    emu.add_fault(Fault("DELETE", DELETE, status=409, count=3, message="locked"))
    res = p.delete(ids)
    assert res.succeeded == [] and res.failed[0][0] == ids[0]
    assert "409" in res.failed[0][1] or "locked" in res.failed[0][1]
    assert [r.id for r in p.list()] == ids  # still there, still ours: the next cycle retries
    assert p.delete(ids).succeeded == ids
    wait_for(lambda: p.list() == [], 10, "deleted on the next try")


def test_list_failure_raises_provider_error_bounded_in_time(emu, make):
    p = make(request_timeout_seconds=1)
    p.list()
    emu.add_fault(Fault("GET", r"/servers/detail$", status=None, delay=3))
    start = time.monotonic()
    with pytest.raises(ProviderError):
        p.list()
    assert time.monotonic() - start < 3  # bounded by request_timeout, not by the server
    emu.add_fault(Fault("GET", r"/servers/detail$", status=503))
    with pytest.raises(ProviderError, match="503|Injected"):
        p.list()


# ----------------------------------------------------------------- server states
def test_server_stuck_in_build_becomes_failed_and_is_replaced(emu, make):
    emu.stuck_in_build = 1
    # Wide enough that a slow create + list on a loaded machine still sees BUILD first.
    p = make(build_timeout_seconds=4)
    (stuck,) = p.create(1).succeeded
    assert p.list()[0].state is ReplicaState.BUILDING
    wait_for(lambda: p.list()[0].state is ReplicaState.FAILED, 20, "stuck server failed")
    # What the controller does with a failed replica: delete it, create a new one.
    assert p.delete([stuck]).succeeded == [stuck]
    (new,) = p.create(1).succeeded
    active(p, 1, 10)
    wait_for(lambda: [s.id for s in emu.live_servers()] == [new], 10, "only the new one")


def test_server_going_to_error_is_failed(emu, make):
    emu.error_on_build = 1
    p = make()
    (sid,) = p.create(1).succeeded
    wait_for(lambda: p.list()[0].state is ReplicaState.FAILED, 10, "server in ERROR")
    assert p.list()[0].metadata["status"] == "ERROR"
    p.delete([sid])
    wait_for(lambda: emu.live_servers() == [], 10, "deleted")


def test_shutoff_is_failed_only_after_the_grace(emu, make):
    p = make(shutoff_grace_seconds=1.5)
    (sid,) = p.create(1).succeeded
    active(p, 1, 10)
    emu.set_server_status(sid, "SHUTOFF")
    assert p.list()[0].state is ReplicaState.BUILDING  # may be a reboot: not yet failed
    wait_for(lambda: p.list()[0].state is ReplicaState.FAILED, 10, "shut off too long")


def test_deleting_servers_are_not_counted(emu):
    emu.delete_seconds = 30
    options = emu.provider_options()
    p = openstack.OpenStackProvider(openstack.Settings.from_options("web", options))
    try:
        ids = p.create(2).succeeded
        p.delete(ids[:1])
        states = {r.id: r.state for r in p.list()}
        assert states[ids[0]] is ReplicaState.DELETING
        assert states[ids[1]] in (ReplicaState.BUILDING, ReplicaState.ACTIVE)
    finally:
        p.close()


# ------------------------------------------------------- killed between create/list
KILLED_CREATE = """
import json, os, sys
from autoscaler.providers.openstack import provider as openstack
options = json.loads(os.environ["OPTIONS"])
p = openstack.OpenStackProvider(openstack.Settings.from_options("web", options))
print("creating", flush=True)
p.create(1)
"""


def test_autoscaler_killed_during_create_leaves_no_orphan(emu, make):
    emu.add_fault(Fault("POST", CREATE, status=None, delay=1.5))
    env = {**os.environ, "OPTIONS": json.dumps(emu.provider_options()), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_CREATE], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "creating"
        wait_for(lambda: posts(emu) == 1, 20, "the POST in flight")
        proc.send_signal(signal.SIGKILL)  # dies before it sees the answer or lists
    finally:
        proc.kill()
        proc.wait(timeout=10)
    # A new autoscaler finds the server through the group's metadata: counted, not lost.
    p = make()
    reps = wait_for(p.list, 10, "the server made by the killed autoscaler")
    assert len(reps) == 1 and len(emu.live_servers()) == 1
    assert p.delete([reps[0].id]).succeeded == [reps[0].id]
    wait_for(lambda: emu.live_servers() == [], 10, "cleaned up")


# ---------------------------------------------------------------------- secrets
def test_secrets_never_in_logs_results_or_errors(emu, make, caplog):
    caplog.set_level(logging.DEBUG)
    emu.add_fault(Fault("POST", CREATE, status=500, count=None, message=emu.password))
    p = make()
    res = p.create(1)
    texts = [msg for _, msg in res.failed]
    bad = openstack.OpenStackProvider(
        openstack.Settings.from_options(
            "web", emu.provider_options(auth={**emu.password_auth(), "password": "Wr0ngPass"})
        ),
        env={},
    )
    with pytest.raises(ProviderError) as info:
        bad.list()
    bad.close()
    texts += [str(info.value), caplog.text]
    tokens = list(emu.tokens)
    assert tokens  # authentication happened, so there is something to leak
    for text in texts:
        for secret in [emu.password, "Wr0ngPass", *tokens]:
            assert secret not in text
    assert "***" in texts[0]  # the password echoed by the API was redacted


def test_application_credentials(emu, make):
    p = make(
        auth={
            "auth_url": emu.auth_url,
            "application_credential_id": emu.app_credential_id,
            "application_credential_secret": emu.app_credential_secret,
        }
    )
    assert len(p.create(1).succeeded) == 1
    assert len(p.list()) == 1
    assert any('"application_credential"' in b for b in emu.request_bodies)


def test_os_environment_variables(emu, monkeypatch):
    """No `auth:`: openstacksdk reads the OS_* variables, as SimpleScaleVM users set them."""
    for k in list(os.environ):
        if k.startswith("OS_"):
            monkeypatch.delenv(k)
    for k, v in emu.os_env().items():
        monkeypatch.setenv(k, v)
    options = {k: v for k, v in emu.provider_options().items() if k != "auth"}
    p = openstack.OpenStackProvider(openstack.Settings.from_options("web", options))
    try:
        assert len(p.create(1).succeeded) == 1
        assert len(p.list()) == 1
    finally:
        p.close()
