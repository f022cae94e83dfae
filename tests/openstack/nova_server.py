"""Subprocess entry point: real Nova (API, conductor, scheduler, fake compute) on loopback.

Run only by `tests/openstack/real_nova.py`, as its own process, so that Nova's eventlet
monkey-patching and oslo global state never touch the test process:

    python tests/openstack/nova_server.py --port P --ready-file F [--keystone-url URL]

It builds Nova from the nova wheel's own functional-test fixtures
(`_IntegratedTestBase`: in-memory databases, in-process placement, Neutron/Glance/Cinder
fixtures, `fake.MediumFakeDriver` compute), serves the compute API with a threaded wsgiref
server, writes a JSON description (project id, image, flavor, network) to the ready file and
serves until killed. The Keystone service password comes from the environment variable
`NOVA_HARNESS_KEYSTONE_PASSWORD`, never from argv. Self-contained: imports nothing from tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

# Importing the functional test package applies Nova's eventlet monkey-patching first.
from nova.tests.functional import integrated_helpers  # noqa: E402

PASSWORD_ENV = "NOVA_HARNESS_KEYSTONE_PASSWORD"
ADMIN_ROLES = "reader,member,admin"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # One access-log line per request on stderr (the harness's log file).
        sys.stderr.write("nova-api %s\n" % (format % args))


def _no_keystone(app: WsgiApp, project_id: str) -> WsgiApp:
    """Without Keystone: every request is the fixtures' admin user of the fixtures' project."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["HTTP_X_AUTH_USER"] = "admin"
        environ["HTTP_X_AUTH_PROJECT_ID"] = project_id
        environ["HTTP_X_ROLES"] = ADMIN_ROLES
        return app(environ, start_response)

    return wrapped


def _configure_keystone(harness: Any, keystone_url: str) -> None:
    """Real token validation with keystonemiddleware.auth_token against the given Keystone."""
    from keystoneauth1 import loading
    from keystonemiddleware import auth_token  # noqa: F401  (registers [keystone_authtoken])
    from oslo_config import cfg

    group = "keystone_authtoken"
    # The password plugin's options are registered lazily by the middleware; register them
    # now (identical definitions, so the later registration is a no-op) to override them.
    cfg.CONF.register_opts(loading.get_auth_plugin_conf_options("password"), group=group)
    harness.flags(
        www_authenticate_uri=keystone_url,
        auth_type="password",
        auth_url=keystone_url,
        username="admin",
        password=os.environ[PASSWORD_ENV],
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
        http_connect_timeout=5,
        http_request_max_retries=1,
        group=group,
    )


def _harness_class(keystone_url: str | None, instances: int) -> type:
    base = integrated_helpers._IntegratedTestBase

    class NovaHarness(base):  # type: ignore[misc, valid-type]
        compute_driver = "fake.MediumFakeDriver"
        ADMIN_API = True
        microversion = "latest"
        STUB_KEYSTONE = keystone_url is None

        def setUp(self) -> None:
            self.flags(compute_driver=self.compute_driver)
            paste = Path(sys.prefix) / "etc" / "nova" / "api-paste.ini"
            self.flags(api_paste_config=str(paste), group="wsgi")
            self.flags(instances=instances, cores=4 * instances, group="quota")
            # m1.tiny has 512 MB; the fake host 8 GB: overcommit so a quota of ~60 fits.
            self.flags(ram_allocation_ratio=4.0, cpu_allocation_ratio=16.0)
            if keystone_url is not None:
                _configure_keystone(self, keystone_url)
            super().setUp()

        def runTest(self) -> None:  # testtools needs a test method to instantiate the case
            pass

    return NovaHarness


def _describe(harness: Any) -> dict[str, Any]:
    """Ids the tests need, straight from the fixtures (no API call: it would need a token)."""
    network = harness.neutron.network_1
    return {
        "pid": os.getpid(),
        "project_id": harness.api_fixture.project_id,  # the fixtures' project (no-Keystone mode)
        "image_id": harness.glance.image1["id"],
        "flavor_id": "1",  # m1.tiny from DefaultFlavorsFixture
        "network_id": network["id"],
        "network_name": network["name"],
    }


def _adopt_other_projects(harness: Any) -> None:
    """The fake Neutron's network and template port belong to the fixtures' project; a real
    Keystone project has another id, so Nova would neither see the network nor find the
    ports it created (it lists them by the instance's project). Share the network, as a
    provider network is, and give each new port the project Nova asked for."""
    neutron = harness.neutron
    network = neutron.network_1
    neutron._networks[network["id"]] = dict(network, shared=True)
    create_port = neutron.create_port

    def create_port_for_project(body: dict[str, Any] | None = None) -> dict[str, Any]:
        result = create_port(body)
        project = ((body or {}).get("port") or {}).get("tenant_id")
        if project:
            owner = {"tenant_id": project, "project_id": project}
            neutron._ports[result["port"]["id"]].update(owner)
            result["port"].update(owner)
        return result

    neutron.create_port = create_port_for_project


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--keystone-url", default=None)
    parser.add_argument("--instances-quota", type=int, default=20)
    args = parser.parse_args(argv)

    harness = _harness_class(args.keystone_url, args.instances_quota)()
    try:
        harness.setUp()
    except BaseException:
        # The fixtures capture logging; without this, the cause of a failed setUp is lost.
        traceback.print_exc(file=sys.__stderr__)
        stdlog = getattr(harness, "stdlog", None)
        if stdlog is not None:
            sys.__stderr__.write(stdlog.logger.output[-20000:])
        return 1

    # Past setUp, send INFO logs to our stderr (the harness's log file) as well.
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
    logging.getLogger().addHandler(handler)

    app = harness.api_fixture.app()
    if args.keystone_url is not None:
        _adopt_other_projects(harness)
    if args.keystone_url is None:
        app = _no_keystone(app, harness.api_fixture.project_id)
    # Single-threaded on purpose: with a ThreadingMixIn server, requests hang under Nova's
    # eventlet monkey-patching. Casts run as calls, so a create returns once it is built.
    server = make_server(
        "127.0.0.1", args.port, app, server_class=WSGIServer, handler_class=_QuietHandler
    )
    info = _describe(harness)
    tmp = args.ready_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.rename(args.ready_file)  # atomic: the parent never reads a half-written file
    sys.__stderr__.write(f"nova harness ready on 127.0.0.1:{args.port}\n")
    sys.__stderr__.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
