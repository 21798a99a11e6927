"""Factures, Crédits, Demandes de devis and Paramètres of the client portal."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload, load_only, selectinload
from wtforms import BooleanField, TextAreaField

from .. import monthly_outlook, quote_requests, quotes, submissions
from ..credits import credit_balance, credit_note_reversal  # by name: `credits` is this module's view
from ..exceptions import InvalidInput, RequestedQuantityOutOfRange
from ..extensions import db
from ..forms import OnceForm, int_arg, parse_int
from ..i18n import lazy_gettext as _l
from ..models import (
    BillingMode,
    CreditEntry,
    Invoice,
    Product,
    QuoteRequest,
    QuoteRequestLine,
    User,
)
from ..read_only import read_only
from ..transaction import transaction
from . import blueprint
from .access import can_decide, client_required, own, responsable_required

PAGE_SIZE = 50


def _keyset(statement, key):
    before = int_arg("avant")
    if before:
        statement = statement.where(key < before)
    return db.session.scalars(statement.order_by(key.desc()).limit(PAGE_SIZE)).all()


# --- Factures ---------------------------------------------------------------------------------


# What the list shows of an invoice, read alone: the seller's and buyer's snapshots (JSON) and the
# other columns were most of the page's time; anything else read from these rows raises. Built
# once, the organisation and the page as parameters.
LISTED_COLUMNS = (Invoice.id, Invoice.kind, Invoice.number, Invoice.status, Invoice.total_ttc_cents,
                  Invoice.issue_date, Invoice.due_date)
_IS_UNPAID = Invoice.is_payable
_OWN_INVOICES = (select(Invoice).options(load_only(*LISTED_COLUMNS, raiseload=True))
                 .where(Invoice.organisation_id == bindparam("organisation_id")))
UNPAID_INVOICES = _OWN_INVOICES.where(_IS_UNPAID).order_by(Invoice.due_date, Invoice.id)
# The rest, newest first through (organisation_id, id), whatever the number of unpaid ones.
_OTHER_INVOICES = _OWN_INVOICES.where(~_IS_UNPAID).order_by(Invoice.id.desc()).limit(PAGE_SIZE)
OTHER_INVOICES = {False: _OTHER_INVOICES, True: _OTHER_INVOICES.where(Invoice.id < bindparam("before"))}




@blueprint.get("/factures")
@client_required
@read_only
def invoice_list():
    """The organisation's invoices and credit notes, unpaid first; monthly, what awaits invoicing."""
    parameters = {"organisation_id": current_user.organisation_id,
                  "before": int_arg("avant")}
    unpaid = db.session.scalars(UNPAID_INVOICES, parameters).all()
    others = db.session.scalars(OTHER_INVOICES[bool(parameters["before"])], parameters).all()
    waiting = [] if parameters["before"] else monthly_outlook.invoices_to_come(current_user.organisation_id)
    billed_monthly = current_user.organisation.billing_mode == BillingMode.MONTHLY or bool(waiting)
    return render_template("client/invoices.html", unpaid=unpaid, others=others, waiting=waiting,
                           monthly=billed_monthly and not parameters["before"], page_size=PAGE_SIZE,
                           can_pay=can_decide())


@blueprint.get("/factures/<int:invoice_id>")
@client_required
@read_only
def invoice_page(invoice_id: int):
    """One invoice: its lines, status and payments; a credit note, the credits it took back."""
    invoice = own(Invoice, invoice_id)
    return render_template("client/invoice.html", invoice=invoice, can_pay=can_decide(),
                           seller=invoice.seller, reversal=credit_note_reversal(invoice))


# --- Crédits ----------------------------------------------------------------------------------


@blueprint.get("/credits")
@client_required
@read_only
def credits():
    """The credit balance and its ledger."""
    organisation_id = current_user.organisation_id
    entries = _keyset(select(CreditEntry).where(CreditEntry.organisation_id == organisation_id)
                      .options(joinedload(CreditEntry.quote), joinedload(CreditEntry.credit_note)),
                      CreditEntry.id)
    return render_template("client/credits.html", balance=credit_balance(organisation_id),
                           entries=entries, page_size=PAGE_SIZE)


# --- Demandes de devis ------------------------------------------------------------------------


class RequestForm(OnceForm):
    message = TextAreaField(_l("Votre message (facultatif)"))


@blueprint.route("/demandes", methods=["GET", "POST"])
@client_required
def requests():
    """Ask for a quote on published products; the list of requests and their outcome."""
    products = db.session.scalars(select(Product).where(Product.published.is_(True))
                                  .order_by(Product.name)).all()
    form = RequestForm()
    if form.validate_on_submit():
        with transaction() as outcome:
            submissions.claim(form.submission_token.data)
            quote_requests.create_request(organisation=current_user.organisation, requester=current_user,
                                          items=_requested_items(products), message=form.message.data or "",
                                          ip=request.remote_addr)
        if outcome.ok:
            flash(_("Votre demande de devis a été envoyée. Nous vous répondrons rapidement."), "success")
            return redirect(url_for("client.requests"))
    sent = _keyset(select(QuoteRequest).where(QuoteRequest.organisation_id == current_user.organisation_id)
                   .options(selectinload(QuoteRequest.lines).joinedload(QuoteRequestLine.product),
                            joinedload(QuoteRequest.quote)), QuoteRequest.id)
    return render_template("client/requests.html", form=form, products=products, sent=sent,
                           page_size=PAGE_SIZE)


def _requested_items(products: list[Product]) -> list[tuple[int, int]]:
    """(product id, quantity) for every product given a quantity (0 or blank: not asked for);
    anything but a whole number from 0 to quotes.MAX_QUANTITY is refused."""
    items = []
    for product in products:
        raw = (request.form.get(f"quantity-{product.id}") or "").strip()
        if not raw:
            continue
        try:
            quantity = parse_int(raw, minimum=0, maximum=quotes.MAX_QUANTITY)
        except InvalidInput as error:
            raise RequestedQuantityOutOfRange(name=product.name, maximum=error.params["maximum"]) from None
        if quantity > 0:
            items.append((product.id, quantity))
    return items


# --- Paramètres -------------------------------------------------------------------------------


class MandateForm(FlaskForm):
    allowed = BooleanField(
        _l("Autoriser l’équipe commerciale à valider vos devis pour votre compte"))


@blueprint.route("/parametres", methods=["GET", "POST"])
@responsable_required
def settings():
    """The organisation's users and the mandate for staff validation (responsable only)."""
    organisation = current_user.organisation
    form = MandateForm()
    if form.validate_on_submit():
        with transaction() as outcome:
            quotes.set_mandate(organisation, allowed=bool(form.allowed.data), actor=current_user,
                               ip=request.remote_addr)
        if outcome.ok:
            flash(_("Validation pour votre compte autorisée.") if form.allowed.data
                  else _("Validation pour votre compte retirée."), "success")
            return redirect(url_for("client.settings"))
    elif request.method == "POST":
        abort(400)
    form.allowed.data = organisation.staff_validation_allowed
    users = db.session.scalars(select(User).where(User.organisation_id == organisation.id)
                               .order_by(User.full_name)).all()
    changed_by = (db.session.get(User, organisation.staff_validation_changed_by_id)
                  if organisation.staff_validation_changed_by_id else None)
    return render_template("client/settings.html", organisation=organisation, users=users, form=form,
                           changed_by=changed_by)
