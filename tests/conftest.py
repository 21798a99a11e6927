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
    return create_app(config)


@pytest.fixture(scope="session")
def _schema(app):
    with app.app_context():
        db.drop_all()
        db.create_all()
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
        # Issued invoices refuse DELETE (a trigger), so SQLite starts over with a fresh schema.
        db.drop_all()
        db.create_all()


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
