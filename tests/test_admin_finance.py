"""Back office, finance: invoices (bank transfers, credit notes, PDF) and the monthly close."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import billing, credits, documents, monthly, quotes
from portal.dates import paris_today
from portal.extensions import db
from portal.labels import period_label
from portal.models import (
    BillingMode,
    Channel,
    ClientRole,
    CloseJobStatus,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    MonthlyCloseJob,
    Payment,
    PaymentProvider,
)
from portal.seller import seller_settings

from .web import page_text, post_form, sign_in


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
    assert credits.credit_balance(invoiced["org"].id) == 20
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


def _queue_close(staff_client, period: str):
    return post_form(staff_client, "/admin/cloture-mensuelle/executer",
                     {"period": period, "confirm": "y"}, form_url="/admin/cloture-mensuelle/")


def test_the_button_queues_the_close_and_a_worker_pass_runs_it(staff_client, monthly_quotes):
    period, org, accepted = monthly_quotes
    html = page_text(staff_client.get("/admin/cloture-mensuelle/"))
    assert f"Aperçu de {period_label(period)}" in html and org.name in html
    assert all(quote.reference in html for quote in accepted)
    assert "480,00\u00a0€" in html  # 2 × 240,00 € TTC
    response = _queue_close(staff_client, period)
    assert response.status_code == 303
    html = page_text(staff_client.get(response.headers["Location"]))
    assert (f"La clôture de {period_label(period)} est en file d'attente : elle sera exécutée par le service "
            "d'envoi (flask outbox work) dans quelques secondes.") in html
    assert f"Clôture de {period_label(period)} : En file d'attente" in html
    assert "Avancement : 0 facture émise sur 1 organisation à facturer." in html
    assert _count(Invoice, Invoice.billing_period == period) == 0  # nothing billed in the request
    job = monthly.latest_close_job(period)
    assert job.status == CloseJobStatus.QUEUED and job.requested_by_id == accepted[0].created_by_id

    assert monthly.run_queued_closes() == 1  # the worker's pass
    invoice = db.session.scalar(select(Invoice).where(Invoice.billing_period == period))
    assert invoice.organisation_id == org.id and invoice.total_ttc_cents == 48000
    db.session.expire_all()
    job = monthly.latest_close_job(period)
    assert (job.status, job.issued_count, job.failures_count, job.error) == (CloseJobStatus.DONE, 1, 0, None)
    assert job.started_at and job.finished_at
    html = page_text(staff_client.get(f"/admin/cloture-mensuelle/?periode={period}"))
    assert f"Clôture de {period_label(period)} : Terminée" in html and "1 facture émise sur 1" in html
    assert monthly.run_queued_closes() == 0

    _queue_close(staff_client, period)  # closing again: a job that bills nothing more
    assert monthly.run_queued_closes() == 1
    db.session.expire_all()
    assert (monthly.latest_close_job(period).status, monthly.latest_close_job(period).issued_count) == (
        CloseJobStatus.DONE, 0)
    assert _count(Invoice, Invoice.billing_period == period) == 1


def test_a_second_click_while_queued_does_not_queue_twice(staff_client, monthly_quotes):
    period, _org, _accepted = monthly_quotes
    assert _queue_close(staff_client, period).status_code == 303
    again = _queue_close(staff_client, period)
    assert again.status_code == 200
    month = documents.format_period(period)  # « novembre 2026 », not 2026-11
    assert f"La clôture de {month} est déjà en file d'attente ou en cours" in page_text(again)
    assert _count(MonthlyCloseJob, MonthlyCloseJob.period == period) == 1
    assert monthly.run_queued_closes() == 1
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
    message = (f"La période {documents.format_period(period)} n'est pas terminée" if which != "garbage"
               else "Période invalide")
    preview = staff_client.get("/admin/cloture-mensuelle/", query_string={"periode": period})
    assert preview.status_code == 200 and message in page_text(preview)
    response = post_form(staff_client, "/admin/cloture-mensuelle/executer",
                         {"period": period, "confirm": "y"}, form_url="/admin/cloture-mensuelle/")
    assert response.status_code == 200 and message in page_text(response)
    assert _count(Invoice, Invoice.billing_period.is_not(None)) == 0
    assert _count(MonthlyCloseJob) == 0


def test_failures_are_reported_by_organisation(staff_client, monthly_quotes):
    period, org, _accepted = monthly_quotes
    settings = seller_settings()
    settings.siren = ""  # invoices cannot be issued without the seller's SIREN
    db.session.commit()
    _queue_close(staff_client, period)
    monthly.run_queued_closes()
    html = page_text(staff_client.get(f"/admin/cloture-mensuelle/?periode={period}"))
    assert " ".join(html.split()).count(
        "0 facture émise ; 0 organisation déjà facturée pour ce mois ; 1 échec.") == 1
    assert org.name in html and "le SIREN" in html
    assert _count(Invoice, Invoice.billing_period == period) == 0


# --- List arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["page=-1", "page=99999999999999999999", "page=abc", "sort=99"])
def test_bad_list_arguments_are_not_a_server_error(staff_client, query):
    assert staff_client.get(f"/admin/factures/?{query}").status_code == 200
