# Two commands on a fresh machine:  make run  |  make test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
export DATA_DIR ?= $(CURDIR)/instance
# Unset, SHOP_ENV means production (which refuses the laptop defaults below); make's
# targets are for a laptop, so they ask for development. A deploy never runs make.
export SHOP_ENV ?= development
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup release run test test-fast lint bench bench-full lock lock-upgrade clean

# Each target installs the hashed lock it needs (requirements/*.txt, made by `make lock`
# from pyproject.toml; docs/dependencies.md) into the one virtualenv. A stamp per lock
# reinstalls when that lock changes.
$(BIN)/python:
	@echo "==> creating virtualenv in $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-%: requirements/%.txt | $(BIN)/python
	@echo "==> installing $< (first run takes a minute)"
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $<
	@touch $@

setup: $(VENV)/.installed-lint  ## every group: runtime, test, bench and lint tools

release: $(VENV)/.installed-runtime  ## apply migrations and load the demo catalogue (the Procfile's release step)
	@echo "==> migrating the database and loading the demo catalogue (DATA_DIR=$(DATA_DIR))"
	@$(BIN)/flask --app app db upgrade 2>&1 | grep -v "^INFO" || true
	@$(BIN)/flask --app app shop seed

run: release  ## start web + every worker on the embedded default (SQLite + SqliteHuey)
	@echo
	@echo "  Shop:           http://127.0.0.1:$(PORT)/"
	@echo "  API:            http://127.0.0.1:$(PORT)/api/products"
	@echo "  Ops dashboard:  http://127.0.0.1:$(PORT)/ops   (user: $${OPS_USERNAME:-ops}  password: $${OPS_PASSWORD:-ops-dev-password})"
	@echo "  Processes:      web, orders, payments, notifications, scheduler (Ctrl-C stops all)"
	@echo
	PORT=$(PORT) $(BIN)/python -m orders.procfile web orders payments notifications scheduler

# a crashed worker ends the run at once, named in the report: pytest-xdist 3.8 can hang
# for good replacing it under --dist loadgroup (pytest-dev/pytest-xdist#1378)
test: $(VENV)/.installed-test  ## the whole suite (PostgreSQL/Redis parts run when TEST_POSTGRES_URL/TEST_REDIS_URL are set)
	$(BIN)/python -m pytest -n $${TEST_WORKERS:-3} --dist loadgroup --max-worker-restart 0

test-fast: $(VENV)/.installed-test  ## unit and integration tests only (no processes, no browser)
	$(BIN)/python -m pytest -m "not e2e and not browser and not chaos"

bench: $(VENV)/.installed-bench  ## the system phase, then where the time goes; quick profile (< 10 min); needs PostgreSQL + Redis up
	$(BIN)/python -m bench --profile quick

bench-full: $(VENV)/.installed-bench  ## the full sweep (15, 50, 200, 500, 1000 users; ~30 min)
	$(BIN)/python -m bench --profile full

lint: $(VENV)/.installed-lint  ## the checks CI runs before the tests: lint, format, types, layers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The locks: uv resolves pyproject.toml into uv.lock (one resolution for every group),
# then exports one hashed requirements file per set. `lock` keeps every pinned version it
# can; `lock-upgrade` moves the unpinned (transitive) packages to their newest releases.
UV_VERSION := 0.13.9
LOCK_VENV ?= .venv-lock
UV := $(LOCK_VENV)/bin/uv
LOCK_GROUPS := test bench lint

$(UV):
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet uv==$(UV_VERSION)

lock: $(UV)  ## re-resolve uv.lock after a pyproject.toml change and export requirements/*.txt
	$(UV) lock $(UV_LOCK_ARGS)
	@mkdir -p requirements
	$(UV) export --frozen --quiet --no-emit-project --no-default-groups \
		--format requirements-txt --output-file requirements/runtime.txt
	@for group in $(LOCK_GROUPS); do \
		echo "$(UV) export ... --group $$group"; \
		$(UV) export --frozen --quiet --no-emit-project --no-default-groups --group $$group \
			--format requirements-txt --output-file requirements/$$group.txt || exit 1; \
	done

lock-upgrade:  ## the same, with every transitive package at its newest release
	$(MAKE) lock UV_LOCK_ARGS=--upgrade

clean:
	rm -rf $(VENV) $(LOCK_VENV) instance .pytest_cache
