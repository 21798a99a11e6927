"""Back office, finance: invoices (bank transfers, credit notes, PDF) and the monthly close."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from portal import billing, monthly, quotes
from portal.dates import paris_today
from portal.extensions import db
from portal.models import (
    BillingMode,
    Channel,
    ClientRole,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Payment,
    PaymentProvider,
)
from portal.seller import seller_settings

from .web import csrf_token, page_text, post_form, queries_of_get, sign_in


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def invoiced(make):
    """A per-order organisation whose accepted quote was invoiced (2 × 100 € HT, 20 % VAT)."""
    world = make.world()
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=world["terms"], channel=Channel.PORTAL)
    world["invoice"] = db.session.scalar(select(Invoice))
    db.session.commit()
    return world


@pytest.fixture
def staff_client(client, invoiced):
    sign_in(client, invoiced["admin"])
    return client


def _fresh(invoice: Invoice) -> Invoice:
    db.session.expire_all()
    return db.session.get(Invoice, invoice.id)


# --- Access -----------------------------------------------------------------------------------

GET_ENDPOINTS = ["/admin/factures/", "/admin/factures/details/?id=1", "/admin/factures/1/virement",
                 "/admin/factures/1/avoir", "/admin/factures/1/pdf", "/admin/cloture-mensuelle/"]
POST_ENDPOINTS = ["/admin/factures/1/virement", "/admin/factures/1/avoir",
                  "/admin/cloture-mensuelle/executer"]


def _as_client_user(client, make) -> None:
    user = make.client_user(make.organisation(), ClientRole.RESPONSABLE)
    db.session.commit()
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True


@pytest.mark.parametrize("url", GET_ENDPOINTS)
def test_anonymous_visitors_are_sent_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/connexion")


@pytest.mark.parametrize("url", POST_ENDPOINTS)
def test_anonymous_posts_are_sent_to_sign_in(client, url):
    token = csrf_token(client, "/admin/connexion")
    response = client.post(url, data={"csrf_token": token, "confirm": "y"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/connexion")


@pytest.mark.parametrize("url", GET_ENDPOINTS)
def test_client_users_are_refused(client, make, url):
    _as_client_user(client, make)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", POST_ENDPOINTS)
def test_client_users_cannot_post(client, make, url):
    token = csrf_token(client, "/admin/connexion")
    _as_client_user(client, make)
    assert client.post(url, data={"csrf_token": token, "confirm": "y"}).status_code == 403


# --- Invoice list and page --------------------------------------------------------------------


def test_the_list_shows_numbers_organisations_totals_and_statuses(staff_client, invoiced):
    invoice = invoiced["invoice"]
    html = page_text(staff_client.get("/admin/factures/"))
    assert invoice.number in html and invoiced["org"].name in html
    assert "240,00\u00a0€" in html and "200,00\u00a0€" in html
    assert '<span class="badge badge-issued">À régler</span>' in html
    assert "Facture" in html and "Échéance" in html


def _filter_url(view_filter: int, value: str) -> str:
    return f"/admin/factures/?flt0_{view_filter}={value}"


def test_filter_by_status(staff_client, invoiced):
    number = invoiced["invoice"].number
    assert number in page_text(staff_client.get(_filter_url(0, "issued")))
    assert number not in page_text(staff_client.get(_filter_url(0, "paid")))


def test_filter_by_issue_month_and_by_billing_period(staff_client, invoiced):
    invoice = invoiced["invoice"]
    month = invoice.issue_date.strftime("%Y-%m")
    assert invoice.number in page_text(staff_client.get(_filter_url(2, month)))
    assert invoice.number not in page_text(staff_client.get(_filter_url(2, "2001-01")))
    assert invoice.number not in page_text(staff_client.get(_filter_url(3, month)))


@pytest.mark.parametrize("value", ["2026-13", "mars", "abc"])
def test_a_bad_filter_value_is_explained_not_a_server_error(staff_client, value):
    for view_filter in (0, 2, 3):
        response = staff_client.get(_filter_url(view_filter, value))
        assert response.status_code == 200
        assert "Valeur de filtre non valide" in page_text(response)


def test_the_invoice_page_shows_lines_and_actions(staff_client, invoiced):
    invoice = invoiced["invoice"]
    html = page_text(staff_client.get(f"/admin/factures/details/?id={invoice.id}"))
    assert invoice.number in html and invoice.lines[0].label in html
    assert "Enregistrer un virement" in html and "Émettre un avoir" in html
    assert "Aucun paiement enregistré." in html
    assert f"/admin/factures/{invoice.id}/pdf" in html


@pytest.mark.parametrize("invoice_id", ["999", "abc", ""])
def test_an_unknown_invoice_is_not_found(staff_client, invoice_id):
    assert staff_client.get(f"/admin/factures/details/?id={invoice_id}").status_code == 404


# --- Bank transfer ----------------------------------------------------------------------------


def test_record_a_bank_transfer(staff_client, invoiced):
    invoice = invoiced["invoice"]
    url = f"/admin/factures/{invoice.id}/virement"
    response = post_form(staff_client, url, {"reference": "VIR-2026-0042", "amount": "240,00"})
    assert response.status_code == 302
    invoice = _fresh(invoice)
    assert invoice.status == InvoiceStatus.PAID
    payment = db.session.scalar(select(Payment))
    assert (payment.provider, payment.provider_reference, payment.amount_cents) == (
        PaymentProvider.BANK_TRANSFER, "VIR-2026-0042", 24000)
    assert payment.recorded_by_id == invoiced["admin"].id
    assert billing.credit_balance(invoiced["org"].id) == 20
    html = page_text(staff_client.get(response.headers["Location"]))
    assert "VIR-2026-0042" in html and "Virement bancaire" in html and "Payée" in html
    assert "Enregistrer un virement" not in html


@pytest.mark.parametrize(("data", "message"), [
    ({"reference": "VIR-1", "amount": "239,99"}, "ne correspond pas à la facture"),
    ({"reference": "VIR-1", "amount": "deux cent"}, "Montant invalide"),
    ({"reference": "VIR-1", "amount": ""}, "Indiquez le montant reçu"),
    ({"reference": "  ", "amount": "240"}, "Indiquez la référence du virement"),
])
def test_a_bad_transfer_is_refused_in_french(staff_client, invoiced, data, message):
    invoice = invoiced["invoice"]
    response = post_form(staff_client, f"/admin/factures/{invoice.id}/virement", data)
    assert response.status_code == 200
    assert message in page_text(response)
    assert _fresh(invoice).status == InvoiceStatus.ISSUED and _count(Payment) == 0


def test_a_credit_note_cannot_be_paid(staff_client, invoiced):
    note = billing.issue_credit_note(invoiced["invoice"], actor=invoiced["admin"], reason="Erreur")
    db.session.commit()
    response = post_form(staff_client, f"/admin/factures/{note.id}/virement",
                         {"reference": "VIR-9", "amount": "240"})
    assert "n'est pas à régler" in page_text(response)
    assert _count(Payment) == 0


# --- Credit note ------------------------------------------------------------------------------


def test_issue_a_credit_note_with_a_reason_and_a_confirmation(staff_client, invoiced):
    invoice = invoiced["invoice"]
    url = f"/admin/factures/{invoice.id}/avoir"
    assert "irréversible" in page_text(staff_client.get(url))
    response = post_form(staff_client, url, {"reason": "Commande annulée", "confirm": "y"})
    assert response.status_code == 302
    invoice = _fresh(invoice)
    assert invoice.status == InvoiceStatus.CANCELLED
    note = db.session.scalar(select(Invoice).where(Invoice.kind == InvoiceKind.CREDIT_NOTE))
    assert note.credited_invoice_id == invoice.id and note.reason == "Commande annulée"
    html = page_text(staff_client.get(response.headers["Location"]))
    assert note.number in html and "Annulée par avoir" in html


@pytest.mark.parametrize(("data", "message"), [
    ({"reason": "Commande annulée"}, "Cochez la case de confirmation pour émettre l'avoir."),
    ({"reason": "  ", "confirm": "y"}, "Indiquez le motif de l'avoir."),
])
def test_a_credit_note_needs_a_reason_and_a_confirmation(staff_client, invoiced, data, message):
    invoice = invoiced["invoice"]
    response = post_form(staff_client, f"/admin/factures/{invoice.id}/avoir", data)
    assert response.status_code == 200 and message in page_text(response)
    assert _fresh(invoice).status == InvoiceStatus.ISSUED
    assert _count(Invoice, Invoice.kind == InvoiceKind.CREDIT_NOTE) == 0


def test_a_paid_invoice_cannot_be_credited(staff_client, invoiced):
    invoice = invoiced["invoice"]
    billing.record_payment(invoice, provider=PaymentProvider.BANK_TRANSFER, provider_reference="V",
                           amount_cents=invoice.total_ttc_cents, currency="EUR")
    db.session.commit()
    response = post_form(staff_client, f"/admin/factures/{invoice.id}/avoir",
                         {"reason": "Erreur", "confirm": "y"})
    assert response.status_code == 200
    assert "Seule une facture émise et non réglée peut être annulée" in page_text(response)
    assert _count(Invoice, Invoice.kind == InvoiceKind.CREDIT_NOTE) == 0


# --- PDF --------------------------------------------------------------------------------------


def test_download_the_invoice_pdf(staff_client, invoiced):
    invoice = invoiced["invoice"]
    response = staff_client.get(f"/admin/factures/{invoice.id}/pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert f"{invoice.number}.pdf" in response.headers["Content-Disposition"]
    assert response.data.startswith(b"%PDF")
    assert _fresh(invoice).pdf == response.data  # stored once, served as stored


# --- Monthly close ----------------------------------------------------------------------------


@pytest.fixture
def monthly_quotes(make, invoiced):
    """Two accepted quotes of a monthly organisation, in the month before this one."""
    period = monthly.previous_period()
    accepted_at = datetime(int(period[:4]), int(period[5:]), 15, 10, 0)
    org = make.organisation(name="Mensuelle SA", billing_mode=BillingMode.MONTHLY)
    decider = make.client_user(org, ClientRole.GESTIONNAIRE)
    accepted = []
    for _ in range(2):
        quote = make.sent_quote(org, actor=invoiced["admin"], recipient=decider, now=accepted_at)
        quotes.accept(quote, actor=decider, terms_version=invoiced["terms"], channel=Channel.PORTAL,
                      now=accepted_at)
        accepted.append(quote)
    db.session.commit()
    return period, org, accepted


def test_preview_then_run_the_monthly_close(staff_client, monthly_quotes):
    period, org, accepted = monthly_quotes
    html = page_text(staff_client.get("/admin/cloture-mensuelle/"))
    assert f"Aperçu de la période {period}" in html and org.name in html
    assert all(quote.reference in html for quote in accepted)
    assert "480,00\u00a0€" in html  # 2 × 240,00 € TTC
    response = post_form(staff_client, "/admin/cloture-mensuelle/executer",
                         {"period": period, "confirm": "y"}, form_url="/admin/cloture-mensuelle/")
    assert response.status_code == 200
    invoice = db.session.scalar(select(Invoice).where(Invoice.billing_period == period))
    assert invoice.organisation_id == org.id and invoice.total_ttc_cents == 48000
    html = page_text(response)
    assert "1 facture émise" in html and invoice.number in html and "Aucun échec." in html
    again = post_form(staff_client, "/admin/cloture-mensuelle/executer",
                      {"period": period, "confirm": "y"}, form_url="/admin/cloture-mensuelle/")
    assert "Aucune facture émise" in page_text(again)
    assert _count(Invoice, Invoice.billing_period == period) == 1


def test_the_monthly_close_needs_the_confirmation(staff_client, monthly_quotes):
    period, _org, _accepted = monthly_quotes
    response = post_form(staff_client, "/admin/cloture-mensuelle/executer", {"period": period},
                         form_url="/admin/cloture-mensuelle/")
    assert response.status_code == 200
    assert "Cochez la case de confirmation pour lancer la clôture." in page_text(response)
    assert _count(Invoice, Invoice.billing_period == period) == 0


@pytest.mark.parametrize("which", ["current", "future", "garbage"])
def test_a_period_not_over_is_refused_and_nothing_is_done(staff_client, monthly_quotes, which):
    today = paris_today()
    period = {"current": today.strftime("%Y-%m"),
              "future": (today.replace(day=1) + timedelta(days=40)).strftime("%Y-%m"),
              "garbage": "2026-13"}[which]
    message = "n'est pas terminée" if which != "garbage" else "Période invalide"
    preview = staff_client.get("/admin/cloture-mensuelle/", query_string={"periode": period})
    assert preview.status_code == 200 and message in page_text(preview)
    response = post_form(staff_client, "/admin/cloture-mensuelle/executer",
                         {"period": period, "confirm": "y"}, form_url="/admin/cloture-mensuelle/")
    assert response.status_code == 200 and message in page_text(response)
    assert _count(Invoice, Invoice.billing_period.is_not(None)) == 0


def test_failures_are_reported_by_organisation(staff_client, monthly_quotes):
    period, org, _accepted = monthly_quotes
    settings = seller_settings()
    settings.siren = ""  # invoices cannot be issued without the seller's SIREN
    db.session.commit()
    response = post_form(staff_client, "/admin/cloture-mensuelle/executer",
                         {"period": period, "confirm": "y"}, form_url="/admin/cloture-mensuelle/")
    html = page_text(response)
    assert "Aucune facture émise" in html and org.name in html and "le SIREN" in html
    assert _count(Invoice, Invoice.billing_period == period) == 0


# --- No COUNT(*), no query per row ------------------------------------------------------------


def _invoices(organisation_ids: list[int], start: int, n: int) -> None:
    db.session.execute(insert(Invoice), [
        {"kind": InvoiceKind.INVOICE, "number": f"FA-2025-{i:05d}",
         "organisation_id": organisation_ids[i % len(organisation_ids)],
         "status": InvoiceStatus.ISSUED, "currency": "EUR", "issue_date": date(2025, 1, 1),
         "due_date": date(2025, 1, 31), "total_ht_cents": 1000, "total_vat_cents": 200,
         "total_ttc_cents": 1200, "seller": {}, "buyer": {}, "issued_at": datetime(2025, 1, 1)}
        for i in range(start, start + n)])


def test_the_invoice_list_runs_the_same_queries_for_10_or_1000_rows(staff_client, make):
    organisation_ids = [make.organisation().id for _ in range(60)]
    _invoices(organisation_ids, 0, 10)
    db.session.commit()
    few = queries_of_get(staff_client, "/admin/factures/")
    _invoices(organisation_ids, 10, 990)
    db.session.commit()
    assert queries_of_get(staff_client, "/admin/factures/") == few
    assert queries_of_get(staff_client, _filter_url(0, "issued")) == few


@pytest.mark.parametrize("query", ["page=-1", "page=99999999999999999999", "page=abc", "sort=99"])
def test_bad_list_arguments_are_not_a_server_error(staff_client, query):
    assert staff_client.get(f"/admin/factures/?{query}").status_code == 200
