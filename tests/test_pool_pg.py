"""Pooled connections closed by the server while idle (PostgreSQL, real connections): the next
request gets a live one; a connection used moments ago is not pinged first."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from portal import create_app
from portal.extensions import db


def _own_pool_app(app, idle_ping_seconds: float):
    """The test database behind a pool of its own, so that its connections can be killed."""
    return create_app({**app.config, "DB_IDLE_PING_SECONDS": idle_ping_seconds,
                       "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0}})


@pytest.fixture
def own_pool_app(app):
    isolated = _own_pool_app(app, 10.0)
    yield isolated
    with isolated.app_context():
        db.engine.dispose()


@pytest.fixture
def pinging_pool_app(app):
    """Every checkout counts as idle long enough to be pinged."""
    isolated = _own_pool_app(app, 0.0)
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


def test_a_connection_killed_while_idle_is_replaced_before_use(pinging_pool_app):
    with pinging_pool_app.app_context():
        first = _backend_pid()
        _terminate(pinging_pool_app, first)
        assert _backend_pid() != first
        db.session.remove()


def test_a_pinged_connection_is_handed_over_outside_a_transaction(pinging_pool_app):
    with pinging_pool_app.app_context():
        _backend_pid()
        with db.engine.connect() as connection:
            status = connection.connection.dbapi_connection.info.transaction_status
            assert status == psycopg.pq.TransactionStatus.IDLE


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
