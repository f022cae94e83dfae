"""The local provider against real processes on loopback."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from autoscaler.config import Config, PrometheusConfig
from autoscaler.core.model import ReplicaState
from autoscaler.core.spec import GroupConfig, ProviderConfig
from autoscaler.providers import local
from autoscaler.providers.local import LocalOptions, LocalProvider, process_start_time
from tests.provider_conformance import Failure, Hung, ReplicaProviderContract

PY = sys.executable


def wait_until(fn, timeout: float = 20.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        time.sleep(interval)


def marked_pids(group: str) -> list[int]:
    """Live processes started for `group`, found by the provider's environment marker."""
    needle = f"{local.ENV_MARKER}={group}/".encode()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(v.startswith(needle) for v in env.split(b"\0")):
            if process_start_time(int(entry.name)) is not None:
                out.append(int(entry.name))
    return out


@pytest.fixture
def group():
    """A unique group name; every process started for it is killed at the end."""
    name = f"t{secrets.token_hex(3)}"
    try:
        yield name
    finally:
        for pid in marked_pids(name):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def make(run_dir: Path, group: str, **kw) -> LocalProvider:
    opts = dict(
        run_dir=run_dir, slots=2, work_seconds=0.2, stop_timeout_seconds=5.0, host="127.0.0.1"
    )
    opts.update(command=None)
    opts.update(kw)
    return LocalProvider(group, LocalOptions(**opts))


@pytest.fixture
def provider(tmp_path, group):
    p = make(tmp_path, group)
    try:
        yield p
    finally:
        p.delete([r.id for r in p.list()])
        p.close()


def states(p: LocalProvider) -> dict[str, ReplicaState]:
    return {r.id: r.state for r in p.list()}


def all_active(p: LocalProvider, n: int) -> bool:
    s = states(p)
    return len(s) == n and all(v is ReplicaState.ACTIVE for v in s.values())


def record(p: LocalProvider, rid: str) -> dict:
    return json.loads((p.dir / f"{rid}.json").read_text())


def test_create_list_delete(provider):
    res = provider.create(2)
    assert len(res.succeeded) == 2 and not res.failed
    assert len(set(res.succeeded)) == 2
    for rid in res.succeeded:
        assert rid.startswith(provider.group + "-")
        rec = record(provider, rid)  # written before create returned
        assert rec["status"] == "running" and isinstance(rec["pid"], int)
        assert rec["start_time"] == process_start_time(rec["pid"])
    wait_until(lambda: all_active(provider, 2))
    replicas = provider.list()
    assert {r.id for r in replicas} == set(res.succeeded)
    assert len({r.address for r in replicas}) == 2
    for r in replicas:
        assert r.group == provider.group and r.address.startswith("127.0.0.1:")
        body = urllib.request.urlopen(f"http://{r.address}/metrics", timeout=5).read()
        assert b"replica_capacity" in body
    pids = [record(provider, rid)["pid"] for rid in res.succeeded]

    out = provider.delete(res.succeeded)
    assert sorted(out.succeeded) == sorted(res.succeeded) and not out.failed
    assert provider.list() == []
    assert all(process_start_time(pid) is None for pid in pids)
    assert not list(provider.dir.glob("*.json"))


