# Portail Devis — the README's two commands are `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
FLASK := $(BIN)/flask --app wsgi
STAMP := $(VENV)/.installed
TEST_PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: run test test-sqlite test-pg lint bench install clean

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(FLASK) db upgrade
	$(FLASK) demo load
	$(FLASK) run --host 127.0.0.1 --port $(PORT)

test: $(STAMP)
	$(MAKE) test-sqlite
	$(MAKE) test-pg

test-sqlite: $(STAMP)
	$(BIN)/pytest

# In CI (CI=true) an unreachable PostgreSQL fails the run; elsewhere it is reported and skipped.
test-pg: $(STAMP)
	@if $(BIN)/python -m tests.pg_available "$(TEST_PG_URL)"; then \
		TEST_DATABASE_URL="$(TEST_PG_URL)" $(BIN)/pytest; \
	elif [ "$$CI" = "true" ]; then \
		echo "PostgreSQL unreachable at $(TEST_PG_URL): the PostgreSQL half of the suite cannot run in CI." >&2; exit 1; \
	else \
		echo "PostgreSQL unreachable at $(TEST_PG_URL): PostgreSQL half NOT run (CI runs it)." >&2; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check portal tests bench

bench: $(STAMP)
	@echo "No benchmark yet."

clean:
	rm -rf $(VENV) instance/portal.db
