"""The database connections' behaviour: SQLite's per-connection settings and quirks, and the
check of a pooled connection that was left idle."""

from __future__ import annotations

import logging
import time

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError

from .extensions import db

log = logging.getLogger(__name__)


def register(app: Flask) -> None:
    """Check this app's pooled connections after DB_IDLE_PING_SECONDS idle (see IdlePing), and end
    each request's session even when its connection died under it (see end_session)."""
    with app.app_context():
        for engine in db.engines.values():
            IdlePing(float(app.config["DB_IDLE_PING_SECONDS"])).listen(engine)
    # Registered after Flask-SQLAlchemy's own teardown, so it runs first (teardowns run in reverse).
    app.teardown_appcontext(end_session)


def end_session(_exception: BaseException | None = None) -> None:
    """Close the request's session. A connection killed once the response was ready (a database
    restart, a terminated backend) fails the closing ROLLBACK: the pool discards that connection,
    and the answer already made stands, instead of becoming a 500 after the fact."""
    try:
        db.session.remove()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        log.warning("Database connection lost while ending a request: %s", type(error.orig).__name__)


class IdlePing:
    """A connection left idle in the pool may have been closed by the server (a restart, an idle
    timeout): it is tried with SELECT 1 first, and a dead one is replaced (DisconnectionError has
    the pool connect again). One checked in moments ago, as on a busy server, is used at once:
    pinging on every checkout (pool_pre_ping) cost each request two round trips on PostgreSQL.
    A server restarted under load fails at most the one request that finds each connection dead;
    the pool then replaces its connections."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds

    def listen(self, engine: Engine) -> None:
        event.listen(engine, "checkin", self.note_checkin)
        event.listen(engine, "checkout", self.ping_after_idle)

    @staticmethod
    def note_checkin(dbapi_connection, connection_record) -> None:
        connection_record.info["checked_in_at"] = time.monotonic()

    def ping_after_idle(self, dbapi_connection, connection_record, connection_proxy) -> None:
        checked_in_at = connection_record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < self.idle_seconds:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            # psycopg opened a transaction for the SELECT: end it, so that the connection is
            # handed over idle, as the pool promises (a read-only page then switches it to
            # autocommit, which psycopg refuses inside a transaction).
            dbapi_connection.rollback()
        except Exception as error:  # the driver's own error class: any of them means "not usable"
            raise DisconnectionError() from error


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """SQLite enforces foreign keys only when asked, per connection."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


@event.listens_for(Engine, "handle_error")
def _sqlite_integer_overflow_is_a_data_error(context):
    """An integer beyond 64 bits (an id typed in a URL or a form…) makes sqlite3 raise a bare
    OverflowError where PostgreSQL's driver raises a DataError: make both a DataError, which the
    app refuses as invalid input (errors.py) instead of failing with a 500."""
    if context.dialect.name == "sqlite" and isinstance(context.original_exception, OverflowError):
        return DataError(context.statement, context.parameters, context.original_exception)
    return None


@event.listens_for(Engine, "savepoint")
def _sqlite_savepoint_inside_a_transaction(connection, name) -> None:
    """Python's sqlite3 opens a transaction only before a write: a SAVEPOINT taken after reads
    alone would open one itself, and its RELEASE would COMMIT everything (a claimed form token,
    a processed webhook event…) even if the caller rolls back later. BEGIN first, as PostgreSQL."""
    if connection.dialect.name == "sqlite":
        dbapi_connection = connection.connection.dbapi_connection
        if not dbapi_connection.in_transaction:
            dbapi_connection.execute("BEGIN")
