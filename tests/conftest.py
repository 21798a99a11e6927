"""Fixtures: the app on SQLite (default) or PostgreSQL (TEST_DATABASE_URL), a clean database per test."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from portal import create_app
from portal.config import TestConfig
from portal.extensions import db

from . import factories

IS_POSTGRES = os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql")

# Tests that only make sense with several real connections (row locks, SKIP LOCKED) are
# collected in the PostgreSQL half of the suite, which `make test` always runs in CI.
collect_ignore_glob = [] if IS_POSTGRES else ["*_pg.py"]


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    url = os.environ.get("TEST_DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    )
    config = type("SuiteConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": url})
    app = create_app(config)
    yield app
    with app.app_context():
        db.engine.dispose()  # close pooled connections before the interpreter does


@pytest.fixture(scope="session")
def _schema(app):
    with app.app_context():
        if IS_POSTGRES:
            db.drop_all()
            db.create_all()
        else:
            _recreate_sqlite_schema()
    yield


@pytest.fixture(autouse=True)
def app_ctx(app, _schema):
    """Each test runs in an app context on an empty database."""
    with app.app_context():
        yield
        db.session.remove()
        _empty_database()


def _empty_database() -> None:
    if IS_POSTGRES:
        tables = ", ".join(f'"{table.name}"' for table in db.metadata.sorted_tables)
        with db.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    else:
        _recreate_sqlite_schema()


def _recreate_sqlite_schema() -> None:
    """Issued invoices refuse DELETE (a trigger), so SQLite starts over with a fresh schema;
    foreign keys are off meanwhile because quote and invoice reference each other."""
    with db.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        db.metadata.drop_all(connection)
        db.metadata.create_all(connection)
        connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make():
    """The factories (tests/factories.py), e.g. `make.organisation(name="ACME")`."""
    return factories
