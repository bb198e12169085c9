# aupwatch developer tasks. `make help` lists them.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-z][a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@# a venv cut short (no pip yet) is made again rather than used half-built
	@test -x $(BIN)/pip || $(PY) -m venv --clear $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# setuptools warns that a flat layout is not src/; the layout is fixed by design
	PYTHONWARNINGS=ignore $(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP) ## Create .venv and install aupwatch with its dev tools (idempotent)

demo: setup ## Install, then replay the bundled example logs and show the alerts
	@echo "aupwatch demo: four months of synthetic marketplace API logs (examples/sample.jsonl.gz,"
	@echo "10,000 records with planted policy breaches and bad lines) run through every detector."
	@echo
	@$(BIN)/aupwatch replay examples/sample.jsonl.gz --dead-letters /dev/null
	@echo
	@echo "Next: '$(BIN)/aupwatch replay examples/sample.jsonl.gz --alerts alerts.jsonl' for the"
	@echo "full JSON; '$(BIN)/aupwatch generate --out logs.jsonl.gz --records 100000' for more data;"
	@echo "'$(BIN)/aupwatch --help' for every command; README.md explains them."

services: setup ## Start the local Kafka broker and install Prometheus/Alertmanager (idempotent)
	bash deploy/kafka/kafka.sh start
	bash deploy/install-monitoring.sh

lint: setup ## ruff (lint + format check) and mypy (strict on the whole aupwatch package)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p aupwatch

test: setup services lint ## Everything CI runs: services, lint, type checks, the whole test suite
	$(BIN)/python -m pytest -q --durations=20

unit: setup ## Only the tests that need no broker or server
	$(BIN)/python -m pytest -q -m "not integration"

soak: setup services ## Failover runs (a worker killed beside a survivor), five rounds
	for i in 1 2 3 4 5; do $(BIN)/python -m pytest -q -m soak tests/streams || exit 1; done

race: setup services ## An idle group gets a replay, 40 runs (20 beside a CPU burner): each must equal replay
	$(BIN)/python bench/race.py --runs 40 --burn 20

bench: setup services ## Benchmarks (replay vs bare decode; stream pipeline on the local broker)
	@# the Quix Streams peer of bench/stream.py; pip leaves an installed pin as it is
	PYTHONWARNINGS=ignore $(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/detect_stage.py
	$(BIN)/python bench/stream.py

bench-replay: setup ## Replay's time by detector, and against a single-loop sketch of its work
	$(BIN)/python bench/replay_costs.py --rounds 5
	$(BIN)/python bench/replay_floor.py

# the last commit before detectors version 2 (issue 13's speed condition compares with it)
BEFORE_V2 := 1f3dee1

bench-v2: setup ## Replay against the last commit before detectors v2, alternating on one file
	@# a plain copy of that commit's files (git archive): no worktree is registered
	rm -rf .cache/before-v2 && mkdir -p .cache/before-v2
	git archive $(BEFORE_V2) | tar -x -C .cache/before-v2
	$(BIN)/python bench/versus.py .cache/before-v2

soak-bench: setup services ## One worker, 2,000 records/s for 30 min, months of event time: RSS, state, latency
	@# the opt-in retentions bound the states the rules keep forever by default (docs/semantics.md)
	$(BIN)/python bench/soak.py --minutes 30 --retention 91d

worker: setup ## Run one stream worker against the local broker (Ctrl-C to stop)
	bash deploy/kafka/kafka.sh start
	$(BIN)/aupwatch worker --config deploy/aupwatch.toml

kafka-stop: ## Stop the local Kafka broker
	bash deploy/kafka/kafka.sh stop

.PHONY: help setup demo services lint test unit soak race bench bench-replay bench-v2 soak-bench worker kafka-stop