def test_building_until_port_answers(tmp_path, group):
    # the replica sleeps before it listens, so it must be seen BUILDING first
    slow = textwrap.dedent(
        """
        import sys, time
        time.sleep(2)
        from autoscaler.demo.replica import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    p = make(tmp_path, group, command=(PY, "-c", slow, "--port", "{port}", "--slots", "1"))
    try:
        rid = p.create(1).succeeded[0]
        assert states(p) == {rid: ReplicaState.BUILDING}
        wait_until(lambda: all_active(p, 1))
    finally:
        p.delete([r.id for r in p.list()])


def test_dead_process_is_failed_until_deleted(provider):
    rid = provider.create(1).succeeded[0]
    wait_until(lambda: all_active(provider, 1))
    os.kill(record(provider, rid)["pid"], signal.SIGKILL)
    wait_until(lambda: states(provider) == {rid: ReplicaState.FAILED})
    assert provider.delete([rid]).succeeded == [rid]
    assert provider.list() == []


def test_new_instance_adopts_replicas_of_a_dead_autoscaler(tmp_path, group):
    # a real autoscaler process creates replicas, then exits: they must keep running
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from autoscaler.providers.local import LocalOptions, LocalProvider
        p = LocalProvider({group!r}, LocalOptions(Path({str(tmp_path)!r}), 2, 0.2, 5.0,
                          "127.0.0.1", None))
        print(",".join(p.create(2).succeeded))
        """
    )
    out = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ids = set(out.stdout.strip().split(","))
    assert len(ids) == 2

    p = make(tmp_path, group)
    try:
        wait_until(lambda: all_active(p, 2))
        assert set(states(p)) == ids  # same ids, nothing duplicated
        assert len(marked_pids(group)) == 2
        p.create(1)
        wait_until(lambda: all_active(p, 3))
        assert len(marked_pids(group)) == 3
        assert len({r.address for r in p.list()}) == 3
        # yet another instance sees the same three, and can stop the adopted ones
        again = make(tmp_path, group)
        assert set(states(again)) == set(states(p))
        res = again.delete(sorted(ids))
        assert sorted(res.succeeded) == sorted(ids) and not res.failed
        wait_until(lambda: len(marked_pids(group)) == 1)
    finally:
        p.delete([r.id for r in p.list()])
    assert marked_pids(group) == []


def test_create_interrupted_after_spawn_is_adopted_not_orphaned(provider):
    # simulate a crash between spawn and the second state write: record has no pid
    rid = f"{provider.group}-crash1"
    port = local._free_port("127.0.0.1", set())
    command = provider._command(rid, port)
    local._write_atomic(
        provider.dir / f"{rid}.json",
        {
            "id": rid,
            "group": provider.group,
            "host": "127.0.0.1",
            "port": port,
            "command": command,
            "created_at": time.time(),
            "status": "starting",
            "pid": None,
            "start_time": None,
        },
    )
    env = dict(os.environ, **{local.ENV_MARKER: f"{provider.group}/{rid}"})
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        wait_until(lambda: all_active(provider, 1))
        rec = record(provider, rid)
        assert rec["pid"] == proc.pid and rec["status"] == "running"
        assert provider.delete([rid]).succeeded == [rid]
        assert proc.wait(timeout=10) == 0  # stopped with SIGTERM, exited cleanly
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_record_without_process_fails_after_grace(provider, monkeypatch):
    rid = f"{provider.group}-ghost1"
    rec = {
        "id": rid,
        "group": provider.group,
        "host": "127.0.0.1",
        "port": 1,
        "command": ["x"],
        "created_at": time.time(),
        "status": "starting",
        "pid": None,
        "start_time": None,
    }
    local._write_atomic(provider.dir / f"{rid}.json", rec)
    assert states(provider) == {rid: ReplicaState.BUILDING}  # still within the grace
    rec["created_at"] -= local.STARTING_GRACE_SECONDS + 1
    local._write_atomic(provider.dir / f"{rid}.json", rec)
    assert states(provider) == {rid: ReplicaState.FAILED}
    assert provider.delete([rid]).succeeded == [rid]
    assert provider.list() == []


def test_delete_is_idempotent(provider):
    rid = provider.create(1).succeeded[0]
    assert provider.delete([rid]).succeeded == [rid]
    again = provider.delete([rid, f"{provider.group}-neverwas"])
    assert sorted(again.succeeded) == sorted([rid, f"{provider.group}-neverwas"])
    assert not again.failed
    bad = provider.delete(["../etc/passwd"])
    assert bad.succeeded == [] and bad.failed[0][0] == "../etc/passwd"


def test_pid_reuse_is_never_killed(provider):
    # an unrelated process now holds the pid written in a stale state file
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        rid = f"{provider.group}-stale1"
        start = process_start_time(stranger.pid)
        local._write_atomic(
            provider.dir / f"{rid}.json",
            {
                "id": rid,
                "group": provider.group,
                "host": "127.0.0.1",
                "port": 1,
                "command": ["x"],
                "created_at": time.time() - 100,
                "status": "running",
                "pid": stranger.pid,
                "start_time": start - 1,  # the replica started before: not this process
            },
        )
        assert states(provider) == {rid: ReplicaState.FAILED}
        assert provider.delete([rid]).succeeded == [rid]
        assert stranger.poll() is None  # still alive
        assert provider.list() == []
    finally:
        stranger.kill()
        stranger.wait(timeout=10)


