# Two commands on a fresh machine:  make run  |  make test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
export DATA_DIR ?= $(CURDIR)/instance
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup release run test test-fast lint bench bench-full clean

$(BIN)/.installed: requirements.txt
	@echo "==> creating virtualenv in $(VENV) and installing requirements (first run takes a minute)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

setup: $(BIN)/.installed

release: setup  ## apply migrations and load the demo catalogue (the Procfile's release step)
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
	PORT=$(PORT) $(BIN)/honcho start -f Procfile web orders payments notifications scheduler

test: setup  ## the whole suite (PostgreSQL/Redis parts run when TEST_POSTGRES_URL/TEST_REDIS_URL are set)
	$(BIN)/python -m pytest -n $${TEST_WORKERS:-3} --dist loadgroup

test-fast: setup  ## unit and integration tests only (no processes, no browser)
	$(BIN)/python -m pytest -m "not e2e and not browser and not chaos"

bench: setup  ## the system phase, then where the time goes; quick profile (< 10 min); needs PostgreSQL + Redis up
	$(BIN)/python -m bench --profile quick

bench-full: setup  ## the full sweep (15, 50, 200, 500, 1000 users; ~30 min)
	$(BIN)/python -m bench --profile full

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) instance .pytest_cache
