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
from sqlalchemy import create_engine, make_url, text

from portal import create_app
from portal.config import TestConfig
from portal.extensions import db
from portal.models import ORGANISATION_NAME_SEARCH, built_on, compared_by_name, index_names

from .conftest import IS_POSTGRES

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def _empty_database(tmp_path):
    """A brand-new empty database of the suite's kind; dropped afterwards."""
    if not IS_POSTGRES:
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
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
        # The real command, in its own process, as `make run` and deployments use it.
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            env={**os.environ, "DATABASE_URL": url}, cwd=ROOT, capture_output=True, text=True,
        )
        assert result.returncode == 0, result.stderr
        config = type("MigrationConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": url})
        app = create_app(config)
        with app.app_context():
            with db.engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={
                    "compare_type": True, "include_object": built_on(connection.dialect.name),
                    "include_name": compared_by_name})
                assert compare_metadata(context, db.metadata) == []
                assert _invoice_triggers(connection) >= 2
                # SQLite's name search reads its FTS5 table, kept in step by three triggers.
                assert _name_search_triggers(connection) == (3 if connection.dialect.name == "sqlite" else 0)
                # SQLite's name search reads this index; PostgreSQL's, the trigram index only.
                assert (("ix_organisation_lower_name" in index_names(connection, "organisation"))
                        == (connection.dialect.name == "sqlite"))
            db.engine.dispose()


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

