# Everything a fresh machine needs, from this repo: a venv; Java, Maven, gcc, libjq (Debian) if missing; Kafka
# jars from Maven Central; kube-apiserver, kubectl, etcd and shell-operator built from source via the Go module
# proxy (tests/harness/gobuild.py). Caches live in ~/.m2, ~/go and ~/.cache/connect-reconciler, never the repo.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE ?= $(HOME)/.cache/connect-reconciler
DEMO_DIR ?= $(CACHE)/demo
PYTEST_ARGS ?=

.PHONY: demo demo-stop test lint unit tools java-tools venv

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

java-tools:
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jdk-headless maven; }

tools: venv java-tools
	@missing=""; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v gcc >/dev/null || missing="$$missing gcc"; \
	[ -e /usr/include/jq.h ] || missing="$$missing libjq-dev"; \
	[ -e /usr/include/oniguruma.h ] || missing="$$missing libonig-dev"; \
	if [ -n "$$missing" ]; then echo "installing from Debian:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi
	@command -v go >/dev/null || { echo "Go >= 1.26 is needed to build kube-apiserver for the tests" >&2; exit 1; }
	$(PY) -m tests.harness.gobuild

# Start a local Kafka + Connect (127.0.0.1), reconcile configmaps/ into it, print the connectors' status.
demo: venv java-tools
	$(PY) -m tests.harness.connect_kit start --data-dir $(DEMO_DIR)
	@printf 'hello\nfrom\nconnect-reconciler\n' > $(DEMO_DIR)/input.txt
	DEMO_DATA_DIR=$(DEMO_DIR) $(VENV)/bin/connect-reconciler apply configmaps/*.yaml \
	  --properties-dir configmaps/inputs/properties --connect-url "$$($(PY) -m tests.harness.connect_kit url --data-dir $(DEMO_DIR))"
	DEMO_DATA_DIR=$(DEMO_DIR) $(VENV)/bin/connect-reconciler status configmaps/*.yaml --wait 90 \
	  --properties-dir configmaps/inputs/properties --connect-url "$$($(PY) -m tests.harness.connect_kit url --data-dir $(DEMO_DIR))"
	@echo "Kafka Connect keeps running at $$($(PY) -m tests.harness.connect_kit url --data-dir $(DEMO_DIR)); stop it with: make demo-stop"

demo-stop: venv
	$(PY) -m tests.harness.connect_kit stop --data-dir $(DEMO_DIR)

lint: venv
	$(VENV)/bin/ruff check reconciler tests bench
	$(VENV)/bin/ruff format --check reconciler
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict tests/harness
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/hadolint docker/Dockerfile docker/Dockerfile.shell-operator

unit: venv
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

# The whole suite: lint, type check, unit tests, integration tests against a real Kafka + Connect.
test: venv tools lint
	$(PY) -m pytest $(PYTEST_ARGS)
