"""`flask db upgrade` from empty builds exactly the models' schema (SQLite, and PostgreSQL in its half)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, make_url, text
from sqlalchemy.exc import DatabaseError

from portal import create_app
from portal.config import TestConfig
from portal.extensions import db
from portal.schema_guards import (
    ORGANISATION_NAME_SEARCH,
    built_on,
    compared_by_name,
    index_names,
    trigger_definitions,
)

from .conftest import IS_POSTGRES

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def _empty_database(tmp_path, name: str = "migrated"):
    """A brand-new empty database of the suite's kind; dropped afterwards."""
    if not IS_POSTGRES:
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    base = make_url(os.environ["TEST_DATABASE_URL"])
    name = f"portal_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# SQLite's reflection cannot read an expression index (lower(name)): it is checked by name below.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_upgrade_from_empty_matches_the_models(tmp_path):
    with _empty_database(tmp_path) as url:
        _flask_db(url, "upgrade")
        app = create_app(_config(url))
        with app.app_context():
            with db.engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={
                    "compare_type": True, "include_object": built_on(connection.dialect.name),
                    "include_name": compared_by_name})
                assert compare_metadata(context, db.metadata) == []
                assert _invoice_triggers(connection) >= 2
                # SQLite's name search reads its FTS5 table, kept in step by three triggers.
                assert _name_search_triggers(connection) == (3 if connection.dialect.name == "sqlite" else 0)
                # SQLite's name search reads this index (results in its order); PostgreSQL's, the
                # trigram index of the folded names only.
                indexes = index_names(connection, "organisation")
                on_sqlite = connection.dialect.name == "sqlite"
                assert ("ix_organisation_folded_name" in indexes) == on_sqlite
                assert ("ix_organisation_folded_name_trgm" in indexes) == (not on_sqlite)
                assert not indexes & {"ix_organisation_lower_name", "ix_organisation_name_trgm"}
            db.engine.dispose()


def _flask_db(url: str, *arguments: str) -> None:
    """`flask db …` on `url`: the real command, in its own process, as `make run` and deployments use it."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", *arguments],
        env={**os.environ, "DATABASE_URL": url}, cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr


def _config(url: str):
    return type("MigrationConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": url})


def _triggers(url: str, *, create_all: bool = False) -> dict[str, str]:
    """The database's triggers by name (with their definitions); `create_all` builds the schema
    from the models first, as the tests' own databases are built."""
    app = create_app(_config(url))
    with app.app_context():
        if create_all:
            db.create_all()
        with db.engine.connect() as connection:
            triggers = trigger_definitions(connection)
        db.engine.dispose()
    return triggers


EVIDENCE_TABLES = ("audit_event", "decision", "credit_entry", "terms_version")
EVIDENCE_TRIGGERS = {
    "sqlite": {f"{table}_no_{operation}" for table in EVIDENCE_TABLES for operation in ("update", "delete")},
    "postgresql": {f"{table}_guard" for table in EVIDENCE_TABLES},
}


