"""PostgreSQL: a page served outside a transaction ends without a ROLLBACK, so the statements
psycopg prepared for it are still prepared for the next request (a ROLLBACK discards them all)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from portal import create_app
from portal.extensions import db

from ..conftest import IsolatedClient
from ..web import sign_in

pytestmark = pytest.mark.perf


@pytest.fixture
def one_connection_app(app):
    """The test database behind a pool of one connection: every request uses the same one."""
    isolated = create_app({**app.config, "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0}})
    isolated.test_client_class = IsolatedClient
    yield isolated
    with isolated.app_context():
        db.engine.dispose()


def _prepared_statements(app) -> list[str]:
    with app.app_context():
        statements = list(db.session.scalars(text("SELECT statement FROM pg_prepared_statements")))
        db.session.remove()
        return statements


def test_prepared_statements_outlive_a_read_only_page(one_connection_app, make):
    world = make.world()
    db.session.commit()
    client = one_connection_app.test_client()
    sign_in(client, world["admin"])
    for _ in range(8):  # psycopg prepares a statement from its sixth execution
        assert client.get("/admin/recherche?q=Organisation").status_code == 200
    prepared = _prepared_statements(one_connection_app)
    assert any("FROM organisation" in statement for statement in prepared)
    assert any('FROM "user"' in statement for statement in prepared)
