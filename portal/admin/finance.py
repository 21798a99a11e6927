"""Invoices (payments by bank transfer, credit notes, PDF) and the monthly close."""

from __future__ import annotations

import io
from datetime import date, datetime, time

from flask import abort, flash, redirect, request, send_file, url_for
from flask_admin import expose
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import select
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length

from .. import billing, credits, documents, lifecycle, monthly, monthly_outlook
from ..dates import paris_today
from ..exceptions import DomainError
from ..extensions import db, pdf_limit
from ..forms import EuroField
from ..i18n import lazy_gettext as _l
from ..labels import label, period_label
from ..models import Invoice, InvoiceKind, InvoiceStatus, LifecycleStatus, PaymentProvider, User, utcnow
from ..transaction import transaction
from .base import (
    ChoiceFilter,
    ConfirmForm,
    IssueMonthFilter,
    PeriodFilter,
    PortalForm,
    SecureModelView,
    SecureView,
    acting_user,
    client_ip,
    date_cell,
    money_cell,
    status_badge,
    strip,
)

# --- Invoices ---------------------------------------------------------------------------------


class BankTransferForm(PortalForm):
    reference = StringField(_l("Référence du virement"), filters=[strip], validators=[
        DataRequired(message=_l("Indiquez la référence du virement (relevé bancaire).")),
        Length(max=255, message=_l("La référence est trop longue (255 caractères au plus)."))])
    amount = EuroField(_l("Montant reçu (€)"), validators=[
        InputRequired(message=_l("Indiquez le montant reçu, en euros."))])


class LifecycleStatusForm(PortalForm):
    status = SelectField(_l("Statut"), choices=[
        SelectChoice(status.value, label(status)) for status in lifecycle.RECORDED_BY_STAFF])
    occurred_on = DateField(_l("Date"), default=lambda: paris_today(), validators=[
        InputRequired(message=_l("Indiquez la date du statut."))])
    note = TextAreaField(_l("Note (qui l'a signalé, motif d'un refus…)"), filters=[strip], validators=[
        Length(max=500, message=_l("La note fait 500 caractères au plus."))])


class CreditNoteForm(ConfirmForm):
    reason = TextAreaField(_l("Motif de l'avoir"), filters=[strip], validators=[
        DataRequired(message=_l("Indiquez le motif de l'avoir."))])
    confirm = BooleanField(
        _l("Je confirme : la facture sera annulée en totalité par un avoir, c'est irréversible."),
        validators=[DataRequired(message=_l("Cochez la case de confirmation pour émettre l'avoir."))])


def _organisation_cell(view, context, model, name) -> Markup:
    url = url_for("organisation.page", organisation_id=model.organisation_id)
    return Markup('<a href="{}">{}</a>').format(url, model.organisation.name)


def _number_cell(view, context, model, name) -> Markup:
    return Markup('<a href="{}">{}</a>').format(url_for(".details_view", id=model.id), model.number)


