# Everything a fresh machine needs, from this repo: a venv; Java, Maven, gcc, libjq (Debian) if missing; Kafka
# jars from Maven Central; kube-apiserver, kubectl, etcd and shell-operator built from source via the Go module
# proxy (tests/harness/gobuild.py). Caches live in ~/.m2, ~/go and ~/.cache/connect-reconciler, never the repo.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE ?= $(HOME)/.cache/connect-reconciler
DEMO_DIR ?= $(CACHE)/demo
PYTEST_ARGS ?=
DEMO_PG = $(DEMO_DIR)/postgres
# Whether a PostgreSQL server is installed (Debian's /usr/lib/postgresql/N/bin, or initdb on PATH).
PG_AVAILABLE = $(PY) -c 'import sys; from tests.harness.postgres_kit import available; sys.exit(not available())'

.PHONY: demo demo-stop test lint unit tools java-tools venv docs

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
	$(PG_AVAILABLE) || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then echo "installing from Debian:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi
	@command -v go >/dev/null || { echo "Go >= 1.26 is needed to build kube-apiserver for the tests" >&2; exit 1; }
	$(PY) -m tests.harness.gobuild

# Start a local Kafka + Connect (127.0.0.1), reconcile configmaps/*.yaml into it, print the connectors' status.
# With PostgreSQL installed (`make tools`), also a local PostgreSQL and the Debezium CDC sample (configmaps/cdc/),
# its password a Secret volume the worker reads itself (--secret-provider directory).
demo: venv java-tools
	$(PY) -m tests.harness.connect_kit start --data-dir $(DEMO_DIR)
	@printf 'hello\nfrom\nconnect-reconciler\n' > $(DEMO_DIR)/input.txt
	@set -euo pipefail; \
	url="$$($(PY) -m tests.harness.connect_kit url --data-dir $(DEMO_DIR))"; \
	paths=(configmaps/*.yaml); cdc=(); \
	if $(PG_AVAILABLE); then \
	  $(PY) -m tests.harness.postgres_kit start --data-dir $(DEMO_PG) --password-dir $(DEMO_DIR)/secrets/postgres; \
	  $(PY) -m tests.harness.postgres_kit sql --data-dir $(DEMO_PG) \
	    "CREATE TABLE IF NOT EXISTS customers (id serial PRIMARY KEY, name text NOT NULL); \
	     INSERT INTO customers (name) SELECT 'ada' WHERE NOT EXISTS (SELECT 1 FROM customers);"; \
	  export CDC_PG_HOST=127.0.0.1 CDC_PG_PORT="$$($(PY) -m tests.harness.postgres_kit port --data-dir $(DEMO_PG))"; \
	  paths+=(configmaps/cdc/*.yaml); \
	  cdc=(--secret-dir $(DEMO_DIR)/secrets/postgres --secret-provider directory); \
	else \
	  echo "PostgreSQL not found: run \`make tools\` (installs Debian's postgresql) to add the Debezium CDC connector to the demo"; \
	fi; \
	set -x; \
	DEMO_DATA_DIR=$(DEMO_DIR) $(VENV)/bin/connect-reconciler apply "$${paths[@]}" \
	  --properties-dir configmaps/inputs/properties "$${cdc[@]}" --connect-url "$$url"; \
	DEMO_DATA_DIR=$(DEMO_DIR) $(VENV)/bin/connect-reconciler status "$${paths[@]}" --wait 90 \
	  --properties-dir configmaps/inputs/properties "$${cdc[@]}" --connect-url "$$url"; \
	{ set +x; } 2>/dev/null; \
	echo "Kafka Connect keeps running at $$url; stop it with: make demo-stop"; \
	if [ $${#cdc[@]} -gt 0 ]; then \
	  echo "PostgreSQL keeps running too: rows of public.customers become events on the topic demo-cdc.public.customers;"; \
	  echo "add one with: $(PY) -m tests.harness.postgres_kit sql --data-dir $(DEMO_PG) \"INSERT INTO customers (name) VALUES ('grace')\""; \
	fi

demo-stop: venv
	$(PY) -m tests.harness.connect_kit stop --data-dir $(DEMO_DIR)
	$(PY) -m tests.harness.postgres_kit stop --data-dir $(DEMO_PG)

# Regenerate docs/cli.md from the parser (tests/unit/test_cli_reference.py fails while it is stale).
docs: venv
	$(PY) -m reconciler.entrypoints.reference > docs/cli.md

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
