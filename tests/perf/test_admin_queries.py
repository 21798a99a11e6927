"""Back office: as many queries with 10 rows as with 1000 (no query per row, no COUNT(*) of a whole
table) on the home, an organisation's pages, the quote editor and every list; the home's queues
counted no further than asked."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import insert

from portal.admin import home
from portal.extensions import db
from portal.models import (
    AuditEvent,
    ClientRole,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    OutboxEmail,
    OutboxStatus,
    Product,
    Quote,
    QuoteStatus,
    TermsVersion,
    User,
    UserKind,
    utcnow,
)

from ..web import count_queries, page_text, queries_of_get

pytestmark = pytest.mark.perf

QUOTE_LIST = "/admin/tous-les-devis/"


def _quotes(org_id: int, recipient_id: int, first: int, count: int) -> None:
    now = utcnow()
    db.session.execute(insert(Quote), [
        dict(organisation_id=org_id, number=f"DV-2021-{n:05d}", revision=1, title=f"Lot {n}",
             status=QuoteStatus.SENT, recipient_id=recipient_id, total_ht_cents=100, total_vat_cents=20,
             total_ttc_cents=120, total_credits=0, reminders_sent=0, created_at=now,
             valid_until=now.date()) for n in range(first, first + count)])
    db.session.commit()


def _world_quotes(world, first: int, count: int) -> None:
    _quotes(world["org"].id, world["users"][ClientRole.GESTIONNAIRE].id, first, count)


def test_main_pages_run_as_many_queries_with_10_and_1000_quotes(staff_client):
    world = staff_client.world
    org = world["org"]
    pages = ["/admin/", f"/admin/organisation/{org.id}/devis", f"/admin/organisation/{org.id}/",
             "/admin/organisations/", "/admin/demandes/", f"/admin/devis/{world['quote'].id}",
             "/admin/?q=" + org.name[:6]]
    _world_quotes(world, 1, 9)
    small = {url: queries_of_get(staff_client, url) for url in pages}
    _world_quotes(world, 10, 990)
    large = {url: queries_of_get(staff_client, url) for url in pages}
    assert large == small


# --- The Flask-Admin lists: rows spread over 60 organisations ------------------------------------


def _products(_organisation_ids, start: int, n: int) -> None:
    db.session.execute(insert(Product), [
        {"sku": f"BULK-{i}", "name": f"Produit {i}", "unit_price_cents": 100 * i, "vat_rate_bp": 2000,
         "credits_per_unit": 0, "published": i % 2 == 0} for i in range(start, start + n)])


def _terms(_organisation_ids, start: int, n: int) -> None:
    db.session.execute(insert(TermsVersion), [
        {"version_label": f"bulk-{i}", "body": "Texte", "sha256": "0" * 64,
         "published_at": datetime(2026, 1, 1) + timedelta(hours=i) if i % 3 == 0 else None}
        for i in range(start, start + n)])


def _users(organisation_ids, start: int, n: int) -> None:
    db.session.execute(insert(User), [
        {"email": f"bulk{i}@client.test", "full_name": f"Client {i}", "kind": UserKind.CLIENT,
         "client_role": ClientRole.MEMBRE, "organisation_id": organisation_ids[i % len(organisation_ids)],
         "active": True, "created_at": datetime(2026, 1, 1)} for i in range(start, start + n)])


def _emails(_organisation_ids, start: int, n: int) -> None:
    db.session.execute(insert(OutboxEmail), [
        {"recipient": f"bulk{i}@client.test", "template": "invoice_issued", "context": {"invoice_id": i},
         "dedupe_key": f"bulk:{i}", "status": OutboxStatus.FAILED, "attempts": 8,
         "last_error": "550", "next_attempt_at": datetime(2026, 1, 1), "created_at": datetime(2026, 1, 1)}
        for i in range(start, start + n)])


def _events(organisation_ids, start: int, n: int) -> None:
    db.session.execute(insert(AuditEvent), [
        {"actor_id": None, "action": "quote.sent", "object_type": "quote", "object_id": i,
         "organisation_id": organisation_ids[i % len(organisation_ids)], "details": {"n": i},
         "created_at": datetime(2026, 1, 1)} for i in range(start, start + n)])


def _invoices(organisation_ids, start: int, n: int) -> None:
    db.session.execute(insert(Invoice), [
        {"kind": InvoiceKind.INVOICE, "number": f"FA-2025-{i:05d}",
         "organisation_id": organisation_ids[i % len(organisation_ids)],
         "status": InvoiceStatus.ISSUED, "currency": "EUR", "issue_date": date(2025, 1, 1),
         "due_date": date(2025, 1, 31), "total_ht_cents": 1000, "total_vat_cents": 200,
         "total_ttc_cents": 1200, "seller": {}, "buyer": {}, "issued_at": datetime(2025, 1, 1)}
        for i in range(start, start + n)])


@pytest.mark.parametrize(("url", "fill"), [
    ("/admin/produits/", _products), ("/admin/cgv/", _terms), ("/admin/utilisateurs/", _users),
    ("/admin/emails/", _emails), ("/admin/journal/", _events), ("/admin/factures/", _invoices),
    ("/admin/factures/?flt0_0=issued", _invoices)])
def test_list_pages_run_the_same_queries_for_10_or_1000_rows(staff_client, make, url, fill):
    organisation_ids = [make.organisation().id for _ in range(60)]
    fill(organisation_ids, 0, 10)
    db.session.commit()
    few = queries_of_get(staff_client, url)
    fill(organisation_ids, 10, 990)
    db.session.commit()
    assert queries_of_get(staff_client, url) == few


# --- Every quote (/admin/tous-les-devis/) ----------------------------------------------------------


def _statements(client, url: str) -> list[str]:
    db.session.expire_all()
    with count_queries() as counter:
        assert client.get(url).status_code == 200
    return counter.statements


def test_the_quote_list_runs_as_many_queries_with_10_and_60_quotes_and_never_a_count(staff_client):
    world = staff_client.world
    urls = [QUOTE_LIST, f"{QUOTE_LIST}?statut=sent", QUOTE_LIST + "?q=organisation"]
    _world_quotes(world, 1, 9)
    small = {url: _statements(staff_client, url) for url in urls}
    _world_quotes(world, 10, 50)
    large = {url: _statements(staff_client, url) for url in urls}
    for url in urls:
        assert len(large[url]) == len(small[url]), url
        listing = [s for s in large[url] if "FROM quote" in s]
        assert len(listing) == 1, url  # the organisation comes in the same query
        assert "JOIN organisation" in listing[0]
        assert not any("count(" in s.lower() for s in large[url]), url
    assert "DV-2021-00059" in page_text(staff_client.get(QUOTE_LIST))


# --- The home's queues (portal/admin/home.py): statements built once, counted up to a bound --------


def test_a_queue_is_counted_no_further_than_asked(staff_client):
    _world_quotes(staff_client.world, 1, 3)  # 4 quotes await the client
    count, _first_rows = home.QUEUES["awaiting"]
    assert db.session.scalar(count, {"counted": 2}) == 2
    assert db.session.scalar(count, {"counted": 100}) == 4
