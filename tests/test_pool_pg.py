"""Pooled connections closed by the server while idle (PostgreSQL, real connections): the next
request gets a live one; a connection used moments ago is not pinged first."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

import portal
from portal import create_app
from portal.extensions import db


@pytest.fixture
def own_pool_app(app):
    """The test database behind a pool of its own, so that its connections can be killed."""
    isolated = create_app({**app.config, "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0}})
    yield isolated
    with isolated.app_context():
        db.engine.dispose()


def _backend_pid() -> int:
    pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    db.session.rollback()  # back to the pool
    return pid


def _terminate(app, pid: int) -> None:
    killer = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], isolation_level="AUTOCOMMIT")
    with killer.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    killer.dispose()


def test_a_connection_killed_while_idle_is_replaced_before_use(own_pool_app, monkeypatch):
    with own_pool_app.app_context():
        first = _backend_pid()
        _terminate(own_pool_app, first)
        monkeypatch.setattr(portal, "IDLE_BEFORE_PING_SECONDS", 0.0)  # it has been idle long enough
        assert _backend_pid() != first
        db.session.remove()


def test_a_connection_used_moments_ago_is_not_pinged(own_pool_app):
    """The other side of the trade: no round trip before a busy server's queries, so a connection
    killed between two requests fails the one request that finds it, and the pool then recovers."""
    with own_pool_app.app_context():
        first = _backend_pid()
        _terminate(own_pool_app, first)
        with pytest.raises(OperationalError):
            _backend_pid()
        db.session.rollback()
        assert _backend_pid() != first
        db.session.remove()
