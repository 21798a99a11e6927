"""PostgreSQL: the first read-only pages after a quiet spell are served, on connections the pool pinged
because they sat idle past the threshold. That their prepared statements outlive them:
tests/perf/test_read_only_pg.py."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from portal import create_app, quotes
from portal.extensions import db
from portal.models import Channel, ClientRole, Invoice

from .conftest import IsolatedClient
from .web import sign_in, sign_in_client

IDLE_PING_SECONDS = 0.2
STAFF_READ_ONLY_PAGES = ["/admin/", "/admin/recherche?q=Org", "/admin/tous-les-devis/",
                         "/admin/organisation/{org}/"]
PORTAL_READ_ONLY_PAGES = ["/espace-client/devis", "/espace-client/devis/{quote}", "/espace-client/factures",
                          "/espace-client/factures/{invoice}", "/espace-client/credits"]
CONCURRENT_VISITORS = 4


@pytest.fixture
def idle_pool_app(app):
    """A pool of CONCURRENT_VISITORS connections pinged after IDLE_PING_SECONDS idle."""
    isolated = create_app({**app.config, "DB_IDLE_PING_SECONDS": IDLE_PING_SECONDS,
                           "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": CONCURRENT_VISITORS,
                                                         "max_overflow": 0}})
    isolated.test_client_class = IsolatedClient
    yield isolated
    with isolated.app_context():
        db.engine.dispose()


def _fill_the_pool(app) -> None:
    """Open every pooled connection at once, then give them all back: each is now idle."""
    with app.app_context():
        connections = [db.engine.connect() for _ in range(CONCURRENT_VISITORS)]
        for connection in connections:
            connection.close()


def _first_visits_after_idle(app, clients, path: str) -> list[int]:
    _fill_the_pool(app)
    time.sleep(IDLE_PING_SECONDS * 2)
    with ThreadPoolExecutor(CONCURRENT_VISITORS) as pool:
        return list(pool.map(lambda client: client.get(path).status_code, clients))


@pytest.mark.parametrize("path", STAFF_READ_ONLY_PAGES + PORTAL_READ_ONLY_PAGES)
def test_first_read_only_pages_after_idle_are_served(idle_pool_app, make, path):
    """The idle ping's SELECT 1 left psycopg inside a transaction, and the read-only page could not
    switch the connection to autocommit: every first page after a quiet spell answered 500."""
    world = make.world()
    decider = world["users"][ClientRole.GESTIONNAIRE]
    quotes.accept(world["quote"], actor=decider, terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    invoice_id = db.session.scalar(select(Invoice.id))
    on_portal = path.startswith("/espace-client")
    clients = [idle_pool_app.test_client() for _ in range(CONCURRENT_VISITORS)]
    for visitor in clients:
        if on_portal:
            sign_in_client(visitor, decider)
        else:
            sign_in(visitor, world["admin"])
    url = path.format(org=world["org"].id, quote=world["quote"].id, invoice=invoice_id)
    assert _first_visits_after_idle(idle_pool_app, clients, url) == [200] * CONCURRENT_VISITORS
