"""Staff links: the staff notification emails open the quote, request or invoice itself in the back
office (absolute links on PORTAL_BASE_URL); an accepted quote's page links to its invoice, or says
which monthly invoice will carry it; invoice numbers are links to the invoice's page."""

from __future__ import annotations

import html
from datetime import date, datetime

import pytest
from sqlalchemy import select

from portal import monthly, quote_requests, quotes
from portal.delivery import emails
from portal.extensions import db
from portal.models import (
    BillingMode,
    Channel,
    ClientRole,
    Invoice,
    OutboxEmail,
    PaymentAnomaly,
    PaymentAnomalyKind,
)

from .web import page_text, sign_in


def _email(template: str) -> OutboxEmail:
    return db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == template)).one()


def _parts(email: OutboxEmail) -> tuple[str, str]:
    rendered = emails.render(email)
    return rendered.text, html.unescape(rendered.html)


def _accept(world, quote=None, now=None):
    return quotes.accept(quote or world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                         terms_version=world["terms"], channel=Channel.PORTAL, now=now)


def _invoice_of(quote) -> Invoice:
    return db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))


# --- Staff emails -------------------------------------------------------------------------------


@pytest.mark.parametrize("decide", ["accept", "refuse"])
def test_a_decision_email_links_to_the_quote_in_the_back_office(app, client, make, decide):
    world = make.world()
    if decide == "accept":
        _accept(world)
    else:
        quotes.refuse(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                      terms_version=world["terms"], channel=Channel.PORTAL, reason="Trop cher")
    url = f"{app.config['PORTAL_BASE_URL']}/admin/devis/{world['quote'].id}"
    for part in _parts(_email("quote_decided")):
        assert f"{url}\n" in part or f'href="{url}"' in part
        assert "Ouvrir le devis dans le back-office" in part
    sign_in(client, world["admin"])
    assert world["quote"].reference in page_text(client.get(url.removeprefix(app.config["PORTAL_BASE_URL"])))


def test_a_new_request_email_links_to_the_request_in_the_back_office(app, client, make):
    world = make.world()
    request = quote_requests.create_request(organisation=world["org"],
                                            requester=world["users"][ClientRole.MEMBRE],
                                            items=[(make.product(name="Pack 500").id, 3)])
    url = f"{app.config['PORTAL_BASE_URL']}/admin/demandes/{request.id}"
    for part in _parts(_email("request_received")):
        assert f"{url}\n" in part or f'href="{url}"' in part
    sign_in(client, world["admin"])
    assert "Pack 500" in page_text(client.get(f"/admin/demandes/{request.id}"))


def test_a_flagged_payment_email_links_to_its_invoice_or_else_to_the_back_office(app, make):
    world = make.world()
    _accept(world)
    invoice = _invoice_of(world["quote"])
    base = app.config["PORTAL_BASE_URL"]
    for invoice_id, url, words in [
            (invoice.id, f"{base}/admin/factures/details/?id={invoice.id}",
             "Ouvrir la facture dans le back-office"),
            (None, f"{base}/admin/", "Ouvrir le back-office")]:
        anomaly = PaymentAnomaly(kind=PaymentAnomalyKind.AMOUNT_MISMATCH, intent_id=f"pi_{invoice_id}",
                                 invoice_id=invoice_id, amount_cents=100, currency="EUR")
        db.session.add(anomaly)
        db.session.flush()
        for part in _parts(OutboxEmail(template="payment_flagged", context={"anomaly_id": anomaly.id})):
            assert f"{url}\n" in part or f'href="{url}"' in part
            assert words in part


# --- An accepted quote's page --------------------------------------------------------------------


def test_an_accepted_per_order_quote_links_to_its_invoice(staff_client):
    world = staff_client.world
    _accept(world)
    db.session.commit()
    invoice = _invoice_of(world["quote"])
    page = page_text(staff_client.get(f"/admin/devis/{world['quote'].id}"))
    assert f'Facture : <a href="/admin/factures/details/?id={invoice.id}">{invoice.number}</a>' in page
    # …and the invoice's page links back to its quote.
    back = page_text(staff_client.get(f"/admin/factures/details/?id={invoice.id}"))
    assert f'<a href="/admin/devis/{world["quote"].id}">{world["quote"].reference}</a>' in back


def test_a_monthly_quote_says_its_invoice_month_then_links_the_invoice_once_issued(client, make):
    world = make.world(billing_mode=BillingMode.MONTHLY)
    world["quote"].valid_until = date(2027, 4, 30)
    _accept(world, now=datetime(2027, 4, 12, 9, 0))
    sign_in(client, world["admin"])
    url = f"/admin/devis/{world['quote'].id}"
    assert ("Sera facturé le 1 mai 2027, sur la facture mensuelle des devis acceptés en avril 2027."
            in page_text(client.get(url)))
    monthly.close_organisations_month([world["org"].id], "2027-04")
    db.session.commit()
    invoice = db.session.scalar(select(Invoice).where(Invoice.billing_period == "2027-04"))
    page = page_text(client.get(url))
    assert f'Facture : <a href="/admin/factures/details/?id={invoice.id}">{invoice.number}</a>' in page
    assert "Sera facturé" not in page


def test_a_sent_quote_says_nothing_of_an_invoice(staff_client):
    page = page_text(staff_client.get(f"/admin/devis/{staff_client.world['quote'].id}"))
    assert "Facture :" not in page and "Sera facturé" not in page


# --- Invoice numbers are links ----------------------------------------------------------------------


def test_invoice_numbers_link_to_the_invoice_in_the_list_and_the_home_queue(staff_client):
    world = staff_client.world
    _accept(world)
    db.session.commit()
    invoice = _invoice_of(world["quote"])
    link = f'<a href="/admin/factures/details/?id={invoice.id}">{invoice.number}</a>'
    assert link in page_text(staff_client.get("/admin/factures/"))
    assert link in page_text(staff_client.get("/admin/"))
