"""Real Nova (+ real Keystone) for tests, each in its own subprocess on loopback.

Usage (the test process never imports nova, so no eventlet patching leaks into it):

    from tests.openstack.real_nova import RealOpenStack, real_openstack  # noqa: F401

    def test_x(real_openstack: RealOpenStack) -> None:   # session-scoped fixture
        conn = real_openstack.connect()                    # = openstack.connect(**auth, ...)
        server = conn.compute.create_server(
            name="g1-0", image_id=real_openstack.image_id, flavor_id=real_openstack.flavor_id,
            networks=[{"uuid": real_openstack.network_id}],  # required at microversion >= 2.37
            metadata={"group": "g1"},
        )

    # or by hand:  with running_openstack(keystone=False, instances_quota=5) as cloud: ...

Import the `real_openstack` fixture in ONE place (ideally tests/openstack/conftest.py): each
test module that imports it gets its own session-scoped cloud (~10 s and ~360 MB each).

`RealOpenStack` attributes once started:
- `auth`: kwargs for `openstack.connect(**auth)` (also a clouds.yaml `auth` + `region_name`
  entry, see `clouds_yaml_entry()`): with Keystone `auth_url, username, password,
  project_name, user_domain_name, project_domain_name, region_name`; without Keystone
  `auth_type="none", compute_endpoint_override, region_name`.
- `compute_url` (".../v2.1", also in Keystone's catalog), `keystone_url` (None without it),
  `project_id`, `image_id`, `flavor_id` ("1", m1.tiny), `network_id`, `network_name`
  ("private"), `log_paths`.
- `set_instances_quota(n)`: the project's instances quota, through Nova's API (default 20).
- `clean()`: delete every server, so tests sharing the session start from nothing.

What Nova does here (fixtures of the nova wheel, `fake.MediumFakeDriver`): create is
synchronous (casts run as calls), so a server is ACTIVE, with an address, by the time the
create returns or on the first poll. Every server gets the same fixed address 192.168.1.30
on network "private" (the fake Neutron hands out one template port). Create needs
`networks` ("auto", "none" or a list). Over quota is 403 at create time; a scheduling
failure is 500 at create time (no server in ERROR).

Tests skip when nova is not installed (`pip install -r requirements-openstack-test.txt`).
Logs: `<workdir>/nova.log`, `<workdir>/keystone/keystone-process.log`; kept after stop() when
REAL_OPENSTACK_KEEP_LOGS=1. Start-up is bounded (`startup_timeout`); stop() kills both
process groups and is safe to call twice.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.openstack.real_keystone import (
    ADMIN_PROJECT,
    ADMIN_USER,
    DOMAIN,
    REGION,
    KeystoneServer,
    ManagedProcess,
    free_port,
    wait_until,
)

NOVA_SERVER = Path(__file__).resolve().with_name("nova_server.py")
PASSWORD_ENV = "NOVA_HARNESS_KEYSTONE_PASSWORD"  # read by nova_server.py
DEFAULT_QUOTA = 20


def nova_installed() -> bool:
    """True when the nova wheel is importable (checked without importing it)."""
    return all(importlib.util.find_spec(m) is not None for m in ("nova", "keystone"))


SKIP_REASON = "nova/keystone not installed: pip install -r requirements-openstack-test.txt"


class RealOpenStack:
    """Real Nova, optionally behind a real Keystone; see the module docstring."""

    def __init__(
        self,
        *,
        keystone: bool = True,
        instances_quota: int = DEFAULT_QUOTA,
        startup_timeout: float = 90.0,
    ) -> None:
        self.use_keystone = keystone
        self.instances_quota = instances_quota
        self.startup_timeout = startup_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="real-openstack-"))
        self._password = secrets.token_urlsafe(16)
        self.nova_port = free_port()
        self.compute_url = f"http://127.0.0.1:{self.nova_port}/v2.1"
        self.keystone: KeystoneServer | None = None
        self.nova: ManagedProcess | None = None
        self.keystone_url: str | None = None
        self.auth: dict[str, Any] = {}
        self.project_id = ""
        self.image_id = ""
        self.flavor_id = ""
        self.network_id = ""
        self.network_name = ""
        self.startup_seconds = 0.0

    @property
    def log_paths(self) -> list[Path]:
        paths = [self.nova.log_path] if self.nova else []
        return paths + ([self.keystone.process.log_path] if self.keystone else [])

    def start(self) -> None:
        started = time.monotonic()
        try:
            self._start()
        except BaseException as e:
            tails = "\n".join(
                f"--- {p}:\n{_tail(p)}" for p in self.log_paths if p.exists()
            )  # the logs are about to be removed: put their ends in the message
            self.stop()
            raise RuntimeError(f"real OpenStack failed to start: {e}\n{tails}") from e
        self.startup_seconds = time.monotonic() - started

    def _start(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        env = {**os.environ, "PYTHONUNBUFFERED": "1", PASSWORD_ENV: self._password}
        argv = [sys.executable, str(NOVA_SERVER), "--port", str(self.nova_port)]
        argv += ["--ready-file", str(self.workdir / "nova-ready.json")]
        argv += ["--instances-quota", str(self.instances_quota)]
        if self.use_keystone:
            self.keystone = KeystoneServer(password=self._password, workdir=self._ks_dir())
            self.keystone_url = self.keystone.url
            argv += ["--keystone-url", self.keystone.url]
            self.keystone.start()  # both set themselves up concurrently
        self.nova = ManagedProcess("nova", argv, self.workdir / "nova.log", env)
        self.nova.start()

        if self.keystone is not None:
            self.keystone.wait_ready(deadline - time.monotonic(), others=[self.nova])
            self.keystone.register_endpoint("compute", "nova", self.compute_url)
            _, self.project_id = self.keystone.admin_token()
            self.auth = {
                "auth_url": self.keystone.url,
                "username": ADMIN_USER,
                "password": self._password,
                "project_name": ADMIN_PROJECT,
                "user_domain_name": DOMAIN,
                "project_domain_name": DOMAIN,
                "region_name": REGION,
            }
        ready = self.workdir / "nova-ready.json"
        procs = [self.nova] + ([self.keystone.process] if self.keystone else [])
        wait_until(ready.exists, procs, deadline - time.monotonic(), "nova")
        info = json.loads(ready.read_text())
        self.image_id = info["image_id"]
        self.flavor_id = info["flavor_id"]
        self.network_id = info["network_id"]
        self.network_name = info["network_name"]
        if self.keystone is None:
            self.project_id = info["project_id"]
            self.auth = {
                "auth_type": "none",
                "compute_endpoint_override": self.compute_url,
                "region_name": REGION,
            }

    def _ks_dir(self) -> Path:
        path = self.workdir / "keystone"
        path.mkdir()
        return path

    def connect(self, **overrides: Any) -> Any:
        """An unmodified openstacksdk Connection, ignoring the user's clouds.yaml and OS_*."""
        import openstack

        return openstack.connect(
            load_yaml_config=False, load_envvars=False, **{**self.auth, **overrides}
        )

    def clouds_yaml_entry(self) -> dict[str, Any]:
        """One `clouds:` entry for a clouds.yaml."""
        entry = {k: v for k, v in self.auth.items() if k != "region_name"}
        if self.keystone is None:
            return {
                "auth_type": "none",
                "region_name": REGION,
                "compute_endpoint_override": self.compute_url,
            }
        return {"auth": entry, "region_name": REGION, "identity_api_version": 3}

    def set_instances_quota(self, instances: int) -> None:
        """Set the project's instances quota (and cores/ram high enough not to bind first)."""
        conn = self.connect()
        try:
            body = {"quota_set": {"instances": instances, "cores": 4 * max(instances, 1)}}
            r = conn.compute.put(f"/os-quota-sets/{self.project_id}", json=body, timeout=30)
            if r.status_code != 200:
                raise RuntimeError(f"quota update failed: HTTP {r.status_code}")
        finally:
            conn.close()

    def clean(self, timeout: float = 60.0) -> None:
        """Delete every server and wait until they are gone."""
        conn = self.connect()
        try:
            for server in conn.compute.servers(all_projects=True):
                conn.compute.delete_server(server, ignore_missing=True)
            deadline = time.monotonic() + timeout
            while list(conn.compute.servers(all_projects=True)):
                if time.monotonic() > deadline:
                    raise TimeoutError("servers still present after clean()")
                time.sleep(0.2)
        finally:
            conn.close()

    def stop(self) -> None:
        if self.nova is not None:
            self.nova.stop()
        if self.keystone is not None:
            self.keystone.stop()
        if not os.environ.get("REAL_OPENSTACK_KEEP_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RealOpenStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def running_openstack(**kwargs: Any) -> Iterator[RealOpenStack]:
    """Start a RealOpenStack (kwargs as for the class) and always stop it."""
    cloud = RealOpenStack(**kwargs)
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture(scope="session")
def real_openstack() -> Iterator[RealOpenStack]:
    """Session-wide real Nova behind real Keystone; skips when nova is not installed."""
    if not nova_installed():
        pytest.skip(SKIP_REASON)
    with running_openstack() as cloud:
        yield cloud
