# eventhub: `make run` starts the app on embedded defaults; `make test` sets up and runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgres://postgres@127.0.0.1:5432/eventhub

.PHONY: run venv test test-setup test-postgres test-sqlite lint bench services

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"

## run: the app on embedded defaults (SQLite, in-process broker and worker) at http://127.0.0.1:8000/
run: venv
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py migrate --no-input
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py ensure_admin
	-DEBUG=$${DEBUG:-true} $(BIN)/python manage.py eventhub_demo
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py runserver 127.0.0.1:8000

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