def test_delete_escalates_to_sigkill(tmp_path, group):
    stubborn = textwrap.dedent(
        """
        import signal, sys
        from http.server import HTTPServer, BaseHTTPRequestHandler
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        HTTPServer(("127.0.0.1", int(sys.argv[1])), BaseHTTPRequestHandler).serve_forever()
        """
    )
    p = make(tmp_path, group, command=(PY, "-c", stubborn, "{port}"), stop_timeout_seconds=0.5)
    rid = p.create(1).succeeded[0]
    wait_until(lambda: all_active(p, 1))  # any HTTP answer (here 501) means up
    pid = record(p, rid)["pid"]
    res = p.delete([rid])
    assert res.succeeded == [rid] and not res.failed
    assert process_start_time(pid) is None


def test_create_failure_is_reported_and_leaves_nothing(tmp_path, group):
    p = make(tmp_path, group, command=("/nonexistent/replica", "--port", "{port}"))
    res = p.create(1)
    assert res.succeeded == [] and len(res.failed) == 1
    assert "/nonexistent/replica" in res.failed[0][1]
    assert p.list() == []


def test_command_placeholders(tmp_path, group):
    p = make(tmp_path, group, command=("run", "{host}:{port}", "--id={replica_id}", "{group}"))
    assert p._command(f"{group}-a", 1234) == [
        "run",
        "127.0.0.1:1234",
        f"--id={group}-a",
        group,
    ]
    default = make(tmp_path, group, slots=3, work_seconds=0.5)._command("x", 99)
    assert default[:3] == [PY, "-m", "autoscaler.demo.replica"]
    assert default[default.index("--slots") + 1] == "3"


def test_check_options_accepts_valid_and_defaults():
    assert local.check_options({}, "g.options") == []
    good = {
        "run_dir": "/tmp/x",
        "slots": 4,
        "work_seconds": 0.5,
        "stop_timeout_seconds": 2,
        "host": "127.0.0.1",
        "command": ["my-replica", "--port={port}"],
    }
    assert local.check_options(good, "g.options") == []


def test_check_options_names_key_value_and_allowed():
    errors = local.check_options(
        {
            "run_dir": "",
            "slots": 0,
            "work_seconds": -1,
            "stop_timeout_seconds": "soon",
            "host": "",
            "command": ["no-port-here"],
            "colour": "blue",
        },
        "groups[0].provider.options",
    )
    text = "\n".join(errors)
    assert len(errors) == 7, text
    for fragment in (
        "groups[0].provider.options.run_dir: got ''",
        "groups[0].provider.options.slots: got 0, expected an integer >= 1",
        "groups[0].provider.options.work_seconds: got -1, expected a number >= 0",
        "groups[0].provider.options.stop_timeout_seconds: got 'soon'",
        "groups[0].provider.options.host: got ''",
        "groups[0].provider.options.command: got ['no-port-here']",
        "groups[0].provider.options.colour: unknown option",
    ):
        assert fragment in text
    assert local.check_options({"slots": True}, "p") and local.check_options({"command": []}, "p")
    assert local.check_options({"slots": 2.5}, "p") == [
        "p.slots: got 2.5, expected an integer >= 1"
    ]


def _group(options: dict) -> GroupConfig:
    return GroupConfig(
        name="web",
        provider=ProviderConfig(type="local", options=options),
        min=1,
        max=3,
        replica_capacity=4.0,
        policies=(),
    )


def test_build_defaults_and_rejects_bad_options(tmp_path):
    config = Config(prometheus=PrometheusConfig(), groups=())
    p = local.build(_group({"run_dir": str(tmp_path)}), config)
    assert p.kind == "local" and p.group == "web"
    assert p.options.slots == 4 and p.options.work_seconds == 1.0
    assert p.options.stop_timeout_seconds == 5.0 and p.options.host == "127.0.0.1"
    assert p.dir == tmp_path / "web" and p.dir.is_dir()
    with pytest.raises(ValueError, match="slots: got -2"):
        local.build(_group({"run_dir": str(tmp_path), "slots": -2}), config)


# --------------------------------------------------------------------------- conformance