def test_upgrade_from_empty_builds_the_models_triggers_and_they_refuse(tmp_path):
    """Alembic compares no triggers: these are compared here, name and definition, with the ones
    the models' schema gets (create_all); the evidence triggers refuse on the migrated database,
    and downgrading 0006 takes them and decision.actor_role away."""
    dialect = "postgresql" if IS_POSTGRES else "sqlite"
    with _empty_database(tmp_path) as url, _empty_database(tmp_path, "created") as created_url:
        _flask_db(url, "upgrade")
        migrated = _triggers(url)
        assert migrated == _triggers(created_url, create_all=True)
        assert EVIDENCE_TRIGGERS[dialect] <= set(migrated)

        engine = create_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO audit_event (action, object_type, details, created_at) "
                                        "VALUES ('test', 'test', '{}', CURRENT_TIMESTAMP)"))
                connection.execute(text("INSERT INTO terms_version (version_label, body, created_at) "
                                        "VALUES ('v1', 'CGV', CURRENT_TIMESTAMP)"))
                # Publishing a draft is an UPDATE, and allowed.
                connection.execute(text("UPDATE terms_version SET published_at = CURRENT_TIMESTAMP"))
            for statement in ("UPDATE audit_event SET action = 'forged'", "DELETE FROM audit_event",
                              "UPDATE terms_version SET body = 'forged'", "DELETE FROM terms_version"):
                with pytest.raises(DatabaseError, match="never"), engine.begin() as connection:
                    connection.execute(text(statement))
            with engine.connect() as connection:
                assert connection.execute(text("SELECT action FROM audit_event")).scalars().all() == ["test"]
                assert connection.execute(text("SELECT body FROM terms_version")).scalars().all() == ["CGV"]
        finally:
            engine.dispose()

        _flask_db(url, "downgrade", "0005")
        assert not EVIDENCE_TRIGGERS[dialect] & set(_triggers(url))
        engine = create_engine(url)
        try:
            assert "actor_role" not in {column["name"] for column in inspect(engine).get_columns("decision")}
        finally:
            engine.dispose()
        _flask_db(url, "upgrade")
        assert _triggers(url) == migrated


def _name_search_triggers(connection) -> int:
    if connection.dialect.name != "sqlite":
        return 0
    query = text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'organisation' "
                 "AND name LIKE :prefix AND EXISTS (SELECT 1 FROM sqlite_master WHERE name = :table)")
    return connection.execute(query, {"prefix": f"{ORGANISATION_NAME_SEARCH}_%",
                                      "table": ORGANISATION_NAME_SEARCH}).scalar_one()


def _invoice_triggers(connection) -> int:
    if connection.dialect.name == "sqlite":
        query = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'invoice%'"
    else:
        query = ("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal "
                 "AND tgrelid::regclass::text IN ('invoice', 'invoice_line')")
    return connection.execute(text(query)).scalar_one()



def test_upgrading_a_database_with_data_fills_the_new_columns_from_it(tmp_path):
    """0014 and 0015 on a database that already has organisations, members and a ledger: the folded
    names and email domains are filled from what is there, each stored balance is its ledger's sum,
    and from then on the database keeps it."""
    with _empty_database(tmp_path, "with-data") as url:
        _flask_db(url, "upgrade", "0013")
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO organisation (id, name, country, billing_mode, payment_terms_days,"
                " staff_validation_allowed, event_sequence, created_at) VALUES"
                " (1, 'Cabinet Lefèvre & Associés', 'FR', 'per_order', 30, false, 0, '2026-01-01'),"
                " (2, 'Sans crédits', 'FR', 'per_order', 30, false, 0, '2026-01-01')"))
            connection.execute(text(
                "INSERT INTO \"user\" (id, email, full_name, kind, client_role, organisation_id, active,"
                " created_at, session_version) VALUES (1, 'Claire@Lefevre-Associes.fr', 'Claire', 'client',"
                " 'responsable', 1, true, '2026-01-01', 0)"))
            connection.execute(text(
                "INSERT INTO credit_entry (organisation_id, kind, amount, reason, created_at) VALUES"
                " (1, 'adjustment', 100, 'Solde', '2026-01-02'),"
                " (1, 'consumption', -30, 'Analyse', '2026-01-03')"))
        _flask_db(url, "upgrade")
        with engine.begin() as connection:
            folded = connection.execute(text("SELECT folded_name FROM organisation WHERE id = 1")).scalar()
            assert folded == "cabinet lefevre & associes"
            domain = connection.execute(text('SELECT email_domain FROM "user"')).scalar()
            assert domain == "lefevre-associes.fr"
            balances = dict(connection.execute(text("SELECT id, credit_balance FROM organisation")).all())
            assert balances == {1: 70, 2: 0}
            connection.execute(text(
                "INSERT INTO credit_entry (organisation_id, kind, amount, reason, created_at)"
                " VALUES (2, 'adjustment', 5, 'Geste', '2026-01-04')"))
            balances = dict(connection.execute(text("SELECT id, credit_balance FROM organisation")).all())
            assert balances == {1: 70, 2: 5}
        engine.dispose()
