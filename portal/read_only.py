"""Pages that only read, served outside a transaction.

A request's statements normally share one transaction, ended by a ROLLBACK when nothing was
committed. On PostgreSQL a page that only reads pays for it twice: two round trips (BEGIN and
ROLLBACK), and psycopg forgets its prepared statements at every ROLLBACK, so each statement of
every page is parsed and planned again. A GET view marked `@read_only` reads and never writes: it
runs in autocommit mode, each statement on its own snapshot (each reads what it shows in one go),
and its prepared statements live on. A write sent while serving it is refused before it reaches
the database, so that it can never be committed on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, request
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .extensions import db

View = TypeVar("View", bound=Callable)
READ_ONLY = "portal_read_only"  # the connection's execution option while serving such a page
_MARK = "serves_read_only"


class WriteOnReadOnlyPage(RuntimeError):
    """A statement other than SELECT was sent while serving a view marked @read_only."""


def read_only(view: View) -> View:
    """Serve this view's GET requests read-only, outside a transaction (see the module). A mark
    on the function: functools.wraps (client_required, Flask-Admin's wrapping of `@expose`
    methods) carries it to the view Flask calls, whatever the order of the decorators."""
    setattr(view, _MARK, True)
    return view


def is_read_only(view: Callable | None) -> bool:
    """True for a view function (or bound Flask-Admin method) marked @read_only."""
    return getattr(view, _MARK, False)


def read_only_endpoints(app: Flask) -> set[str]:
    """The endpoints of `app` served read-only."""
    return {endpoint for endpoint, view in app.view_functions.items() if is_read_only(view)}


def begin_read_only_request() -> None:
    """before_request: a @read_only view's GET takes its connection read-only, in autocommit mode
    but on SQLite, whose driver opens no transaction for reads (and would send a PRAGMA to leave
    autocommit when the connection goes back to the pool)."""
    if request.method in ("GET", "HEAD") and is_read_only(current_app.view_functions.get(request.endpoint)):
        options: dict = {READ_ONLY: True}
        if db.session.get_bind().dialect.name != "sqlite":
            options["isolation_level"] = "AUTOCOMMIT"
        db.session.connection(execution_options=options)


@event.listens_for(Engine, "before_cursor_execute")
def _refuse_writes_on_read_only_pages(connection, cursor, statement: str, parameters, context,
                                      executemany: bool) -> None:
    if connection.get_execution_options().get(READ_ONLY) and _writes(statement, context):
        raise WriteOnReadOnlyPage(f"a @read_only page sent a write: {statement[:60]}")


def _writes(statement: str, context) -> bool:
    """A statement built as an INSERT, UPDATE, DELETE or DDL, or a textual one other than SELECT."""
    if context is None or context.is_text or context.compiled is None:
        return statement.lstrip()[:6].upper() != "SELECT"
    return context.isinsert or context.isupdate or context.isdelete or context.isddl


def register(app: Flask) -> None:
    # First of the app's hooks: nothing may open the request's transaction before it.
    app.before_request_funcs.setdefault(None, []).insert(0, begin_read_only_request)
