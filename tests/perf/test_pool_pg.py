"""PostgreSQL, the pool's check of a connection left idle (portal/database.py): a pinged connection
is handed over outside a transaction (a read-only page then switches it to autocommit), and one
used moments ago is not pinged at all: no round trip before a busy server's queries. That a killed
connection costs at most one request, answered 503: tests/test_pool_pg.py."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from portal.extensions import db

from ..test_pool_pg import _backend_pid, _terminate

pytestmark = pytest.mark.perf


def test_a_pinged_connection_is_handed_over_outside_a_transaction(pinging_pool_app):
    with pinging_pool_app.app_context():
        _backend_pid()
        with db.engine.connect() as connection:
            status = connection.connection.dbapi_connection.info.transaction_status
            assert status == psycopg.pq.TransactionStatus.IDLE


def test_a_connection_used_moments_ago_is_not_pinged(own_pool_app):
    """The other side of the trade: a connection killed between two requests fails the one request
    that finds it, and the pool then recovers."""
    with own_pool_app.app_context():
        first = _backend_pid()
        _terminate(own_pool_app, first)
        with pytest.raises(OperationalError):
            _backend_pid()
        db.session.rollback()
        assert _backend_pid() != first
        db.session.remove()
