# Entry points for people and CI. Every target that needs tools depends on the steps that install them,
# so `make test` and `make demo` work on a fresh Debian 12 machine as root with nothing installed.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
VENV_BIN := $(CURDIR)/$(VENV)/bin
# pip install -e .[dev] is re-run whenever pyproject.toml changes.
VENV_STAMP := $(VENV)/.installed

# Molecule, ansible-playbook and the testinfra verifier look their tools up on PATH; podman reads the
# project's settings (runc, ulimits) only through CONTAINERS_CONF.
export PATH := $(VENV_BIN):$(PATH)
export CONTAINERS_CONF := $(CURDIR)/.config/containers/containers.conf
# Set to a file path to keep the base image's root file system and import it instead of re-running
# debootstrap after the image was removed, e.g. make image IMAGE_CACHE=build/cache/debian12-rootfs.tar
IMAGE_CACHE ?=

MOLECULE_INVENTORY_ROOT := build/molecule/inventories
MOLECULE_FIXTURE := molecule/default/site/site.yml

.PHONY: help deps host-deps venv image lint test-fast molecule molecule-routes test demo bench clean

help:
	@echo 'make deps       Debian packages (podman, runc, debootstrap, ...) and the Python venv in $(VENV)'
	@echo 'make image      base image localhost/mailappliance-debian12 (debootstrap; skipped when present)'
	@echo 'make lint       yamllint and ansible-lint'
	@echo 'make test-fast  pytest tests/ (seconds)'
	@echo 'make molecule   render the fixture site and run `molecule test` (minutes)'
	@echo 'make molecule-routes  outbound routes, channels, accounts, failover: `molecule test -s routes` (~5 min)'
	@echo 'make test       test-fast, then molecule, then molecule-routes (~15 min)'
	@echo 'make demo       deploy a demo appliance into a local container'
	@echo 'make bench      the appliance against raw Postfix, same loads, figures (~20 min; BENCH_QUICK=1: ~3 min)'
	@echo 'make clean      remove build/, caches and the Molecule container'

deps: host-deps venv

host-deps:
	scripts/install-host-deps

venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml | host-deps
	$(PYTHON) -m venv $(VENV)
	$(VENV_BIN)/pip install --quiet --upgrade pip
	$(VENV_BIN)/pip install --quiet -e '.[dev]'
	touch $@

image: host-deps
	MAILAPPLIANCE_IMAGE_CACHE='$(IMAGE_CACHE)' scripts/build-base-image

# Both linters run, so one run shows every problem.
lint: venv
	status=0; yamllint --strict . || status=1; ansible-lint || status=1; exit $$status

test-fast: venv
	pytest tests/

molecule: venv image
	MAILAPPLIANCE_INVENTORY_ROOT=$(MOLECULE_INVENTORY_ROOT) $(VENV_BIN)/mailappliance render $(MOLECULE_FIXTURE)
	molecule test --scenario-name default

# The appliance with three relay carriers and a DNS server on its own podman network (molecule/routes/).
# render-site renders the fixture site and puts the overseas carrier's relay password into its vault.
molecule-routes: venv image
	$(VENV_BIN)/python molecule/routes/render-site
	molecule test --scenario-name routes

test: test-fast molecule molecule-routes

demo: deps image
	$(VENV_BIN)/mailappliance demo

# Figures, never pass/fail; knobs are BENCH_* environment variables (docs/bench.md).
bench: deps image
	$(VENV_BIN)/python scripts/bench

clean:
	if command -v podman > /dev/null && podman container exists mail.alpha.test; then podman rm --force mail.alpha.test; fi
	rm -rf build/ .pytest_cache/ .ansible/
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
