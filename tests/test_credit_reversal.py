"""A credit note takes back the credits its invoice's quotes granted, as far as the organisation still
holds them: reversal total = min(credits granted by the invoice's quotes, current balance), quote by
quote in quote order; the rest, consumed, stays with the client. The back office and the portal
show both numbers on the credit note, and every ledger page names what each entry refers to."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from sqlalchemy import select

from portal import api_keys, billing, credits, monthly, quotes
from portal.extensions import db
from portal.models import (
    AuditEvent,
    BillingMode,
    Channel,
    ClientRole,
    CreditEntry,
    CreditEntryKind,
    Invoice,
    Quote,
)
from portal.quotes import LineInput

from .web import page_text, sign_in, sign_in_client

ACCEPTED_AT = datetime(2026, 3, 15, 10, 0)
CLOSE_AT = datetime(2026, 4, 1, 6, 0)


@pytest.fixture
def world(make):
    make.seller_settings()
    admin = make.staff()
    return {"admin": admin, "terms": make.terms(actor=admin)}


def _accepted(make, world, org, credits_granted: int, *, now: datetime | None = None) -> Quote:
    """A quote of `org` worth `credits_granted` credits (one line, 1 unit), accepted by its gestionnaire."""
    decider = make.client_user(org, ClientRole.GESTIONNAIRE)
    product = make.product(credits_per_unit=credits_granted)
    quote = make.sent_quote(org, actor=world["admin"], recipient=decider, now=now,
                            lines=[LineInput(product_id=product.id, quantity=1)])
    quotes.accept(quote, actor=decider, terms_version=world["terms"], channel=Channel.PORTAL, now=now)
    return quote


def _invoice_of(quote: Quote) -> Invoice:
    return db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))


def _reversals(org) -> list[CreditEntry]:
    return db.session.scalars(select(CreditEntry).where(CreditEntry.organisation_id == org.id,
                                                        CreditEntry.kind == CreditEntryKind.REVERSAL)
                              .order_by(CreditEntry.id)).all()


def _per_order_with_granted_credits(make, world, granted: int) -> tuple[object, Quote, Invoice]:
    """A per-order quote whose credits were granted while its invoice is still unpaid. (Payment
    grants them in the ordinary flow, and only an unpaid invoice can be credited: the grant is
    written directly, as `grant_quote_credits` does it.)"""
    org = make.organisation(billing_mode=BillingMode.PER_ORDER)
    quote = _accepted(make, world, org, granted)
    credits.grant_quote_credits(quote, actor=world["admin"])
    return org, quote, _invoice_of(quote)


def _shown(response) -> str:
    """The page's text as read: tags out, spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", page_text(response)).split())


def test_a_per_order_credit_note_takes_back_the_unconsumed_credits(make, world, client, app):
    org, quote, invoice = _per_order_with_granted_credits(make, world, 100)
    credits.consume_credits(org, 30, actor=None, reason="Analyse")
    note = billing.issue_credit_note(invoice, actor=world["admin"], reason="Commande annulée", ip="10.0.0.1")
    [reversal] = _reversals(org)
    assert (reversal.amount, reversal.quote_id, reversal.credit_note_id) == (-70, quote.id, note.id)
    assert credits.credit_balance(org.id) == 0
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "credits.reversal"))
    assert (event.actor_id, event.ip, event.details["amount"], event.details["credit_note"]) == (
        world["admin"].id, "10.0.0.1", -70, note.number)
    assert credits.credit_note_reversal(note) == credits.CreditReversal(taken_back=70, kept=30)
    db.session.commit()

    sign_in(client, world["admin"])
    for page in (f"/admin/factures/details/?id={note.id}", f"/admin/factures/details/?id={invoice.id}"):
        shown = _shown(client.get(page))
        assert "Crédits repris : 70" in shown and "Crédits déjà consommés, conservés : 30" in shown, page
    tab = _shown(client.get(f"/admin/organisation/{org.id}/credits"))
    assert f"Avoir {note.number}" in tab and quote.reference in tab and "-70" in tab

    portal = app.test_client()
    sign_in_client(portal, make.client_user(org, ClientRole.MEMBRE))
    db.session.commit()
    shown = _shown(portal.get(f"/espace-client/factures/{note.id}"))
    assert "Crédits repris : 70" in shown and "Crédits déjà consommés, conservés : 30" in shown
    ledger = _shown(portal.get("/espace-client/credits"))
    assert f"avoir {note.number}" in ledger and "-70" in ledger


def test_a_monthly_credit_note_takes_back_the_credits_of_each_quote_it_billed(make, world):
    """The issue's example: crediting a monthly invoice used to leave its 300 credits granted."""
    org = make.organisation(billing_mode=BillingMode.MONTHLY)
    first = _accepted(make, world, org, 100, now=ACCEPTED_AT)
    second = _accepted(make, world, org, 200, now=ACCEPTED_AT)
    db.session.commit()
    monthly.close_month("2026-03", now=CLOSE_AT)
    invoice = db.session.scalar(select(Invoice).where(Invoice.organisation_id == org.id))
    assert credits.credit_balance(org.id) == 300
    assert credits.reversal_preview(invoice) == credits.CreditReversal(taken_back=300, kept=0)
    note = billing.issue_credit_note(invoice, actor=world["admin"], reason="Facturé par erreur")
    assert [(entry.quote_id, entry.amount, entry.credit_note_id) for entry in _reversals(org)] == [
        (first.id, -100, note.id), (second.id, -200, note.id)]
    assert credits.credit_balance(org.id) == 0
    assert credits.credit_note_reversal(note) == credits.CreditReversal(taken_back=300, kept=0)


