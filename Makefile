# The two commands of the README, and their helpers. Everything is set up from scratch:
# Python venv, Docker engine, the sandbox host image.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYINFRA := $(VENV)/bin/pyinfra

.PHONY: sandbox sandbox-destroy sandbox-cluster sandbox-cluster-destroy test lint test-cluster test-unit audit bench bench-quick docker-bench lynis ssh-audit pitr-restore demo venv settings-reference

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Start (or reuse) the sandbox host and deploy the whole platform to it.
sandbox: venv
	$(PY) tools/sandbox.py up
	$(PYINFRA) inventory/sandbox.py deploy.py -y

sandbox-destroy: venv
	$(PY) tools/sandbox.py destroy
	rm -rf .sandbox

# Scale-out: a primary, a replica, a worker host and an outsider; one deploy to the first three.
sandbox-cluster: venv
	$(PY) tools/sandbox.py cluster-up
	$(PYINFRA) inventory/sandbox_cluster.py deploy.py -y

sandbox-cluster-destroy: venv
	$(PY) tools/sandbox.py cluster-destroy

# All tests: lint and types, unit, then end-to-end against sandbox hosts of their own, the
# scale-out tests beside the one-host tests (the images are built first, outside the tests'
# time limits). Prints each part's time.
test: venv
	$(PY) tools/sandbox.py images --upgrades
	$(PY) tools/browser.py install
	$(PY) tools/run_suite.py

# ruff (lint and format) and mypy, as make test runs them first.
lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# The scale-out tests alone (they are part of make test too): four sandbox hosts of their own.
test-cluster: venv
	$(PY) tools/sandbox.py images
	$(PY) -m pytest tests/e2e/test_5_cluster.py

test-unit: venv
	$(PY) -m pytest tests/unit

# Audit the sandbox host; for production: $(PY) -m pytest tests/audit --inventory inventory/production.py
audit: venv
	$(PY) -m pytest tests/audit --inventory inventory/sandbox.py

# Point-in-time restore of the sandbox host, then the audit: make pitr-restore AT=latest (or AT="2026-12-07 14:03:00+00");
# for production: $(PY) tools/pitr_restore.py --inventory inventory/production.py latest
pitr-restore: venv
	$(PY) tools/pitr_restore.py --inventory inventory/sandbox.py "$(AT)"

bench: venv
	$(PY) bench/converge.py
	$(PY) bench/inbound.py
	$(PY) bench/poster.py
	$(PY) bench/pitr.py
	$(PY) bench/cluster.py

# The quick modes (the suite runs them too), on the host of `make sandbox` as it is: rerun / floor
# and memory, 6 inbound messages, one promotion posted, one PITR drill of 45 s. bench/cluster.py --quick needs
# make sandbox-cluster.
bench-quick: venv
	$(PY) bench/converge.py --quick
	$(PY) bench/inbound.py --quick
	$(PY) bench/poster.py --quick
	$(PY) bench/pitr.py --quick

# CIS Docker Benchmark on the sandbox host: WARN/PASS/INFO/NOTE counts, one line per WARN (make sandbox first; DOCKER_BENCH_SRC=dir or internet).
docker-bench: venv
	$(PY) tools/docker_bench.py

# Lynis on the sandbox host (installed there from Debian at the first run): the hardening index, its warnings and suggestions.
lynis: venv
	$(PY) tools/lynis.py

# ssh-audit against the sandbox host's sshd: [fail]/[warn]/[info] counts, one line per [fail] and [warn].
ssh-audit: venv
	$(PY) tools/ssh_audit.py

# A signed WhatsApp message to every configured number of the sandbox host (make sandbox first).
demo: venv
	$(PY) tools/demo.py

# docs/settings.md from the settings models (a unit test fails when it is stale).
settings-reference: venv
	$(PY) tools/settings_reference.py
