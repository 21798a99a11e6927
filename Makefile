# Portail Devis — the README's two commands are `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
FLASK := $(BIN)/flask --app wsgi
STAMP := $(VENV)/.installed
TEST_PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: run test test-sqlite test-pg lint bench install clean translations-update example-platform

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
# Without STRIPE_SECRET_KEY, card payments go to localstripe on 127.0.0.1 (state kept in instance/),
# whose webhooks come back to /webhooks/stripe: pay the demo invoice with the card 4242424242424242.
# Every email link points at this server (PORT) unless PORTAL_BASE_URL names another address (a
# proxy's): exported to every command below, the demo load and the outbox worker included.
run: export PORTAL_BASE_URL := $(or $(PORTAL_BASE_URL),http://127.0.0.1:$(PORT))
run: install
	$(FLASK) db upgrade
	$(FLASK) demo load
	@trap 'kill $$server $$worker $$stripe 2>/dev/null; wait' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	if [ -z "$$STRIPE_SECRET_KEY" ]; then \
		stripe_port=$$($(BIN)/python -m portal.devserver free-port) || exit 1; \
		export STRIPE_API_BASE=http://127.0.0.1:$$stripe_port \
			STRIPE_JS_URL=http://127.0.0.1:$$stripe_port/js.stripe.com/v3/ \
			STRIPE_SECRET_KEY=sk_test_localstripe STRIPE_PUBLISHABLE_KEY=pk_test_localstripe \
			STRIPE_WEBHOOK_SECRET=whsec_$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(24))'); \
		$(BIN)/python -m portal.devserver localstripe --port $$stripe_port --store instance/localstripe.pickle \
			--webhook-url http://127.0.0.1:$(PORT)/webhooks/stripe & stripe=$$!; \
		$(BIN)/python -m portal.devserver wait $$STRIPE_JS_URL || exit 1; \
	fi; \
	$(FLASK) outbox work & worker=$$!; \
	$(FLASK) run --host 127.0.0.1 --port $(PORT) & server=$$!; \
	wait $$server

# The example host platform (examples/host_platform/README.md) on PLATFORM_PORT, beside the portal
# of `make run` on PORT (both started here; Ctrl-C stops both): the platform gets a new API key,
# its users are the demo's clients (their organisations' external_id: compte-martin, compte-dupont),
# and the portal lets the platform's origin frame it. Open http://127.0.0.1:5050.
# The platform subscribes to the portal's events once: the first time, `flask webhooks add` creates
# its endpoint and the secret it prints (once) is kept in PLATFORM_WEBHOOK_SECRET (mode 600); the
# next times the endpoint of that URL is found and the file reused (the file gone: the endpoint's
# secret is rotated, the new one kept). `make run`'s worker delivers the events.
# (`make -n example-platform` runs its recipe anyway: it calls $(MAKE).)
PLATFORM_PORT ?= 5050
PLATFORM_SCOPES := organisations:read credits:read credits:consume sessions:write
PLATFORM_EVENTS := quote.accepted invoice.paid credits.granted
PLATFORM_WEBHOOK_URL = http://127.0.0.1:$(PLATFORM_PORT)/webhooks/portail
PLATFORM_WEBHOOK_SECRET = instance/host_platform_webhook_secret-$(PLATFORM_PORT)

example-platform: install
	$(FLASK) db upgrade
	$(FLASK) demo load
	@endpoint=$$($(FLASK) webhooks list | awk '$$2 == "$(PLATFORM_WEBHOOK_URL)" { print $$1; exit }'); \
	umask 077; \
	if [ -z "$$endpoint" ]; then \
		$(FLASK) webhooks add $(PLATFORM_WEBHOOK_URL) --description "Plateforme d'exemple" \
			$(PLATFORM_EVENTS:%=--event %) > $(PLATFORM_WEBHOOK_SECRET) || exit 1; \
	elif [ ! -s $(PLATFORM_WEBHOOK_SECRET) ]; then \
		$(FLASK) webhooks rotate $$endpoint --yes > $(PLATFORM_WEBHOOK_SECRET) || exit 1; \
	fi
	@secret=$$($(FLASK) api-keys create "Plateforme d'exemple" $(PLATFORM_SCOPES:%=--scope %)) || exit 1; \
	PORTAL_URL=http://127.0.0.1:$(PORT) PORTAL_API_KEY=$$secret \
		PORTAL_WEBHOOK_SECRET=$$(cat $(PLATFORM_WEBHOOK_SECRET)) \
		$(BIN)/flask --app examples.host_platform.app run --host 127.0.0.1 --port $(PLATFORM_PORT) & platform=$$!; \
	trap 'kill $$platform 2>/dev/null; wait' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	echo "Plateforme d'exemple : http://127.0.0.1:$(PLATFORM_PORT) (gestionnaire@martin.example / plateforme-2026)"; \
	PORTAL_BASE_URL=$${PORTAL_BASE_URL:-http://127.0.0.1:$(PORT)} \
		PORTAL_FRAME_ANCESTORS="'self' http://127.0.0.1:$(PLATFORM_PORT)" $(MAKE) --no-print-directory run

# `make run` on the local PostgreSQL instead of SQLite: the same steps, with the database PG_URL
# (portail by default) created first if it does not exist.
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/portail

define CREATE_PG_DATABASE
import sys
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url
url = make_url(sys.argv[1])
with psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                     dbname="postgres", autocommit=True) as connection:
    if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone() is None:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
        print(f"Base {url.database} créée.")
endef
export CREATE_PG_DATABASE

.PHONY: run-pg
run-pg: install
	@$(BIN)/python -c "$$CREATE_PG_DATABASE" "$(PG_URL)"
	DATABASE_URL="$(PG_URL)" $(MAKE) run

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

# PostgreSQL under gunicorn (4 workers) for SOAK_SECONDS (180): mixed back-office and portal traffic
# with quiet spells past the idle-ping threshold and every database connection killed halfway; fails
# on any 500 (tests/soak.py). Needs PostgreSQL (SOAK_PG_URL, database portail_soak) and Redis.
.PHONY: soak
soak: install
	$(BIN)/python -m tests.soak

# The browser journeys alone (tests/e2e: Playwright driving Debian's Chromium against the app, SMTP and
# localstripe they start themselves); `make test` runs them too, in its SQLite half.
.PHONY: e2e
e2e: install
	$(BIN)/pytest tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check .

# Documents, then the performance table (issue 9): SQLite and PostgreSQL (BENCH_PG_URL, default
# postgres@127.0.0.1:5432), small and large datasets generated once into instance/bench/ and the
# bench_* databases. Run it on a quiet machine; `python -m bench.run --help` for a partial run.
bench: install
	$(BIN)/python -m bench.bench_documents
	$(BIN)/python -m bench.pdf_burst
	$(BIN)/python -m bench.api_consumption
	$(BIN)/python -m bench.webhooks
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) instance/portal.db
