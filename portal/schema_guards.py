"""What keeps evidence immutable beside the models: the ORM's flush guard, and the database
triggers (SQLite and PostgreSQL) attached to the tables' creation, so that `create_all` (the tests,
the benchmark) builds them as the migrations do. Also the SQLite name search table and its
triggers, and the helpers Alembic and the tests use to compare the migrated schema with the models.

Imported by the app factory (portal/__init__.py) and by migrations/env.py: the listeners attach at
import. A migration never imports these statements: it copies them as they are when it is written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import DDL, event, inspect, select, text
from sqlalchemy.orm import Session

from .models import (
    AuditEvent,
    CreditEntry,
    Decision,
    Invoice,
    InvoiceLifecycleEvent,
    InvoiceLine,
    Organisation,
    TermsVersion,
)

# --- The ORM's guard --------------------------------------------------------------------------
# An issued invoice is never modified (beyond its status and its stored PDF) nor deleted; a
# published CGV version never changes. The ORM refuses it here, with a named domain error; the
# database triggers below refuse it for any other writer.

INVOICE_MUTABLE_COLUMNS = {"status", "paid_at", "cancelled_at", "pdf", "pdf_sha256"}
INVOICE_WRITE_ONCE_COLUMNS = {"pdf", "pdf_sha256"}


@event.listens_for(Session, "before_flush")
def _guard_immutable_records(session: Session, flush_context: Any, instances: Any) -> None:
    from .exceptions import InvoiceImmutable, TermsPublished

    for obj in session.deleted:
        if isinstance(obj, (Invoice, InvoiceLine)):
            raise InvoiceImmutable()
    for obj in session.dirty:
        state = inspect(obj)
        if isinstance(obj, InvoiceLine) and state.persistent and _changed(state):
            raise InvoiceImmutable()
        if isinstance(obj, Invoice) and state.persistent:
            changed = _changed(state)
            if changed - INVOICE_MUTABLE_COLUMNS:
                raise InvoiceImmutable()
            if changed & INVOICE_WRITE_ONCE_COLUMNS and _pdf_stored(session, obj.id):
                raise InvoiceImmutable()
        if isinstance(obj, TermsVersion) and state.persistent:
            history = state.attrs.published_at.history
            published_before = (list(history.deleted) or list(history.unchanged) or [None])[0]
            if published_before is not None and _changed(state):
                raise TermsPublished()


def _pdf_stored(session: Session, invoice_id: int) -> bool:
    """Asked of the database: `pdf` is deferred, so the ORM may not know its stored value."""
    stored = select(Invoice.id).where(
        Invoice.id == invoice_id, (Invoice.pdf.is_not(None)) | (Invoice.pdf_sha256.is_not(None))
    )
    return session.connection().execute(stored).first() is not None


def _changed(state: Any) -> set[str]:
    return {attr.key for attr in state.attrs if attr.history.has_changes()}


def _on_create(table, dialect: str, statements: list[str]) -> None:
    """Run `statements` on `dialect` right after `table` is created (create_all, table.create)."""
    for statement in statements:
        # DDL() formats its text with % (%(table)s…): a literal % of the SQL is written %%.
        event.listen(table, "after_create",
                     DDL(statement.replace("%", "%%")).execute_if(dialect=dialect))


# --- Issued invoices: database triggers -------------------------------------------------------

_FROZEN_INVOICE_COLUMNS = (
    "kind", "number", "organisation_id", "quote_id", "billing_period", "credited_invoice_id",
    "currency", "issue_date", "due_date", "sale_date", "total_ht_cents", "total_vat_cents",
    "total_ttc_cents", "seller", "buyer", "issued_at",
)

SQLITE_INVOICE_TRIGGERS = [
    "CREATE TRIGGER invoice_no_delete BEFORE DELETE ON invoice "
    "BEGIN SELECT RAISE(ABORT, 'issued invoices are never deleted'); END",
    f"CREATE TRIGGER invoice_frozen BEFORE UPDATE OF {', '.join(_FROZEN_INVOICE_COLUMNS)} ON invoice "
    "BEGIN SELECT RAISE(ABORT, 'issued invoices are never modified'); END",
    "CREATE TRIGGER invoice_pdf_once BEFORE UPDATE OF pdf, pdf_sha256 ON invoice "
    "WHEN OLD.pdf IS NOT NULL OR OLD.pdf_sha256 IS NOT NULL "
    "BEGIN SELECT RAISE(ABORT, 'a stored invoice PDF is never replaced'); END",
    "CREATE TRIGGER invoice_line_no_delete BEFORE DELETE ON invoice_line "
    "BEGIN SELECT RAISE(ABORT, 'invoice lines are never deleted'); END",
    "CREATE TRIGGER invoice_line_frozen BEFORE UPDATE ON invoice_line "
    "BEGIN SELECT RAISE(ABORT, 'invoice lines are never modified'); END",
]

_PG_FROZEN_CHECK = " OR ".join(
    f"NEW.{column}::text IS DISTINCT FROM OLD.{column}::text" for column in _FROZEN_INVOICE_COLUMNS
)
POSTGRESQL_INVOICE_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION invoice_guard() RETURNS trigger AS $$ BEGIN "
    "IF TG_OP = 'DELETE' THEN RAISE EXCEPTION 'issued invoices are never deleted'; END IF; "
    f"IF {_PG_FROZEN_CHECK} THEN RAISE EXCEPTION 'issued invoices are never modified'; END IF; "
    "IF (OLD.pdf IS NOT NULL OR OLD.pdf_sha256 IS NOT NULL) AND (NEW.pdf IS DISTINCT FROM OLD.pdf "
    "OR NEW.pdf_sha256 IS DISTINCT FROM OLD.pdf_sha256) THEN "
    "RAISE EXCEPTION 'a stored invoice PDF is never replaced'; END IF; "
    "RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER invoice_guard BEFORE UPDATE OR DELETE ON invoice "
    "FOR EACH ROW EXECUTE FUNCTION invoice_guard()",
    "CREATE OR REPLACE FUNCTION invoice_line_guard() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION 'invoice lines are never modified or deleted'; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER invoice_line_guard BEFORE UPDATE OR DELETE ON invoice_line "
    "FOR EACH ROW EXECUTE FUNCTION invoice_line_guard()",
]

_on_create(InvoiceLine.__table__, "sqlite", SQLITE_INVOICE_TRIGGERS)
_on_create(InvoiceLine.__table__, "postgresql", POSTGRESQL_INVOICE_TRIGGERS)

# --- Evidence: audit events, decisions, credit entries, published CGV --------------------------
# Append-only: no UPDATE, no DELETE, by any writer (DESIGN.md §4). A CGV version is written while a
# draft and published by one UPDATE (published_at set); from then on it is refused both.
# Emptying a whole table (TRUNCATE on PostgreSQL, as the tests do between tests) fires no row trigger.

# table → (what the message calls its rows, the condition under which they are frozen)
EVIDENCE_TABLES = {
    AuditEvent.__table__: ("audit events", None),
    Decision.__table__: ("decisions", None),
    CreditEntry.__table__: ("credit entries", None),
    InvoiceLifecycleEvent.__table__: ("invoice lifecycle events", None),
    TermsVersion.__table__: ("published CGV versions", "OLD.published_at IS NOT NULL"),
}


def _sqlite_evidence_triggers(table: str, rows: str, frozen_when: str | None) -> list[str]:
    when = f"WHEN {frozen_when} " if frozen_when else ""
    return [
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} {when}"
        f"BEGIN SELECT RAISE(ABORT, '{rows} are never modified'); END",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} {when}"
        f"BEGIN SELECT RAISE(ABORT, '{rows} are never deleted'); END",
    ]


# One function for the four tables; the trigger passes the rows' name for the message.
POSTGRESQL_EVIDENCE_FUNCTION = (
    "CREATE OR REPLACE FUNCTION evidence_guard() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION '% are never %', TG_ARGV[0], "
    "CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'modified' END; END $$ LANGUAGE plpgsql"
)


def _postgresql_evidence_triggers(table: str, rows: str, frozen_when: str | None) -> list[str]:
    when = f"WHEN ({frozen_when}) " if frozen_when else ""
    return [
        POSTGRESQL_EVIDENCE_FUNCTION,  # OR REPLACE: each table may be created alone
        f"CREATE TRIGGER {table}_guard BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW {when}"
        f"EXECUTE FUNCTION evidence_guard('{rows}')",
    ]


SQLITE_EVIDENCE_TRIGGERS: dict[str, list[str]] = {}
POSTGRESQL_EVIDENCE_TRIGGERS: dict[str, list[str]] = {}
for _table, (_rows, _when) in EVIDENCE_TABLES.items():
    SQLITE_EVIDENCE_TRIGGERS[_table.name] = _sqlite_evidence_triggers(_table.name, _rows, _when)
    POSTGRESQL_EVIDENCE_TRIGGERS[_table.name] = _postgresql_evidence_triggers(_table.name, _rows, _when)
    _on_create(_table, "sqlite", SQLITE_EVIDENCE_TRIGGERS[_table.name])
    _on_create(_table, "postgresql", POSTGRESQL_EVIDENCE_TRIGGERS[_table.name])

# --- Credit balances: kept by the database ----------------------------------------------------
# Each credit entry adds its amount to its organisation's stored balance in the inserting statement,
# whoever inserts it (the domain, a bulk load, a test), so the balance is always the ledger's sum.

SQLITE_CREDIT_BALANCE_TRIGGERS = [
    "CREATE TRIGGER credit_entry_balance AFTER INSERT ON credit_entry BEGIN "
    "UPDATE organisation SET credit_balance = credit_balance + new.amount "
    "WHERE id = new.organisation_id; END",
]
POSTGRESQL_CREDIT_BALANCE_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION credit_entry_balance() RETURNS trigger AS $$ BEGIN "
    "UPDATE organisation SET credit_balance = credit_balance + NEW.amount "
    "WHERE id = NEW.organisation_id; RETURN NULL; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER credit_entry_balance AFTER INSERT ON credit_entry FOR EACH ROW "
    "EXECUTE FUNCTION credit_entry_balance()",
]
_on_create(CreditEntry.__table__, "sqlite", SQLITE_CREDIT_BALANCE_TRIGGERS)
_on_create(CreditEntry.__table__, "postgresql", POSTGRESQL_CREDIT_BALANCE_TRIGGERS)

# --- Organisation name search -----------------------------------------------------------------

# ix_organisation_folded_name_trgm needs the pg_trgm extension (trusted: the database owner may
# create it).
event.listen(Organisation.__table__, "before_create",
             DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"))

# SQLite's counterpart of the trigram index: an FTS5 table of the organisations' folded names
# (Organisation.folded_name, trigram tokenizer, the names read from `organisation` itself), kept in
# step by triggers. The search bar reads it for a "name contains" of three letters or more instead
# of testing every name with LIKE.
ORGANISATION_NAME_SEARCH = "organisation_name_search"
SQLITE_NAME_SEARCH_DDL = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {ORGANISATION_NAME_SEARCH} USING fts5("
    "folded_name, content='organisation', content_rowid='id', tokenize='trigram')",
    f"CREATE TRIGGER {ORGANISATION_NAME_SEARCH}_insert AFTER INSERT ON organisation BEGIN "
    f"INSERT INTO {ORGANISATION_NAME_SEARCH}(rowid, folded_name) VALUES (new.id, new.folded_name); END",
    f"CREATE TRIGGER {ORGANISATION_NAME_SEARCH}_delete AFTER DELETE ON organisation BEGIN "
    f"INSERT INTO {ORGANISATION_NAME_SEARCH}({ORGANISATION_NAME_SEARCH}, rowid, folded_name) "
    "VALUES ('delete', old.id, old.folded_name); END",
    f"CREATE TRIGGER {ORGANISATION_NAME_SEARCH}_update AFTER UPDATE OF folded_name ON organisation BEGIN "
    f"INSERT INTO {ORGANISATION_NAME_SEARCH}({ORGANISATION_NAME_SEARCH}, rowid, folded_name) "
    "VALUES ('delete', old.id, old.folded_name); "
    f"INSERT INTO {ORGANISATION_NAME_SEARCH}(rowid, folded_name) VALUES (new.id, new.folded_name); END",
]
_on_create(Organisation.__table__, "sqlite", SQLITE_NAME_SEARCH_DDL)
event.listen(Organisation.__table__, "before_drop",
             DDL(f"DROP TABLE IF EXISTS {ORGANISATION_NAME_SEARCH}").execute_if(dialect="sqlite"))

# --- Comparing a migrated database with the models (Alembic, tests, the benchmark) ------------


def is_built_on(schema_item, dialect_name: str) -> bool:
    """False for what the models create only on another database (`.ddl_if(dialect=…)`)."""
    condition = getattr(schema_item, "_ddl_if", None)
    return condition is None or condition.dialect in (None, dialect_name)


def built_on(dialect_name: str):
    """Alembic's `include_object` for a database of `dialect_name`: what the models create only
    on another database is left out of the comparison, rather than reported missing."""

    def include(object_, name, type_, reflected, compare_to) -> bool:
        return is_built_on(object_, dialect_name)

    return include


def compared_by_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic's `include_name`: SQLite's name search table and the tables FTS5 keeps for it are
    made by SQL of their own (above), not by models, so the comparison leaves them out."""
    return not (type_ == "table" and name and name.startswith(ORGANISATION_NAME_SEARCH))


def index_names(connection, table: str) -> set[str]:
    """A table's index names, from the catalogue: reflection skips SQLite's expression indexes."""
    if connection.dialect.name == "sqlite":
        query = text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :table")
    else:
        query = text("SELECT indexname FROM pg_indexes WHERE tablename = :table")
    return set(connection.execute(query, {"table": table}).scalars())


def trigger_definitions(connection) -> dict[str, str]:
    """Every trigger of the database by name, with its definition (PostgreSQL: and its function's
    body): Alembic compares no triggers, so the tests compare these."""
    if connection.dialect.name == "sqlite":
        query = text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
    else:
        query = text("SELECT t.tgname, pg_get_triggerdef(t.oid) || ' ' || p.prosrc FROM pg_trigger t "
                     "JOIN pg_proc p ON p.oid = t.tgfoid WHERE NOT t.tgisinternal")
    return {name: " ".join(definition.split()) for name, definition in connection.execute(query)}