class InvoiceView(SecureModelView):
    """Invoices and credit notes: read-only list and page; payments and credit notes go
    through billing."""

    can_create = False
    can_edit = False
    details_template = "admin/invoice_details.html"
    column_list = ("number", "kind", "organisation", "total_ht_cents", "total_vat_cents",
                   "total_ttc_cents", "status", "issue_date", "due_date", "billing_period")
    column_select_related_list = (Invoice.organisation,)
    column_sortable_list = ("number", "issue_date", "due_date", "total_ttc_cents")
    column_default_sort = ("id", True)
    column_searchable_list = ("number",)
    column_filters = (
        ChoiceFilter(Invoice.status, _l("Statut"), InvoiceStatus),
        ChoiceFilter(Invoice.kind, _l("Type"), InvoiceKind),
        IssueMonthFilter(Invoice.issue_date, _l("Émise en")),
        PeriodFilter(Invoice.billing_period, _l("Période facturée")),
    )
    column_labels = {
        "number": _l("Numéro"), "kind": _l("Type"), "organisation": _l("Organisation"),
        "total_ht_cents": _l("Total HT"), "total_vat_cents": _l("TVA"),
        "total_ttc_cents": _l("Total TTC"), "status": _l("Statut"), "issue_date": _l("Émise le"),
        "due_date": _l("Échéance"), "billing_period": _l("Période facturée"),
    }
    column_formatters = {
        "kind": lambda view, context, model, name: label(model.kind),
        "status": lambda view, context, model, name: status_badge(model.status),
        "number": _number_cell, "organisation": _organisation_cell,
        "total_ht_cents": money_cell, "total_vat_cents": money_cell, "total_ttc_cents": money_cell,
        "issue_date": date_cell, "due_date": date_cell,
        "billing_period": lambda view, context, model, name: period_label(model.billing_period),
    }

    @expose("/details/")
    def details_view(self):
        invoice = self.get_one(request.args.get("id")) or abort(404)
        credit_note = db.session.scalar(select(Invoice).where(Invoice.credited_invoice_id == invoice.id))
        recorder_ids = [payment.recorded_by_id for payment in invoice.payments if payment.recorded_by_id]
        recorders = {user.id: user for user in db.session.scalars(
            select(User).where(User.id.in_(recorder_ids)))} if recorder_ids else {}
        return self.render(self.details_template, model=invoice, credit_note=credit_note,
                           recorders=recorders, return_url=self.get_url(".index_view"),
                           lifecycle=lifecycle.history(invoice),
                           actionable=_actionable(invoice),
                           reversal=credits.credit_note_reversal(credit_note or invoice))

    @expose("/<int:invoice_id>/virement", methods=("GET", "POST"))
    def bank_transfer(self, invoice_id: int):
        """Record a bank transfer paying the invoice in full."""
        invoice = db.session.get(Invoice, invoice_id) or abort(404)
        form = BankTransferForm()
        if form.validate_on_submit():
            with transaction() as outcome:
                billing.record_payment(
                    invoice, provider=PaymentProvider.BANK_TRANSFER,
                    provider_reference=form.reference.data, amount_cents=form.amount.data,
                    currency=invoice.currency, actor=acting_user(), ip=client_ip())
            if outcome.ok:
                flash(_("Virement enregistré : la facture %(number)s est payée.", number=invoice.number),
                      "success")
                return redirect(_details_url(invoice))
        return self.render("admin/invoice_payment.html", invoice=invoice, form=form)

    @expose("/<int:invoice_id>/cycle-de-vie", methods=("GET", "POST"))
    def lifecycle_status(self, invoice_id: int):
        """Record a life-cycle status staff learnt (e-invoicing reform): déposée, rejetée, refusée,
        approuvée; « encaissée » comes with the payment."""
        invoice = db.session.get(Invoice, invoice_id) or abort(404)
        form = LifecycleStatusForm()
        if form.validate_on_submit():
            with transaction() as outcome:
                lifecycle.record_by_staff(invoice, form.status.data, actor=acting_user(),
                                          occurred_at=_moment_of(form.occurred_on.data),
                                          note=form.note.data, ip=client_ip())
            if outcome.ok:
                flash(_("Statut « %(status)s » enregistré pour %(number)s.",
                        status=label(LifecycleStatus(form.status.data)), number=invoice.number), "success")
                return redirect(_details_url(invoice))
        return self.render("admin/invoice_lifecycle.html", invoice=invoice, form=form,
                           lifecycle=lifecycle.history(invoice))

    @expose("/<int:invoice_id>/avoir", methods=("GET", "POST"))
    def credit_note(self, invoice_id: int):
        """Cancel an unpaid invoice by a credit note, after an explicit confirmation."""
        invoice = db.session.get(Invoice, invoice_id) or abort(404)
        form = CreditNoteForm()
        if form.validate_on_submit():
            with transaction() as outcome:
                note = billing.issue_credit_note(invoice, actor=acting_user(), reason=form.reason.data,
                                                 ip=client_ip())
            if outcome.ok:
                flash(_("Avoir %(note)s émis : la facture %(number)s est annulée.", note=note.number,
                        number=invoice.number), "success")
                return redirect(_details_url(invoice))
        return self.render("admin/invoice_credit_note.html", invoice=invoice, form=form,
                           reversal=credits.reversal_preview(invoice) if invoice.is_payable else None)

    @expose("/<int:invoice_id>/pdf")
    @pdf_limit
    def pdf(self, invoice_id: int):
        """The invoice's PDF as the client gets it: the original, or once paid its paid rendering."""
        return self._pdf(invoice_id, documents.invoice_download)

    @expose("/<int:invoice_id>/pdf/origine")
    @pdf_limit
    def original_pdf(self, invoice_id: int):
        """The invoice's frozen original PDF (rendered and stored at the first download)."""
        return self._pdf(invoice_id, lambda invoice: (documents.invoice_pdf(invoice),
                                                      f"{invoice.number}.pdf"))

    def _pdf(self, invoice_id: int, document):
        invoice = db.session.get(Invoice, invoice_id) or abort(404)
        with transaction() as outcome:
            content, filename = document(invoice)
        if not outcome.ok:
            return redirect(_details_url(invoice))
        return send_file(io.BytesIO(content), mimetype="application/pdf", as_attachment=True,
                         download_name=filename)


