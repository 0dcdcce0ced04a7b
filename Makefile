# Everything a developer runs more than once. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH, else the per-user copy this Makefile installs on first use.
UV := $(or $(shell command -v uv 2>/dev/null),$(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
APPS := inventory sales delivery gateway
VENV_STAMP := .venv/.synced

.PHONY: help run test test-fast lint format bench soak migrate seed up down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(HOME)/.local/bin/uv:
	@echo "uv is not installed: installing it for this user with pip ..."
	@python3 -m pip install --user --quiet uv 2>/dev/null \
	  || python3 -m pip install --user --quiet --break-system-packages uv
	@test -x $@ || { echo "error: could not install uv; see https://docs.astral.sh/uv/" >&2; exit 1; }

$(VENV_STAMP): $(UV) uv.lock pyproject.toml */pyproject.toml
	@$(UV) sync --frozen --all-packages --quiet
	@touch $@

run: $(VENV_STAMP) ## migrate, seed and start the gateway and the apps (REPLICAS=sales=2 for more; Ctrl-C stops)
	@$(RUN) python -m bookstore_shared.stack

test: $(VENV_STAMP) ## every test: unit, service, end-to-end (real Postgres and RabbitMQ)
	@$(RUN) pytest

test-fast: $(VENV_STAMP) ## the tests without the end-to-end suite
	@$(RUN) pytest -m "not e2e"

lint: $(VENV_STAMP) ## ruff (lint and format check) and mypy on the shared library
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) mypy shared/src

format: $(VENV_STAMP) ## apply ruff's fixes and formatting
	@$(RUN) ruff check --fix .
	@$(RUN) ruff format .

bench: $(VENV_STAMP) ## catalog reads, orders/s, latency and cost per order, against the baseline (BENCH_ARGS="--clients 16", or "--against REV")
	@UV=$(UV) $(RUN) python -m bookstore_testing.bench $(BENCH_ARGS)

soak: $(VENV_STAMP) ## every process survives clients vanishing at once and mid-answer (~2 min)
	@$(RUN) python -m bookstore_testing.soak $(SOAK_ARGS)

migrate: $(VENV_STAMP) ## create the database if needed and migrate every app's schema
	@for app in $(APPS); do $(RUN) python -m $$app migrate || exit 1; done

seed: $(VENV_STAMP) ## load the demo catalog and demo users (idempotent)
	@for app in $(APPS); do $(RUN) python -m $$app seed || exit 1; done

up: ## the stack in containers with the demo data (needs Docker; writes .env with fresh secrets if missing)
	@deploy/up.sh

down: ## stop the containers (the data volumes stay; docker compose down -v removes them too)
	@docker compose --profile demo --profile observability down --remove-orphans

clean: ## remove the virtualenv, caches and run logs
	rm -rf .venv .run .pytest_cache .ruff_cache .mypy_cache
