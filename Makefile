# eventhub: `make run` starts the app on embedded defaults; `make test` sets up and runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgres://postgres@127.0.0.1:5432/eventhub
# Where `make run` serves: `make run PORT=8001`, `make run HOST=0.0.0.0` (then set ALLOWED_HOSTS).
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run venv test test-setup test-postgres test-sqlite lint bench services

$(BIN)/python:
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "eventhub needs Python 3.11 or newer; '$(PY)' is not. Try: make $(MAKECMDGOALS) PY=python3.12" >&2; \
		exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# What `make run` needs: eventhub and its runtime dependencies, no test tools. Reinstalled when
# pyproject.toml changes.
$(VENV)/.installed-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -qq -e .
	@touch $@

# What `make test` needs as well: the test extra (pytest, playwright, schemathesis, linters).
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -qq -e ".[test]"
	@touch $@ $(VENV)/.installed-runtime

venv: $(VENV)/.installed-test

## run: the app on embedded defaults (SQLite, in-process broker and worker) at http://$(HOST):$(PORT)/,
## with the outbox relay beside it (it sends deliveries a process left behind, e.g. one killed mid-way)
run: export DEBUG ?= true
run: $(VENV)/.installed-runtime
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py ensure_admin
	-$(BIN)/python manage.py eventhub_demo
	@echo "eventhub: http://$(HOST):$(PORT)/admin/ (admin / admin) and http://$(HOST):$(PORT)/eventhub/"
	$(BIN)/python manage.py eventhub_relay & relay=$$!; \
	trap 'kill $$relay 2>/dev/null; wait $$relay 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

services:
	bash scripts/services.sh

test-setup: venv services
	bash scripts/test-setup.sh

lint: venv
	$(BIN)/python -m ruff check .
	$(BIN)/lint-imports
	DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/python manage.py makemigrations --check --dry-run

test-postgres:
	EVENTHUB_REQUIRE_BROWSER=1 DATABASE_URL=$(PG_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

test-sqlite:
	EVENTHUB_REQUIRE_BROWSER=1 DATABASE_URL=sqlite:///$(CURDIR)/.ci-test.sqlite3 $(BIN)/python -m pytest $(PYTEST_ARGS)

## test: set up everything the tests need, then run the suite on PostgreSQL and on SQLite
test: test-setup lint
	$(MAKE) test-postgres
	$(MAKE) test-sqlite

## bench: eventhub against raw Dramatiq on the same RabbitMQ and PostgreSQL
## (BENCH_ARGS="--quick" for a smoke run; see docs/benchmark.md)
bench: venv services
	$(BIN)/python -m bench $(BENCH_ARGS)