def _moment_of(day: date) -> datetime:
    """When a status given by its day happened: now for today, noon (UTC) on an earlier day (a
    later day stays later than now, which the domain refuses)."""
    return utcnow() if day == paris_today() else datetime.combine(day, time(12))


def _actionable(invoice: Invoice) -> bool:
    """An unpaid invoice (not a credit note) can be paid by transfer or cancelled by a credit note."""
    return invoice.is_payable


def _details_url(invoice: Invoice) -> str:
    return url_for("invoices.details_view", id=invoice.id)


# --- Monthly close ----------------------------------------------------------------------------


class CloseMonthForm(ConfirmForm):
    period = HiddenField()
    confirm = BooleanField(
        _l("Je confirme l'émission des factures mensuelles de cette période."),
        validators=[DataRequired(message=_l("Cochez la case de confirmation pour lancer la clôture."))])


class MonthlyCloseView(SecureView):
    """Preview the monthly close of a finished month, queue it for the worker (never run in the
    request: it may bill thousands of organisations), and follow its progress."""

    @expose("/")
    def index(self):
        period = request.args.get("periode", "").strip() or monthly.previous_period()
        return self._preview(period, CloseMonthForm(period=period))

    @expose("/executer", methods=("POST",))
    def run(self):
        form = CloseMonthForm()
        period = (form.period.data or "").strip()
        if not form.validate_on_submit():
            return self._preview(period, form)
        with transaction() as outcome:
            monthly.queue_close(period, actor=acting_user())
        if not outcome.ok:
            return self._preview(period, form)
        flash(_("La clôture de %(period)s est en file d'attente : elle sera exécutée par le service "
                "d'envoi (flask outbox work) dans quelques secondes.", period=period_label(period)),
              "success")
        return redirect(url_for(".index", periode=period), code=303)

    def _preview(self, period: str, form: CloseMonthForm):
        job = progress = None
        try:
            monthly.check_closable(period)
            previews = monthly_outlook.preview_month(period)
            job, progress = monthly.latest_close_job(period), monthly.close_progress(period)
        except DomainError as error:
            flash(str(error), "error")
            previews = None
        return self.render("admin/monthly_close.html", period=period, previews=previews, form=form,
                           default_period=monthly.previous_period(), job=job, progress=progress,
                           active=job is not None and job.status in monthly.ACTIVE_CLOSE)


def register(admin) -> None:
    """Add this module's views to the back office."""
    category = _l("Facturation")
    admin.add_view(InvoiceView(Invoice, name=_l("Factures"), endpoint="invoices",
                               url="/admin/factures", category=category))
    admin.add_view(MonthlyCloseView(name=_l("Clôture mensuelle"), endpoint="monthly_close",
                                    url="/admin/cloture-mensuelle", category=category))