def test_a_monthly_credit_note_takes_back_no_more_than_the_balance_oldest_quote_first(make, world):
    org = make.organisation(billing_mode=BillingMode.MONTHLY)
    first = _accepted(make, world, org, 100, now=ACCEPTED_AT)
    second = _accepted(make, world, org, 200, now=ACCEPTED_AT)
    credits.consume_credits(org, 50, actor=None, reason="Analyses de mars")
    db.session.commit()
    monthly.close_month("2026-03", now=CLOSE_AT)
    invoice = db.session.scalar(select(Invoice).where(Invoice.organisation_id == org.id))
    assert credits.reversal_preview(invoice) == credits.CreditReversal(taken_back=250, kept=50)
    note = billing.issue_credit_note(invoice, actor=world["admin"], reason="Facturé par erreur")
    assert [(entry.quote_id, entry.amount) for entry in _reversals(org)] == [
        (first.id, -100), (second.id, -150)]
    assert credits.credit_balance(org.id) == 0
    assert credits.credit_note_reversal(note) == credits.CreditReversal(taken_back=250, kept=50)


def test_a_quote_that_granted_nothing_takes_nothing_back(make, world, client):
    """An ordinary per-order invoice is credited unpaid, before payment granted anything."""
    org = make.organisation(billing_mode=BillingMode.PER_ORDER)
    quote = _accepted(make, world, org, 100)
    credits.adjust_credits(org, 40, actor=world["admin"], reason="Geste commercial")
    note = billing.issue_credit_note(_invoice_of(quote), actor=world["admin"], reason="Erreur")
    assert _reversals(org) == [] and credits.credit_balance(org.id) == 40
    assert credits.credit_note_reversal(note) is None
    db.session.commit()
    sign_in(client, world["admin"])
    shown = _shown(client.get(f"/admin/factures/details/?id={note.id}"))
    assert "Crédits repris" not in shown and "Crédits déjà consommés" not in shown


def test_a_balance_already_spent_writes_no_reversal_of_zero(make, world, client):
    org, quote, invoice = _per_order_with_granted_credits(make, world, 100)
    credits.consume_credits(org, 100, actor=None, reason="Tout consommé")
    note = billing.issue_credit_note(invoice, actor=world["admin"], reason="Commande annulée")
    assert _reversals(org) == [] and credits.credit_balance(org.id) == 0
    assert credits.credit_note_reversal(note) == credits.CreditReversal(taken_back=0, kept=100)
    db.session.commit()
    sign_in(client, world["admin"])
    shown = _shown(client.get(f"/admin/factures/details/?id={note.id}"))
    assert "Crédits repris : 0" in shown and "Crédits déjà consommés, conservés : 100" in shown


def test_the_reversal_is_part_of_the_credit_notes_transaction(make, world):
    org, quote, invoice = _per_order_with_granted_credits(make, world, 100)
    db.session.commit()
    billing.issue_credit_note(invoice, actor=world["admin"], reason="Commande annulée")
    assert len(_reversals(org)) == 1
    db.session.rollback()  # e.g. the view's transaction refused at the end
    assert _reversals(org) == [] and credits.credit_balance(org.id) == 100
    assert db.session.get(Invoice, invoice.id).is_payable


def test_an_api_consumption_shows_at_once_in_the_portal_and_the_back_office(make, world, client, app):
    org = make.organisation(name="Alpha Analyses")
    member = make.client_user(org, ClientRole.MEMBRE)
    credits.adjust_credits(org, 10, actor=world["admin"], reason="Solde initial")
    key, secret = api_keys.create_key("Plateforme d'analyses", ["credits:consume"], actor=None)
    db.session.commit()
    api = app.test_client()
    response = api.post(f"/api/v1/organisations/{org.id}/credits/consumptions",
                        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "conso-1"},
                        json={"amount": 3, "reference": "analyse-4711", "description": "Analyse de sol"})
    assert response.status_code == 201, response.get_json()

    portal = app.test_client()
    sign_in_client(portal, member)
    ledger = _shown(portal.get("/espace-client/credits"))
    assert "Solde : 7 crédits" in ledger and "réf. analyse-4711" in ledger and "Analyse de sol" in ledger

    sign_in(client, world["admin"])
    tab = _shown(client.get(f"/admin/organisation/{org.id}/credits"))
    assert "Solde : 7 crédits" in tab and "analyse-4711" in tab and "Analyse de sol" in tab
    assert f"Clé d’API Plateforme d'analyses {key.prefix}…" in tab
