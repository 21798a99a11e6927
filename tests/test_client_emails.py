"""What a monthly client is told of an acceptance: an email (credits granted now, the consolidated
invoice the 1st of next month, Paris time), and, on the portal's « Factures » page, the quotes that
wait for next month's invoice."""

from __future__ import annotations

import html
from datetime import date, datetime

import pytest
from sqlalchemy import select

from portal import monthly, quotes
from portal.delivery import emails
from portal.exceptions import QuoteNotPending
from portal.extensions import db
from portal.models import BillingMode, Channel, ClientRole, OutboxEmail

from .web import page_text, sign_in_client

TEMPLATE = "monthly_quote_accepted"
# 22:30 UTC on 31 March 2027 is already 1 April in Paris: the quote belongs to April's invoice.
ACCEPTED_AT = datetime(2027, 3, 31, 22, 30)


def _emails() -> list[OutboxEmail]:
    return db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == TEMPLATE)
                              .order_by(OutboxEmail.recipient)).all()


def _accept(world, actor=None, quote=None, now=ACCEPTED_AT):
    quote = quote or world["quote"]
    quote.valid_until = date(2027, 4, 30)
    actor = actor or world["users"][ClientRole.GESTIONNAIRE]
    return quotes.accept(quote, actor=actor, terms_version=world["terms"], channel=Channel.PORTAL, now=now,
                         note="Demande par téléphone" if actor.is_staff else None)


@pytest.fixture
def monthly_world(make):
    return make.world(billing_mode=BillingMode.MONTHLY, mandate=True)


# --- The email ----------------------------------------------------------------------------------


def test_a_monthly_acceptance_emails_the_decider_once_with_credits_and_invoice_date(app, monthly_world):
    decider = monthly_world["users"][ClientRole.GESTIONNAIRE]
    quote = monthly_world["quote"]
    _accept(monthly_world)
    with pytest.raises(QuoteNotPending):
        _accept(monthly_world)
    [email] = _emails()
    assert (email.recipient, email.context) == (decider.email, {"quote_id": quote.id})

    rendered = emails.render(email)
    assert rendered.subject == f"Devis {quote.reference} accepté : facturation le 1 mai 2027"
    assert emails.portal_url("devis", quote.id).startswith(app.config["PORTAL_BASE_URL"] + "/")
    for part in (rendered.text, html.unescape(rendered.html)):
        assert "Ses 20 crédits sont disponibles dès maintenant" in part
        assert ("Il sera facturé le 1 mai 2027, sur la facture mensuelle qui regroupe les devis "
                "acceptés en avril 2027.") in part
        assert emails.portal_url("devis", quote.id) in part
        assert emails.portal_url("factures") in part and emails.portal_url("credits") in part


def test_the_email_is_written_in_the_acceptance_transaction(monthly_world):
    db.session.commit()
    _accept(monthly_world)
    assert len(_emails()) == 1
    db.session.rollback()
    assert _emails() == []


def test_the_invoice_contact_is_told_too_and_on_behalf_the_quotes_recipient(monthly_world):
    monthly_world["org"].billing_email = "compta@client.example"
    _accept(monthly_world, actor=monthly_world["admin"])
    recipient = monthly_world["quote"].recipient
    assert [email.recipient for email in _emails()] == sorted(["compta@client.example", recipient.email])
    assert {email.dedupe_key for email in _emails()} == {
        f"{TEMPLATE}:{monthly_world['quote'].id}:compta@client.example",
        f"{TEMPLATE}:{monthly_world['quote'].id}:{recipient.email}"}


def test_a_per_order_acceptance_sends_no_such_email(make):
    world = make.world()
    _accept(world)
    assert _emails() == []


# --- « Factures »: what waits for next month's invoice ---------------------------------------------


def _waiting_section(client) -> str:
    html = page_text(client.get("/espace-client/factures"))
    start = html.find("En attente de facturation")
    return "" if start < 0 else html[start:html.index("Historique", start)]


def test_a_monthly_client_sees_the_quotes_accepted_this_month_with_the_invoice_date(client, monthly_world,
                                                                                     make):
    world = monthly_world
    _accept(world)
    second = make.sent_quote(world["org"], actor=world["admin"],
                             recipient=world["users"][ClientRole.GESTIONNAIRE])
    _accept(world, quote=second)
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.MEMBRE])
    section = _waiting_section(client)
    assert "Facture mensuelle du 1 mai 2027 : devis acceptés en avril 2027" in section
    for quote in (world["quote"], second):
        assert f'href="/espace-client/devis/{quote.id}"' in section and quote.reference in section
    assert "Total à facturer (2 devis) : 400,00\u00a0€ HT, 480,00\u00a0€ TTC" in section


def test_once_invoiced_a_quote_no_longer_waits(client, monthly_world):
    _accept(monthly_world)
    monthly.close_organisations_month([monthly_world["org"].id], "2027-04")
    db.session.commit()
    sign_in_client(client, monthly_world["users"][ClientRole.RESPONSABLE])
    section = _waiting_section(client)
    assert "Rien en attente" in section and monthly_world["quote"].reference not in section


def test_a_monthly_client_with_nothing_waiting_sees_the_empty_state(client, monthly_world):
    db.session.commit()
    sign_in_client(client, monthly_world["users"][ClientRole.RESPONSABLE])
    section = _waiting_section(client)
    assert "Rien en attente" in section and "Facture mensuelle du" not in section


def test_a_per_order_client_sees_nothing_of_it(client, make):
    world = make.world()
    _accept(world)
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.RESPONSABLE])
    assert _waiting_section(client) == ""
