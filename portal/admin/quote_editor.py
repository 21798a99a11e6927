"""The quote editor: lines from any product (published or not) or free lines, then send, revise,
cancel, or validate on behalf of the client (only under the client's mandate)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Response, abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import format_date
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import FieldList, FormField, SelectField, StringField
from wtforms import Form as PlainForm
from wtforms.validators import Optional

from .. import billing, documents, quotes, submissions
from ..dates import period_bounds
from ..exceptions import (
    EmptyQuote,
    InvalidInput,
    InvalidRecipient,
    InvalidVatRate,
    MandateMissing,
    OnBehalfNoteMissing,
    OnBehalfNoteTooLong,
    QuantityOutOfRange,
    UnknownProduct,
)
from ..extensions import db, pdf_limit
from ..forms import MAX_ID, EuroField, IntegerInput, OnceForm, parse_int
from ..i18n import lazy_gettext as _l
from ..labels import quote_reference_label, vat_rate
from ..models import BillingMode, Channel, Invoice, Organisation, Product, Quote, QuoteStatus, User
from ..transaction import transaction, transactional
from .base import SecureView

BLANK_LINES = 3
# Validating on the client's behalf: how the client asked, kept in the decision's evidence.
NOTE_FIELD = "on_behalf_note"
NOTE_ERRORS = (OnBehalfNoteMissing, OnBehalfNoteTooLong)
# The editor's "Envoyer" is a submit button of its form under this name: the edits are saved
# first, then the send confirmation shows what was saved (a plain link dropped them).
SEND_BUTTON = "envoyer"
RECIPIENT_MISSING = _l("Choisissez le destinataire avant d’envoyer le devis : un responsable ou "
                       "un gestionnaire de l’organisation, qui recevra le lien pour le valider.")


class LineForm(PlainForm):
    """One line: a product, or a free label with a price; the price may override the product's."""

    product_id = SelectField(_l("Produit"), coerce=str, validate_choice=False)
    label = StringField(_l("Libellé"))
    quantity = StringField(_l("Quantité"))  # parsed in to_input: its refusal names the quantity
    unit_price = EuroField(_l("Prix unitaire HT (€)"))
    vat_rate_bp = SelectField(_l("TVA"), coerce=str, validate_choice=False)

    def is_blank(self) -> bool:
        return not self.product_id.data and not (self.label.data or "").strip()

    def to_input(self) -> quotes.LineInput:
        """The line for the domain; a tampered product or VAT choice is refused as such."""
        product, vat = self.product_id.data or "", self.vat_rate_bp.data or ""
        return quotes.LineInput(
            product_id=parse_int(product, minimum=1, maximum=MAX_ID, error=UnknownProduct)
            if product else None,
            label=(self.label.data or "").strip() or None,
            quantity=parse_int(self.quantity.data, minimum=1, maximum=quotes.MAX_QUANTITY,
                               error=QuantityOutOfRange),
            unit_price_cents=self.unit_price.data,
            vat_rate_bp=parse_int(vat, minimum=0, maximum=10_000, error=InvalidVatRate) if vat else None,
        )


class QuoteForm(OnceForm):
    title = StringField(_l("Objet"))
    recipient_id = SelectField(_l("Destinataire"), coerce=str, validate_choice=False)
    validity_days = IntegerInput(_l("Validité (jours)"), minimum=1, maximum=365, validators=[Optional()])
    lines = FieldList(FormField(LineForm), min_entries=1)


class ActionForm(FlaskForm):
    """A one-button action: CSRF-protected POST, its confirmation being the page that shows it."""


@dataclass(frozen=True)
class QuoteBilling:
    """Where an accepted quote is billed: its invoice once issued; monthly, until then, the month
    whose invoice will carry it and the day that invoice is issued."""

    invoice: Invoice | None
    month: str = ""
    issue_day: str = ""


def _quote_billing(quote: Quote) -> QuoteBilling | None:
    if quote.status != QuoteStatus.ACCEPTED:
        return None
    if quote.monthly_invoice_id is not None:
        return QuoteBilling(db.session.get(Invoice, quote.monthly_invoice_id))
    if quote.billing_mode == BillingMode.MONTHLY and quote.billing_period:
        first_day, issue_day = period_bounds(quote.billing_period)
        return QuoteBilling(None, format_date(first_day, "MMMM y"), format_date(issue_day, "long"))
    return QuoteBilling(db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id)))


