"""The busiest GET pages are served read-only (portal/read_only.py): every statement they send is
marked read-only and, on PostgreSQL, runs outside a transaction (so psycopg's prepared statements
outlive the request); other requests keep their transaction; the views marked @read_only are the
busiest pages and are all routes. That a write from such a page is refused: tests/test_read_only.py."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sqlite3

import psycopg
import pytest
from flask import request
from sqlalchemy import event

import portal.admin
import portal.client
from portal import read_only
from portal.extensions import db
from portal.models import ClientRole

from ..web import sign_in_client

pytestmark = pytest.mark.perf

STAFF_PAGES = ["/admin/", "/admin/?q=Organisation", "/admin/recherche?q=Organisation",
               "/admin/tous-les-devis/", "/admin/tous-les-devis/?q=Organisation",
               "/admin/organisation/{org}/", "/admin/organisation/{org}/devis"]
PORTAL_PAGES = ["/espace-client/devis", "/espace-client/devis/{quote}", "/espace-client/factures",
                "/espace-client/credits"]


def _statements_of(client, path: str) -> list[tuple[bool, bool]]:
    """(read-only, inside a transaction) of each statement sent while serving `path`."""
    seen = []

    def note(connection, *_args) -> None:
        seen.append((connection.get_execution_options().get(read_only.READ_ONLY, False),
                     _in_transaction(connection.connection.dbapi_connection)))

    event.listen(db.engine, "after_cursor_execute", note)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(db.engine, "after_cursor_execute", note)
    return seen


def _in_transaction(dbapi_connection) -> bool:
    if isinstance(dbapi_connection, sqlite3.Connection):
        return dbapi_connection.in_transaction
    return dbapi_connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


@pytest.mark.parametrize("path", STAFF_PAGES)
def test_every_statement_of_a_read_only_staff_page_is_read_only_outside_a_transaction(staff_client, path):
    seen = _statements_of(staff_client, path.format(org=staff_client.world["org"].id))
    assert seen and set(seen) == {(True, False)}  # the signed-in user's row included


@pytest.mark.parametrize("path", PORTAL_PAGES)
def test_every_statement_of_a_read_only_portal_page_is_read_only_outside_a_transaction(client, make, path):
    world = make.world()
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.RESPONSABLE])
    seen = _statements_of(client, path.format(quote=world["quote"].id))
    assert seen and set(seen) == {(True, False)}


@pytest.mark.parametrize("method, path", [("POST", "/espace-client/parametres"),
                                          ("GET", "/espace-client/parametres"), ("GET", "/admin/demandes/")])
def test_other_requests_keep_their_transaction(app, method, path):
    with app.test_request_context(path, method=method):
        assert request.endpoint is not None  # a real page, merely not marked @read_only
        read_only.begin_read_only_request()
        assert read_only.READ_ONLY not in db.session.connection().get_execution_options()
        db.session.remove()


# --- The views marked @read_only ------------------------------------------------------------------

# The busiest pages. Back office: the home (queues and search), its suggestions, the quote list,
# an organisation's tabs. Portal: the quote list and page, the invoice list and page, the credits.
EXPECTED = {"admin.index", "admin.suggest", "quote_list.index", "organisation.page",
            "client.quote_list", "client.quote_page", "client.invoice_list", "client.invoice_page",
            "client.credits"}


def test_the_busiest_pages_are_read_only_get_routes(app):
    endpoints = read_only.read_only_endpoints(app)
    assert endpoints >= EXPECTED, EXPECTED - endpoints
    get_routes = {rule.endpoint for rule in app.url_map.iter_rules() if "GET" in rule.methods}
    assert endpoints <= get_routes, endpoints - get_routes


def _marked_views() -> dict[str, object]:
    """Every function of the view packages marked @read_only (module functions, view methods)."""
    marked = {}
    for package in (portal.admin, portal.client):
        for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if inspect.isclass(value) and value.__module__ == module.__name__:
                    marked |= {f"{info.name}.{name}.{attribute}": method
                               for attribute, method in vars(value).items() if read_only.is_read_only(method)}
                elif inspect.isfunction(value) and read_only.is_read_only(value):
                    marked[f"{info.name}.{name}"] = value
    return marked


def _served(view) -> set[int]:
    """The ids of a view function, of the function it is bound to, and of those it wraps."""
    ids, function = set(), getattr(view, "__func__", view)
    while function is not None:
        ids.add(id(function))
        function = getattr(function, "__wrapped__", None)
    return ids


def test_every_view_marked_read_only_is_an_endpoint_of_the_url_map(app):
    """@read_only on a function that no route serves (a route moved, a decorator misplaced) would
    mark nothing."""
    marked = _marked_views()
    assert len(marked) >= len(EXPECTED), sorted(marked)
    routed = {rule.endpoint for rule in app.url_map.iter_rules()}
    served = set().union(*(_served(app.view_functions[endpoint]) for endpoint in routed))
    assert not [name for name, view in marked.items() if id(view) not in served]
