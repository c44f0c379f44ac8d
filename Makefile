# Everything a fresh machine needs, from this repo: a venv, Java + Maven (Debian) if missing, Kafka jars
# from Maven Central (cached in ~/.m2 and ~/.cache/connect-reconciler, never in the repo).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE ?= $(HOME)/.cache/connect-reconciler
DEMO_DIR ?= $(CACHE)/demo
PYTEST_ARGS ?=

.PHONY: demo demo-stop test lint unit tools venv

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

tools:
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
	  echo "installing Java 17 and Maven from Debian"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jdk-headless maven; }

# Start a local Kafka + Connect (127.0.0.1), reconcile configmaps/ into it, print the connectors' status.
demo: venv tools
	$(PY) -m tests.harness.connect_kit start --data-dir $(DEMO_DIR)
	@printf 'hello\nfrom\nconnect-reconciler\n' > $(DEMO_DIR)/input.txt
	DEMO_DATA_DIR=$(DEMO_DIR) $(VENV)/bin/connect-reconciler apply configmaps \
	  --properties-dir configmaps/inputs/properties --connect-url "$$($(PY) -m tests.harness.connect_kit url --data-dir $(DEMO_DIR))"
	DEMO_DATA_DIR=$(DEMO_DIR) $(VENV)/bin/connect-reconciler status configmaps --wait 90 \
	  --properties-dir configmaps/inputs/properties --connect-url "$$($(PY) -m tests.harness.connect_kit url --data-dir $(DEMO_DIR))"
	@echo "Kafka Connect keeps running at $$($(PY) -m tests.harness.connect_kit url --data-dir $(DEMO_DIR)); stop it with: make demo-stop"

demo-stop: venv
	$(PY) -m tests.harness.connect_kit stop --data-dir $(DEMO_DIR)

lint: venv
	$(VENV)/bin/ruff check reconciler tests bench
	$(VENV)/bin/ruff format --check reconciler
	$(VENV)/bin/mypy

unit: venv
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

# The whole suite: lint, type check, unit tests, integration tests against a real Kafka + Connect.
test: venv tools lint
	$(PY) -m pytest $(PYTEST_ARGS)