class QuoteEditorView(SecureView):
    def is_visible(self) -> bool:
        return False

    @expose("/")
    def index(self):
        return redirect(url_for("organisations.index_view"))

    @expose("/nouveau/<int:organisation_id>", methods=["GET", "POST"])
    def new(self, organisation_id: int):
        organisation = db.session.get(Organisation, organisation_id) or abort(404)
        form = _quote_form(organisation, None)
        if form.validate_on_submit() and _may_send(form, None):
            with transaction() as outcome:
                submissions.claim(form.submission_token.data)
                quote = quotes.create_draft(organisation=organisation, actor=current_user,
                                            ip=request.remote_addr, **_draft_fields(form))
            if outcome.ok:
                flash(_("%(name)s enregistré.", name=quote_reference_label(quote)), "success")
                return _after_save(quote)
        return self._render_editor(organisation, None, form)

    @expose("/<int:quote_id>", methods=["GET", "POST"])
    def detail(self, quote_id: int):
        quote = db.session.get(Quote, quote_id) or abort(404)
        if quote.status != QuoteStatus.DRAFT:
            return self.render("admin/quote_detail.html", quote=quote, confirm=ActionForm(),
                               terms=quotes.current_terms(), billing=_quote_billing(quote))
        form = _quote_form(quote.organisation, quote)
        if form.validate_on_submit() and _may_send(form, quote):
            with transaction() as outcome:
                submissions.claim(form.submission_token.data)
                quotes.update_draft(quote, actor=current_user, ip=request.remote_addr,
                                    **_draft_fields(form))
            if outcome.ok:
                flash(_("Brouillon enregistré."), "success")
                return _after_save(quote)
        return self._render_editor(quote.organisation, quote, form)

    @expose("/<int:quote_id>/envoyer", methods=["GET", "POST"])
    def send(self, quote_id: int):
        quote = db.session.get(Quote, quote_id) or abort(404)
        if request.method == "GET" and quote.status == QuoteStatus.DRAFT and quote.recipient is None:
            # No confirmation of a send that would be refused: the editor says what is missing.
            form = _quote_form(quote.organisation, quote)
            form.recipient_id.errors = [str(RECIPIENT_MISSING)]
            return self._render_editor(quote.organisation, quote, form)
        return self._confirmed(quote_id, "send", lambda quote: quotes.send(
            quote, actor=current_user, ip=request.remote_addr),
            _("Devis %(ref)s envoyé au client."))

    @expose("/<int:quote_id>/annuler", methods=["GET", "POST"])
    def cancel(self, quote_id: int):
        return self._confirmed(quote_id, "cancel", lambda quote: quotes.cancel(
            quote, actor=current_user, ip=request.remote_addr), _("Devis %(ref)s annulé."))

    @expose("/<int:quote_id>/valider", methods=["GET", "POST"])
    def accept_on_behalf(self, quote_id: int):
        quote = db.session.get(Quote, quote_id) or abort(404)
        if request.method == "GET" and not quotes.mandate_allows(quote.organisation):
            flash(str(MandateMissing()), "error")  # the POST is refused by the domain itself
            return redirect(url_for(".detail", quote_id=quote.id))
        terms_id, note = request.form.get("terms_version_id"), request.form.get(NOTE_FIELD)
        return self._confirmed(quote_id, "accept", lambda quote: quotes.accept(
            quote, actor=current_user, terms_version=_terms(terms_id), channel=Channel.BACK_OFFICE,
            ip=request.remote_addr, user_agent=request.user_agent.string, note=note),
            _("Devis %(ref)s validé pour le compte du client."))

    @expose("/<int:quote_id>/pdf")
    @pdf_limit
    @transactional  # keep the bytes rendered at first need
    def pdf(self, quote_id: int):
        """The quote's PDF, as the client receives it (a draft's: a preview, never stored)."""
        quote = db.session.get(Quote, quote_id) or abort(404)
        content, filename = documents.stored_quote_pdf(quote), f"{quote.reference}.pdf"
        response = Response(content, mimetype="application/pdf")
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    @expose("/<int:quote_id>/reviser", methods=["POST"])
    def revise(self, quote_id: int):
        quote = db.session.get(Quote, quote_id) or abort(404)
        if not ActionForm().validate_on_submit():
            abort(400)
        with transaction() as outcome:
            revision = quotes.revise(quote, actor=current_user, ip=request.remote_addr)
        if not outcome.ok:
            return redirect(url_for(".detail", quote_id=quote.id))
        flash(_("Révision %(ref)s créée : modifiez-la puis envoyez-la.", ref=revision.reference),
              "success")
        return redirect(url_for(".detail", quote_id=revision.id))

    def _confirmed(self, quote_id: int, action: str, perform, done_message: str):
        """GET shows the confirmation page; its POST performs the action once."""
        quote = db.session.get(Quote, quote_id) or abort(404)
        form = ActionForm()
        if request.method == "POST":
            if not form.validate_on_submit():
                abort(400)
            with transaction() as outcome:
                perform(quote)
            if outcome.ok:
                flash(done_message % {"ref": quote.reference}, "success")
            elif isinstance(outcome.error, NOTE_ERRORS):
                # The note is refused (flashed above): the confirmation again, what was typed kept.
                return self.render("admin/quote_confirm.html", quote=quote, action=action, form=form,
                                   terms=quotes.current_terms(), note=request.form.get(NOTE_FIELD, ""),
                                   note_invalid=True), 422
            return redirect(url_for(".detail", quote_id=quote.id))
        return self.render("admin/quote_confirm.html", quote=quote, action=action, form=form,
                           terms=quotes.current_terms(), note="", note_invalid=False)

    def _render_editor(self, organisation: Organisation, quote: Quote | None, form: QuoteForm):
        products = db.session.scalars(select(Product).order_by(Product.published.desc(),
                                                               Product.name)).all()
        return self.render("admin/quote_editor.html", organisation=organisation, quote=quote,
                           form=form, products=products, vat_rates=billing.VAT_RATES_BP)


