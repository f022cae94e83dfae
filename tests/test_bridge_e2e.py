"""End to end: Prometheus scrapes JSON-only replicas through the bridge, the autoscaler
scales on it.

The group has `via_bridge: true`, so its replicas are listed in `/sd?via=bridge` as JSON
status URLs; Prometheus's `replicas_bridge` job probes them through `autoscaler bridge`
(a real subprocess, started with the CLI). The replicas' JSON path comes from the
SimpleScaleVM variable REPLICA_API_PATH, exactly as a SimpleScaleVM user would set it.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from autoscaler.demo.loadgen import LoadGenerator, constant
from tests.harness.prometheus import REPO, free_port, stop_process, wait_http
from tests.harness.stack import Stack, local_group

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def bridge_address() -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "bridge", "--listen", address, "--timeout", "2"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://{address}/healthz")
        yield address
    finally:
        stop_process(proc)


def _bridge_replicas(stack: Stack) -> list[str]:
    """host:port of each replica listed for the bridge (for the load generator)."""
    doc = requests.get(f"{stack.url}/sd?via=bridge", timeout=5).json()
    return [urlsplit(t).netloc for entry in doc for t in entry["targets"]]


def test_autoscaler_scales_json_replicas_read_through_the_bridge(bridge_address):
    name = f"json-{secrets.token_hex(3)}"
    stack = Stack(
        groups=lambda run_dir: {name: local_group(run_dir, via_bridge=True)},
        bridge=bridge_address,
    )
    stack.env["REPLICA_API_PATH"] = "/status"  # the demo replica's SimpleScaleVM-style JSON
    with stack as s:
        prom = s.prometheus
        # /sd lists the replica for the bridge only, as its JSON URL
        s.wait("a replica listed for the bridge", lambda: len(_bridge_replicas(s)) == 1, 60)
        doc = requests.get(f"{s.url}/sd?via=bridge", timeout=5).json()
        (target,) = doc[0]["targets"]
        assert target.startswith("http://127.0.0.1:") and target.endswith("/status")
        assert doc[0]["labels"]["group"] == name
        direct = requests.get(f"{s.url}/sd?via=direct", timeout=5).json()
        assert all(e["labels"]["group"] != name for e in direct)

        # Prometheus reads it through the bridge (http_sd pushes targets every ~5 s)
        prom.wait_for(
            f'replica_probe_success{{job="replicas_bridge", group="{name}"}} == 1', timeout=60
        )
        idle = prom.wait_for(
            f'replica_capacity{{job="replicas_bridge", group="{name}"}} == 4', timeout=60
        )
        assert idle[0]["metric"]["replica"]
        assert prom.query(f'replica_termination{{group="{name}"}}')[0]["value"][1] == "0"
        assert not prom.query(f'replica_capacity{{job="replicas", group="{name}"}}')

        # Demand the single replica cannot absorb: the autoscaler must add replicas,
        # seeing the shortfall only through the bridge.
        load = LoadGenerator(
            constant(12.0),
            lambda: _bridge_replicas(s),
            balance="first",
            poisson=False,
            targets_refresh_seconds=1.0,
            timeout_seconds=3.0,
        )
        with load:
            prom.wait_for(
                f'sum(replica_capacity{{job="replicas_bridge", group="{name}"}}) < 4',
                timeout=30,
            )
            s.wait("a second replica", lambda: len(s.replica_ids(name)) >= 2, 60)
        ups = s.metric("autoscaler_decisions_total", {"group": name, "direction": "up"})
        assert ups >= 1
        # the new replica is probed through the bridge too
        prom.wait_for(
            f'count(replica_probe_success{{job="replicas_bridge", group="{name}"}} == 1) >= 2',
            timeout=60,
        )
        bridge_metrics = requests.get(f"http://{bridge_address}/metrics", timeout=5).text
        assert "bridge_probes_total" in bridge_metrics


# A JSON replica with its own keys (SimpleScaleVM's REPLICA_API_*_KEY set per group).
OWN_KEYS_REPLICA = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"free": 3, "stop": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_group_replica_api_keys_reach_the_bridge(bridge_address):
    """`replica_api: {capacity_key, termination_key}` travel in /sd as __param_* labels,
    so Prometheus asks the bridge for those keys (before issue 10: missing_key)."""
    name = f"keys-{secrets.token_hex(3)}"

    def groups(run_dir):
        group = local_group(run_dir, via_bridge=True, min=1, max=1)
        group["provider"]["command"] = [sys.executable, "-c", OWN_KEYS_REPLICA, "{port}"]
        group["replica_api"] = {"capacity_key": "free", "termination_key": "stop"}
        return {name: group}

    with Stack(groups=groups, bridge=bridge_address) as s:
        s.wait("a replica listed for the bridge", lambda: len(_bridge_replicas(s)) == 1, 60)
        (entry,) = requests.get(f"{s.url}/sd?via=bridge", timeout=5).json()
        assert entry["labels"]["__param_capacity_key"] == "free"
        assert entry["labels"]["__param_termination_key"] == "stop"
        s.prometheus.wait_for(
            f'replica_capacity{{job="replicas_bridge", group="{name}"}} == 3', timeout=60
        )
        (term,) = s.prometheus.query(f'replica_termination{{group="{name}"}}')
        assert term["value"][1] == "0"
        assert "__param_capacity_key" not in term["metric"]  # not kept as a series label
