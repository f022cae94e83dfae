"""A real Keystone (identity v3, fernet tokens, sqlite) on a free loopback port, in a subprocess.

Parent side (used by `real_nova.RealOpenStack`, usable alone):

    ks = KeystoneServer(password="...", port=free_port())
    ks.start()                      # returns at once; the process sets itself up
    ks.wait_ready(timeout=60)       # db_sync, fernet/credential keys, bootstrap, then serving
    ks.register_endpoint("compute", "nova", "http://127.0.0.1:PORT/v2.1")
    ks.stop()                       # kills the process group, removes the temp dir

Child side (`python tests/openstack/real_keystone.py --dir D --port P`): runs the four
`keystone-manage` steps in forked children of one process (keystone is imported once, which
saves about 10 s against four separate commands), then serves
`keystone.server.wsgi.initialize_public_application()` with wsgiref. The admin password comes
from the environment (`OS_BOOTSTRAP_PASSWORD`), never from argv.

Also holds the small process helpers shared with the Nova harness (`ManagedProcess`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

REGION = "RegionOne"
ADMIN_USER = "admin"
ADMIN_PROJECT = "admin"
DOMAIN = "Default"
HTTP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ManagedProcess:
    """A child in its own process group, output to a log file, killed as a group."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # its own process group: stop() kills forked children too
            )

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 3.0) -> None:
        proc = self.proc
        if proc is None or self._stopped:
            return
        self._stopped = True
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # The group may outlive its leader (forked keystone-manage steps): make sure it is gone.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_until(
    ready: Callable[[], bool], procs: list[ManagedProcess], timeout: float, what: str
) -> None:
    """Poll `ready` until true; fail early, with the log tails, when a process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            code = p.exited()
            if code is not None:
                raise RuntimeError(
                    f"{p.name} exited with {code} while waiting for {what}; "
                    f"log {p.log_path}:\n{p.tail()}"
                )
        if ready():
            return
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.name} ({p.log_path}):\n{p.tail()}" for p in procs)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s\n{tails}")


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


class KeystoneServer:
    """Parent-side handle on the Keystone subprocess."""

    def __init__(self, *, password: str, port: int | None = None, workdir: Path | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v3"
        self._password = password
        self._own_dir = workdir is None
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="keystone-"))
        self.process = ManagedProcess(
            "keystone",
            [sys.executable, str(Path(__file__).resolve()), "--dir", str(self.dir)]
            + ["--port", str(self.port)],
            self.dir / "keystone-process.log",
            {**os.environ, "OS_BOOTSTRAP_PASSWORD": password, "PYTHONUNBUFFERED": "1"},
        )

    def start(self) -> None:
        self.process.start()

    def wait_ready(self, timeout: float = 60.0, others: list[ManagedProcess] | None = None) -> None:
        wait_until(
            lambda: (self.dir / "ready").exists() and http_ok(self.url),
            [self.process, *(others or [])],
            timeout,
            "keystone",
        )

    def admin_token(self) -> tuple[str, str]:
        """A project-scoped admin token and the admin project's id."""
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": ADMIN_USER,
                            "domain": {"name": DOMAIN},
                            "password": self._password,
                        }
                    },
                },
                "scope": {"project": {"name": ADMIN_PROJECT, "domain": {"name": DOMAIN}}},
            }
        }
        r = requests.post(f"{self.url}/auth/tokens", json=body, timeout=HTTP_TIMEOUT)
        r.raise_for_status()
        return r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]

    def register_endpoint(self, service_type: str, name: str, url: str) -> None:
        """Add a service and its public + internal endpoints to the catalog."""
        token, _ = self.admin_token()
        h = {"X-Auth-Token": token}
        r = requests.post(
            f"{self.url}/services",
            json={"service": {"type": service_type, "name": name}},
            headers=h,
            timeout=HTTP_TIMEOUT,
        )
        r.raise_for_status()
        service_id = r.json()["service"]["id"]
        for interface in ("public", "internal"):
            endpoint = {
                "service_id": service_id,
                "interface": interface,
                "region_id": REGION,
                "url": url,
            }
            r = requests.post(
                f"{self.url}/endpoints",
                json={"endpoint": endpoint},
                headers=h,
                timeout=HTTP_TIMEOUT,
            )
            r.raise_for_status()

    def stop(self) -> None:
        self.process.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


# ----------------------------------------------------------------------------- child side


def _write_conf(workdir: Path) -> Path:
    conf = workdir / "keystone.conf"
    conf.write_text(
        "[DEFAULT]\n"
        f"log_file = {workdir / 'keystone.log'}\n"
        "[database]\n"
        f"connection = sqlite:///{workdir / 'keystone.db'}\n"
        "[token]\nprovider = fernet\n"
        f"[fernet_tokens]\nkey_repository = {workdir / 'fernet-keys'}\n"
        f"[fernet_receipts]\nkey_repository = {workdir / 'fernet-keys'}\n"
        f"[credential]\nkey_repository = {workdir / 'credential-keys'}\n"
    )
    return conf


def _manage(conf: Path, args: list[str]) -> None:
    """One keystone-manage step in a forked child (fresh global config, keystone imported)."""
    from keystone.cmd import cli

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            cli.main(argv=["keystone-manage", "--config-file", str(conf), *args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"keystone-manage {args[0]} failed ({status})")


def _serve(workdir: Path, port: int) -> None:
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    conf = _write_conf(workdir)
    url = f"http://127.0.0.1:{port}/v3"
    owner = ["--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())]
    started = time.monotonic()
    _manage(conf, ["db_sync"])
    _manage(conf, ["fernet_setup", *owner])
    _manage(conf, ["credential_setup", *owner])
    bootstrap = ["bootstrap", "--bootstrap-username", ADMIN_USER]
    bootstrap += ["--bootstrap-project-name", ADMIN_PROJECT, "--bootstrap-role-name", "admin"]
    bootstrap += ["--bootstrap-region-id", REGION, "--bootstrap-public-url", url]
    bootstrap += ["--bootstrap-internal-url", url]
    _manage(conf, bootstrap)  # password from OS_BOOTSTRAP_PASSWORD
    print(f"keystone set up in {time.monotonic() - started:.1f}s", flush=True)

    os.environ["OS_KEYSTONE_CONFIG_FILES"] = str(conf)
    sys.argv = sys.argv[:1]  # keystone parses sys.argv as its own command line
    from keystone.server import wsgi

    app = wsgi.initialize_public_application()

    class Handler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            sys.stderr.write("keystone %s\n" % (format % args))

    server = make_server("127.0.0.1", port, app, handler_class=Handler)
    (workdir / "ready").write_text(str(os.getpid()))
    print(f"keystone ready on {url}", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a real Keystone for tests.")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    _serve(args.dir, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
