"""Back office, the « Gestion courante » home (portal/admin/home.py): its work queues (requests to
answer, quotes awaiting the client, unpaid per-order invoices, monthly organisations to bill), each
a count and its first rows, and the organisation search bar with its suggestions."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from portal import billing, quote_requests, quotes
from portal.admin import home
from portal.extensions import db
from portal.models import BillingMode, Channel, ClientRole, Invoice, PaymentProvider

from .web import page_text

# --- The queues ---------------------------------------------------------------------------------


def _queue(html: str, title: str) -> str:
    """The card of the queue named `title`."""
    start = html.index(title)
    return html[start:html.find('<div class="card queue-card">', start)]


def test_home_speaks_the_seed_words_and_shows_the_queues(staff_client):
    html = staff_client.get("/admin/").get_data(as_text=True)
    for words in ("Gestion courante", "Demandes de devis à traiter", "Devis en attente du client",
                  "Factures à la commande non réglées", "Organisations mensuelles à facturer"):
        assert words in html
    assert staff_client.world["quote"].reference in html  # the sent quote awaits the client


def test_each_queue_shows_its_work_until_it_is_done(staff_client, make):
    world = staff_client.world
    org, decider = world["org"], world["users"][ClientRole.GESTIONNAIRE]
    request = quote_requests.create_request(organisation=org, requester=world["users"][ClientRole.MEMBRE],
                                            items=[(make.product().id, 2)])
    db.session.commit()
    html = page_text(staff_client.get("/admin/"))
    assert f'href="/admin/demandes/{request.id}"' in _queue(html, "Demandes de devis à traiter")
    assert f'href="/admin/devis/{world["quote"].id}"' in _queue(html, "Devis en attente du client")
    assert "Toutes les factures sont réglées." in _queue(html, "Factures à la commande non réglées")

    quotes.accept(world["quote"], actor=decider, terms_version=world["terms"], channel=Channel.PORTAL)
    invoice = db.session.scalar(select(Invoice))
    db.session.commit()
    html = page_text(staff_client.get("/admin/"))
    assert "Aucun devis en attente." in _queue(html, "Devis en attente du client")
    unpaid = _queue(html, "Factures à la commande non réglées")
    assert invoice.number in unpaid and "240,00\u00a0€" in unpaid

    billing.record_payment(invoice, provider=PaymentProvider.BANK_TRANSFER, provider_reference="VIR-1",
                           amount_cents=invoice.total_ttc_cents, currency="EUR", actor=world["admin"])
    db.session.commit()
    html = page_text(staff_client.get("/admin/"))
    assert "Toutes les factures sont réglées." in _queue(html, "Factures à la commande non réglées")


def test_home_lists_ten_organisation_months_to_bill_and_counts_them_all(staff_client, make):
    world = staff_client.world
    when = datetime(2026, 3, 15, 10)
    for _ in range(12):
        org = make.organisation(billing_mode=BillingMode.MONTHLY)
        decider = make.client_user(org, ClientRole.GESTIONNAIRE)
        quote = make.sent_quote(org, actor=world["admin"], recipient=decider, now=when)
        quotes.accept(quote, actor=decider, terms_version=world["terms"], channel=Channel.PORTAL,
                      now=when)
    db.session.commit()
    html = page_text(staff_client.get("/admin/"))
    section = html[html.index("Organisations mensuelles à facturer"):]
    assert '<span class="count badge badge-info">12</span>' in section
    assert section.count("mars 2026") == 10


def test_home_counts_a_queue_up_to_its_cap(staff_client, make, monkeypatch):
    world = staff_client.world
    for _ in range(3):  # 4 quotes await the client with the world's
        make.sent_quote(world["org"], actor=world["admin"], recipient=world["users"][ClientRole.GESTIONNAIRE])
    db.session.commit()
    monkeypatch.setattr(home, "QUEUE_COUNT_CAP", 4)
    assert '<span class="count badge badge-primary">4</span>' in page_text(staff_client.get("/admin/"))
    monkeypatch.setattr(home, "QUEUE_COUNT_CAP", 3)
    assert '<span class="count badge badge-primary">3+</span>' in page_text(staff_client.get("/admin/"))


# --- The search bar -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["name", "siren", "email", "quote_number", "invoice_number"])
def test_search_finds_the_organisation(staff_client, make, field):
    world = staff_client.world
    other = make.organisation(name="Zeta Industries")
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=world["terms"], channel=Channel.PORTAL)
    invoice = db.session.scalar(select(Invoice))
    db.session.commit()
    org = world["org"]
    query = {"name": org.name[:8].lower(),
             "siren": org.siren, "email": world["users"][ClientRole.MEMBRE].email.upper(),
             "quote_number": world["quote"].number, "invoice_number": invoice.number}[field]
    html = staff_client.get("/admin/", query_string={"q": query}).get_data(as_text=True)
    assert f"/admin/organisation/{org.id}/" in html
    assert other.name not in html
    suggestions = staff_client.get("/admin/recherche", query_string={"q": query}).json
    assert [item["name"] for item in suggestions] == [org.name]


def test_search_results_stand_alone_with_a_way_back_to_the_queues(staff_client):
    org = staff_client.world["org"]
    html = staff_client.get("/admin/", query_string={"q": org.siren}).get_data(as_text=True)
    assert f"/admin/organisation/{org.id}/" in html
    assert "Devis en attente du client" not in html  # the queues stay on the home
    assert "Retour aux files de la gestion courante" in html


def test_search_with_no_result_says_what_to_try(staff_client):
    html = staff_client.get("/admin/", query_string={"q": "introuvable"}).get_data(as_text=True)
    assert "Aucune organisation ne correspond" in html
