# Portail Devis — the README's two commands are `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
FLASK := $(BIN)/flask --app wsgi
STAMP := $(VENV)/.installed
TEST_PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: run test test-sqlite test-pg lint bench install clean translations-update

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

CATALOGUE := portal/translations/en/LC_MESSAGES/messages
BABEL_KEYWORDS := -k _l -k lazy_gettext -k lazy_ngettext:1,2

install: $(STAMP) $(CATALOGUE).mo

$(CATALOGUE).mo: $(CATALOGUE).po $(STAMP)
	$(BIN)/pybabel -q compile -d portal/translations

# After changing user-facing strings: refresh the English catalogue, then translate the new entries.
translations-update: $(STAMP)
	$(BIN)/pybabel -q extract -F babel.cfg $(BABEL_KEYWORDS) -o portal/translations/messages.pot .
	$(BIN)/pybabel -q update -i portal/translations/messages.pot -d portal/translations -l en

# The outbox worker runs in the background and stops with the web server (Ctrl-C, SIGTERM or exit).
run: install
	$(FLASK) db upgrade
	$(FLASK) demo load
	@trap 'kill $$server $$worker 2>/dev/null; wait' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	$(FLASK) outbox work & worker=$$!; \
	$(FLASK) run --host 127.0.0.1 --port $(PORT) & server=$$!; \
	wait $$server

test: install
	$(MAKE) test-sqlite
	$(MAKE) test-pg

test-sqlite: install
	$(BIN)/pytest

# In CI (CI=true) an unreachable PostgreSQL fails the run; elsewhere it is reported and skipped.
test-pg: install
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

bench: install
	$(BIN)/python -m bench.bench_documents

clean:
	rm -rf $(VENV) instance/portal.db
