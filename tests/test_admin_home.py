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

from .web import count_queries, page_text

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


@pytest.mark.parametrize("field", ["name", "accented_name", "siren", "email", "domain", "partial_number"])
def test_search_finds_the_organisation(staff_client, make, field):
    world = staff_client.world
    org = world["org"]
    org.name = "Cabinet Lefèvre & Associés"
    make.client_user(org, email="marie.durand@lefevre-associes.fr")
    other = make.organisation(name="Zeta Industries")
    db.session.commit()
    number = world["quote"].number  # DV-<year>-00001
    query = {"name": "lefè", "accented_name": "LEFEVRE & ASSOCIES", "siren": org.siren,
             "email": world["users"][ClientRole.MEMBRE].email.upper(), "domain": "@lefevre-associes.fr",
             "partial_number": number[:-1]}[field]
    html = staff_client.get("/admin/", query_string={"q": query}).get_data(as_text=True)
    assert f"/admin/organisation/{org.id}/" in html
    assert other.name not in html
    suggestions = staff_client.get("/admin/recherche", query_string={"q": query}).json
    assert suggestions[-1]["name"] == org.name
    assert suggestions[-1]["url"] == f"/admin/organisation/{org.id}/"


def _invoiced(staff_client) -> Invoice:
    world = staff_client.world
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=world["terms"], channel=Channel.PORTAL)
    invoice = db.session.scalar(select(Invoice))
    db.session.commit()
    return invoice


@pytest.mark.parametrize("typed", ["as_shown", "lower_case", "first_revision"])
def test_a_whole_quote_number_opens_the_quote(staff_client, typed):
    quote = staff_client.world["quote"]
    query = {"as_shown": quote.number, "lower_case": f" {quote.number.lower()} ",
             "first_revision": f"{quote.number}-R1"}[typed]
    response = staff_client.get("/admin/", query_string={"q": query})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/devis/{quote.id}"


def test_a_quote_number_without_revision_opens_its_latest(staff_client):
    world = staff_client.world
    revised = quotes.revise(world["quote"], actor=world["admin"])
    quotes.send(revised, actor=world["admin"])
    db.session.commit()
    response = staff_client.get("/admin/", query_string={"q": world["quote"].number})
    assert response.headers["Location"] == f"/admin/devis/{revised.id}"
    response = staff_client.get("/admin/", query_string={"q": f"{world['quote'].number}-R1"})
    assert response.headers["Location"] == f"/admin/devis/{world['quote'].id}"


def test_a_whole_invoice_or_credit_note_number_opens_it(staff_client):
    invoice = _invoiced(staff_client)
    credit_note = billing.issue_credit_note(invoice, actor=staff_client.world["admin"], reason="Erreur")
    db.session.commit()
    for document in (invoice, credit_note):
        response = staff_client.get("/admin/", query_string={"q": document.number.lower()})
        assert response.status_code == 302
        assert response.headers["Location"] == f"/admin/factures/details/?id={document.id}"


def test_a_number_of_no_document_says_what_to_try(staff_client):
    number = staff_client.world["quote"].number
    html = page_text(staff_client.get("/admin/", query_string={"q": number[:-1] + "9"}))
    assert "Aucune organisation ne correspond" in html


def test_suggestions_offer_the_document_of_a_whole_number_then_its_organisation(staff_client):
    world = staff_client.world
    invoice = _invoiced(staff_client)
    org, quote = world["org"], world["quote"]
    suggestions = staff_client.get("/admin/recherche", query_string={"q": quote.number}).json
    assert suggestions == [
        {"kind": "quote", "name": f"Devis {quote.number} — {org.name}", "siren": "", "city": "",
         "url": f"/admin/devis/{quote.id}"},
        {"kind": "organisation", "name": org.name, "siren": org.siren, "city": org.city,
         "url": f"/admin/organisation/{org.id}/"}]
    suggestions = staff_client.get("/admin/recherche", query_string={"q": invoice.number}).json
    assert suggestions[0] == {"kind": "invoice", "name": f"Facture {invoice.number} — {org.name}",
                              "siren": "", "city": "", "url": f"/admin/factures/details/?id={invoice.id}"}


def test_suggestions_list_the_first_documents_a_partial_number_starts_then_their_organisations(
        staff_client, make):
    world = staff_client.world
    other = make.organisation(name="Atelier Brunet")
    later = [make.sent_quote(world["org"] if n % 2 else other, actor=world["admin"]) for n in range(11)]
    db.session.commit()
    prefix = world["quote"].number[:-2]  # DV-<year>-000: the quotes 1 to 12
    suggestions = staff_client.get("/admin/recherche", query_string={"q": prefix}).json
    first = [world["quote"], *later][:home.SUGGESTIONS // 2]
    assert [item["url"] for item in suggestions] == [
        *(f"/admin/devis/{quote.id}" for quote in first),
        f"/admin/organisation/{other.id}/", f"/admin/organisation/{world['org'].id}/"]
    assert suggestions[1]["name"] == f"Devis {later[0].number} — Atelier Brunet"


def test_a_search_costs_the_same_statements_whatever_it_finds(staff_client):
    """A redirect reads the document only; a suggestion of a number, its documents then their
    organisations; of a name, the organisations only."""
    quote = staff_client.world["quote"]
    org = staff_client.world["org"]
    counts = {}
    for name, url in (("redirect", f"/admin/?q={quote.number}"), ("results", f"/admin/?q={org.name}"),
                      ("suggest_number", f"/admin/recherche?q={quote.number}"),
                      ("suggest_name", f"/admin/recherche?q={org.name}")):
        db.session.expire_all()
        with count_queries() as counter:
            staff_client.get(url)
        counts[name] = counter.n
    assert counts["suggest_number"] == counts["suggest_name"] + 1
    assert counts["redirect"] == counts["results"]


def test_search_results_stand_alone_with_a_way_back_to_the_queues(staff_client):
    org = staff_client.world["org"]
    html = staff_client.get("/admin/", query_string={"q": org.siren}).get_data(as_text=True)
    assert f"/admin/organisation/{org.id}/" in html
    assert "Devis en attente du client" not in html  # the queues stay on the home
    assert "Retour aux files de la gestion courante" in html


def test_search_with_no_result_says_what_to_try(staff_client):
    html = staff_client.get("/admin/", query_string={"q": "introuvable"}).get_data(as_text=True)
    assert "Aucune organisation ne correspond" in html
