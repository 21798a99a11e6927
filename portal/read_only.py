"""Pages that only read, served outside a transaction.

A request's statements normally share one transaction, ended by a ROLLBACK when nothing was
committed. On PostgreSQL a page that only reads pays for it twice: two round trips (BEGIN and
ROLLBACK), and psycopg forgets its prepared statements at every ROLLBACK, so each statement of
every page is parsed and planned again. The GET pages listed here read and never write: there
they run in autocommit mode, each statement on its own snapshot (each reads what it shows in one
go), and their prepared statements live on. A write sent from one of them is refused before it
reaches the database, so that it can never be committed on its own.
"""

from __future__ import annotations

from flask import Flask, request
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .extensions import db

# The busiest pages. Back office: the home (queues and search), its suggestions, the quote list,
# an organisation's tabs. Portal: the quote list and page, the invoice list and page, the credits.
READ_ONLY_ENDPOINTS = frozenset({
    "admin.index", "admin.suggest", "quote_list.index", "organisation.page",
    "client.quote_list", "client.quote_page", "client.invoice_list", "client.invoice_page",
    "client.credits",
})
READ_ONLY = "portal_read_only"


class WriteOnReadOnlyPage(RuntimeError):
    """A statement other than SELECT was sent while serving a page of READ_ONLY_ENDPOINTS."""


def begin_read_only_request() -> None:
    """before_request: the listed GET pages take their connection read-only, in autocommit mode
    but on SQLite, whose driver opens no transaction for reads (and would send a PRAGMA to leave
    autocommit when the connection goes back to the pool)."""
    if request.method in ("GET", "HEAD") and request.endpoint in READ_ONLY_ENDPOINTS:
        options: dict = {READ_ONLY: True}
        if db.session.get_bind().dialect.name != "sqlite":
            options["isolation_level"] = "AUTOCOMMIT"
        db.session.connection(execution_options=options)


@event.listens_for(Engine, "before_cursor_execute")
def _refuse_writes_on_read_only_pages(connection, cursor, statement: str, parameters, context,
                                      executemany: bool) -> None:
    if connection.get_execution_options().get(READ_ONLY) and _writes(statement, context):
        raise WriteOnReadOnlyPage(f"a page of READ_ONLY_ENDPOINTS sent a write: {statement[:60]}")


def _writes(statement: str, context) -> bool:
    """A statement built as an INSERT, UPDATE, DELETE or DDL, or a textual one other than SELECT."""
    if context is None or context.is_text or context.compiled is None:
        return statement.lstrip()[:6].upper() != "SELECT"
    return context.isinsert or context.isupdate or context.isdelete or context.isddl


def register(app: Flask) -> None:
    # First of the app's hooks: nothing may open the request's transaction before it.
    app.before_request_funcs.setdefault(None, []).insert(0, begin_read_only_request)