HANGING_REPLICA = textwrap.dedent(
    """
    import socket, sys, time
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(16)
    held = []
    while True:  # accept, never answer: a hung replica API
        held.append(s.accept()[0])
    """
)
STUBBORN_REPLICA = textwrap.dedent(
    """
    import signal, sys
    from http.server import HTTPServer, BaseHTTPRequestHandler
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    HTTPServer(("127.0.0.1", int(sys.argv[1])), BaseHTTPRequestHandler).serve_forever()
    """
)
SECRET_ARG = "--token=Sup3r-S3cret-T0ken"


class TestLocalConformance(ReplicaProviderContract):
    """The shared provider contract (tests/provider_conformance.py) on local processes."""

    settle_seconds = 20.0

    @pytest.fixture
    def contract_backend(self, tmp_path):
        self.groups: list[str] = []
        yield tmp_path
        for group in self.groups:  # whatever a test or a "crash" left running
            for pid in marked_pids(group):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass

    def new_group(self) -> str:
        group = super().new_group()
        self.groups.append(group)
        return group

    def make_provider(self, group: str) -> LocalProvider:
        return make(self.backend, group)

    def custom(self, group: str, **options) -> LocalProvider:
        """A provider with other options, cleaned up like `provider()`."""
        return self.kept(make(self.backend, group, **options))

    def secrets(self) -> list[str]:
        return [SECRET_ARG, SECRET_ARG.split("=", 1)[1]]

    def add_foreign_replicas(self, group: str) -> None:
        # another group's replica in the same run_dir, and files in ours that are no records
        other = self.provider(f"{group}x")
        assert len(other.create(1).succeeded) == 1
        gdir = self.backend / group
        gdir.mkdir(parents=True, exist_ok=True)
        (gdir / "notes.json").write_text(json.dumps({"id": "someone-else", "port": 1}))
        (gdir / "torn.json").write_text('{"id": "torn"')
        (gdir / "README.txt").write_text("not a replica")

    def crash_between_create_and_list(self, group: str) -> None:
        # the harshest point: the record is written and the process spawned, the pid not
        # yet recorded (the autoscaler died between steps 2 and 3 of create)
        p = self.make_provider(group)
        rid = f"{group}-crash1"
        port = local._free_port("127.0.0.1", set())
        command = p._command(rid, port)
        record = {
            "id": rid,
            "group": group,
            "host": "127.0.0.1",
            "port": port,
            "command": command,
            "created_at": time.time(),
            "status": "starting",
            "pid": None,
            "start_time": None,
        }
        local._write_atomic(p.dir / f"{rid}.json", record)
        env = dict(os.environ, **{local.ENV_MARKER: f"{group}/{rid}"})
        child = subprocess.Popen(command, env=env, start_new_session=True)
        self.on_cleanup(lambda: (child.poll() is None and child.kill(), child.wait(10)))

    def kill_externally(self, group: str, replica_id: str) -> None:
        # an operator killed the process and removed its state file
        path = self.backend / group / f"{replica_id}.json"
        pid = json.loads(path.read_text())["pid"]
        os.killpg(pid, signal.SIGKILL)
        path.unlink()

    def hung_calls(self, group: str) -> list[Hung]:
        hung = self.custom(group, command=(PY, "-c", HANGING_REPLICA, "{port}"))
        assert len(hung.create(2).succeeded) == 2
        wait_until(lambda: len(marked_pids(group)) == 2)
        stubborn_command = (PY, "-c", STUBBORN_REPLICA, "{port}")
        stubborn = self.custom(self.new_group(), command=stubborn_command, stop_timeout_seconds=0.5)
        (sid,) = stubborn.create(1).succeeded
        wait_until(lambda: all_active(stubborn, 1))
        probe = 2 * local.READY_TIMEOUT_SECONDS  # the readiness probes run in parallel
        return [
            Hung("list with replicas that accept and never answer", hung.list, probe),
            Hung("delete of a replica ignoring SIGTERM", lambda: stubborn.delete([sid]), 0.5 + 1),
        ]

    def failing_calls(self, group: str) -> list[Failure]:
        broken = self.custom(group, command=("/nonexistent/replica", "--port={port}", SECRET_ARG))
        return [
            Failure("create with a missing command", lambda: broken.create(1), "/nonexistent"),
            Failure("delete of a path", lambda: broken.delete(["../etc"]), "not a local replica"),
        ]
