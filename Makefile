# ticketmesh: `make up` runs the whole mesh, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: up test lint fmt gen check-gen clean loadtest bench

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(INSTALLED)

## up: start Postgres, NATS, every service and Envoy; Ctrl-C stops them all.
up: $(INSTALLED)
	$(PY) -m stack up

## test: the whole suite (unit, integration, end-to-end, faults) against real parts.
test: $(INSTALLED)
	$(PY) -m pytest

LOADTEST_ARGS ?= --buyers 5000 --seats 1000 --concurrency 200

## loadtest: an on-sale on its own stack (override with LOADTEST_ARGS="--transport grpc --target ..."); results in .loadtest/.
loadtest: $(INSTALLED)
	$(PY) -m loadtest $(LOADTEST_ARGS)

## bench: the standard scenarios and pgbench's ceiling on the same Postgres; results in .loadtest/bench/.
bench: $(INSTALLED)
	$(PY) -m loadtest.bench $(BENCH_ARGS)

## gen: regenerate stubs and Envoy's descriptor set from protos/.
gen: $(INSTALLED)
	PYTHON=$(PY) tools/gen.sh

## check-gen: fail when the committed generated code differs from a fresh `make gen`.
check-gen: gen
	git diff --exit-code --stat -- gen protos envoy/ticketing.binpb
	@test -z "$$(git status --porcelain -- gen protos envoy)" || (git status --porcelain -- gen protos envoy; exit 1)

## lint: ruff, mypy and buf (lint, format, breaking against main).
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd protos && ../$(VENV)/bin/buf lint && ../$(VENV)/bin/buf format --diff --exit-code
	@if git rev-parse --verify -q main:protos/buf.yaml >/dev/null; then \
		cd protos && ../$(VENV)/bin/buf breaking --against '../.git#branch=main,subdir=protos'; \
	else echo "buf breaking: no protos on main yet, nothing to compare"; fi

fmt: $(INSTALLED)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	cd protos && ../$(VENV)/bin/buf format -w

## clean: stop nothing, wipe local stack state (Postgres data, NATS store, logs).
clean:
	rm -rf .stack