def _may_send(form: QuoteForm, quote: Quote | None) -> bool:
    """False, with the message next to the recipient field, when "Envoyer" was pressed on a draft
    that would have no recipient: nothing is saved, the edits stay in the form."""
    if SEND_BUTTON not in request.form or form.recipient_id.data or (
            quote is not None and quote.recipient is not None):
        return True
    form.recipient_id.errors = [str(RECIPIENT_MISSING)]
    return False


def _after_save(quote: Quote):
    """After a save, the send confirmation if "Envoyer" was pressed, else the editor again."""
    if SEND_BUTTON in request.form:
        return redirect(url_for(".send", quote_id=quote.id))
    return redirect(url_for(".detail", quote_id=quote.id))


def _terms(terms_id: str | None):
    """The CGV version the confirmation page showed; None (refused as such) for a bad id."""
    from ..models import TermsVersion

    try:
        return db.session.get(TermsVersion, parse_int(terms_id, minimum=1, maximum=MAX_ID))
    except InvalidInput:
        return None


def _quote_form(organisation: Organisation, quote: Quote | None) -> QuoteForm:
    """The editor's form, pre-filled from the draft, with blank lines to add more."""
    if request.method == "POST":
        form = QuoteForm()
    else:
        form = QuoteForm(obj=None)
        form.lines.pop_entry()
        if quote is not None:
            form.title.data = quote.title
            form.recipient_id.data = str(quote.recipient_id or "")
            form.validity_days.data = quote.validity_days
            for line in quote.lines:
                form.lines.append_entry({
                    "product_id": str(line.product_id or ""), "label": line.label,
                    "quantity": line.quantity, "unit_price": line.unit_price_cents,
                    "vat_rate_bp": str(line.vat_rate_bp)})
        for _blank in range(BLANK_LINES):
            form.lines.append_entry()
    recipients = db.session.scalars(
        select(User).where(User.organisation_id == organisation.id, User.active.is_(True),
                           User.client_role.in_(quotes.DECIDING_ROLES)).order_by(User.full_name)
    ).all()
    form.recipient_id.choices = [("", _("— choisir —"))] + [
        (str(user.id), f"{user.full_name} <{user.email}>") for user in recipients]
    products = db.session.scalars(select(Product).order_by(Product.published.desc(), Product.name))
    product_choices = [("", _("— ligne libre —"))] + [
        (str(p.id), p.name if p.published else _("%(name)s (non publié)", name=p.name)) for p in products]
    vat_choices = [("", _("— TVA du produit —"))] + [(str(rate), vat_rate(rate))
                                                      for rate in billing.VAT_RATES_BP]
    for entry in form.lines:
        entry.form.product_id.choices = product_choices
        entry.form.vat_rate_bp.choices = vat_choices
    return form


def _draft_fields(form: QuoteForm) -> dict:
    """Domain arguments from the editor's form; blank lines are ignored, a quote needs one line."""
    lines = [entry.form.to_input() for entry in form.lines if not entry.form.is_blank()]
    if not lines:
        raise EmptyQuote()
    recipient_id = form.recipient_id.data or ""
    recipient = db.session.get(User, parse_int(recipient_id, minimum=1, maximum=MAX_ID,
                                               error=InvalidRecipient)) if recipient_id else None
    return {"lines": lines, "recipient": recipient, "title": form.title.data or "",
            "validity_days": form.validity_days.data}


def register(admin) -> None:
    admin.add_view(QuoteEditorView(name=_l("Devis"), endpoint="quote_editor", url="/admin/devis"))
