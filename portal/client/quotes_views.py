"""Mon Organisation > Devis: the list, the quote page with its CGV, and Valider / Refuser."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import BooleanField, HiddenField, TextAreaField

from .. import quotes
from ..dates import paris_today, period_bounds
from ..extensions import db
from ..i18n import lazy_gettext as _l
from ..models import BillingMode, Channel, CreditEntry, Invoice, Quote, QuoteStatus, TermsVersion
from ..read_only import read_only
from ..seller import current_terms
from ..transaction import transaction
from . import blueprint
from .access import can_decide, client_required, own, owned

PAGE_SIZE = 50
LINK_SESSION_KEY = "arrived_by_link_for_quote"


class DecisionForm(FlaskForm):
    terms_version_id = HiddenField()
    accept_terms = BooleanField(_l("J'ai lu et j'accepte les Conditions Générales de Vente"))
    reason = TextAreaField(_l("Motif du refus (facultatif)"))


@blueprint.get("/")
@client_required
def home():
    """Mon Organisation: the Devis page is the portal's home."""
    return redirect(url_for("client.quote_list"))


@blueprint.get("/devis")
@client_required
@read_only
def quote_list():
    """Quotes awaiting a decision first, then the history (keyset-paginated)."""
    organisation_id = current_user.organisation_id
    pending = db.session.scalars(
        select(Quote).where(Quote.organisation_id == organisation_id, Quote.status == QuoteStatus.SENT)
        .order_by(Quote.valid_until, Quote.id)
    ).all()
    before = request.args.get("avant", type=int)
    history_query = select(Quote).where(Quote.organisation_id == organisation_id,
                                        Quote.status.not_in((QuoteStatus.SENT, *quotes.HIDDEN_FROM_CLIENTS)))
    if before:
        history_query = history_query.where(Quote.id < before)
    history = db.session.scalars(history_query.order_by(Quote.id.desc()).limit(PAGE_SIZE)).all()
    return render_template("client/quotes.html", pending=pending, history=history,
                           page_size=PAGE_SIZE)


def _visible_quote(quote_id: int) -> Quote:
    return _visible(own(Quote, quote_id))


def _visible(quote: Quote) -> Quote:
    if quote.status in quotes.HIDDEN_FROM_CLIENTS:
        abort(404)
    return quote


@blueprint.get("/devis/<int:quote_id>")
@client_required
@read_only
def quote_page(quote_id: int):
    """The quote: lines, totals, validity, billing mode, the CGV and the decision form."""
    quote, terms = quotes.quote_with_current_terms(quote_id)
    return _render_quote(_visible(owned(quote)), None, terms=terms)


def _render_quote(quote: Quote, form: DecisionForm | None, status: int = 200, *,
                  terms: TermsVersion | None = None, terms_missing: bool = False):
    """The quote page; `form`, after a refused POST, is the decision form as posted (its refusal
    reason is shown again), None otherwise; `terms_missing`: Valider came without the CGV box
    ticked (the message is shown next to it)."""
    terms = terms or current_terms()
    # Only an accepted quote has an invoice (per order): no query for the others.
    invoice = (db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))
               if quote.status == QuoteStatus.ACCEPTED else None)
    return render_template("client/quote.html", quote=quote, form=form, terms=terms,
                           can_decide=can_decide(), invoice=invoice,
                           expired=_is_past_validity(quote), terms_missing=terms_missing), status


def _is_past_validity(quote: Quote) -> bool:
    return (quote.status == QuoteStatus.SENT and quote.valid_until is not None
            and quote.valid_until < paris_today())


@blueprint.post("/devis/<int:quote_id>/decision")
@client_required
def decide(quote_id: int):
    """Valider (with the CGV checkbox) or Refuser (with an optional reason)."""
    quote, in_force = quotes.quote_with_current_terms(quote_id)
    quote = _visible(owned(quote))
    form = DecisionForm()
    if not form.validate_on_submit():
        abort(400)
    action = request.form.get("action")
    if action not in ("valider", "refuser"):
        abort(400)
    # quote.js says so before any request; this check stays for a browser without it.
    if action == "valider" and not form.accept_terms.data:
        return _render_quote(quote, form, 422, terms_missing=True)
    with transaction() as outcome:
        decision = _record_decision(quote, form, action, in_force)
    if not outcome.ok:
        return _render_quote(_visible_quote(quote_id), DecisionForm(formdata=None), 409)
    return _after_decision(quote, decision.kind.value)


def _record_decision(quote: Quote, form: DecisionForm, action: str, in_force: TermsVersion | None):
    # The CGV read on the page, if it is the version in force; any other is refused as changed.
    read = in_force if in_force is not None and form.terms_version_id.data == str(in_force.id) else None
    channel = Channel.EMAIL_LINK if session.get(LINK_SESSION_KEY) == quote.id else Channel.PORTAL
    arguments = dict(actor=current_user, terms_version=read, channel=channel,
                     ip=request.remote_addr, user_agent=request.user_agent.string)
    if action == "valider":
        return quotes.accept(quote, **arguments)
    return quotes.refuse(quote, reason=form.reason.data, **arguments)


def _after_decision(quote: Quote, kind: str):
    if kind == "refused":
        flash(_("Vous avez refusé le devis %(ref)s. Merci pour votre réponse.", ref=quote.reference),
              "success")
        return redirect(url_for("client.quote_page", quote_id=quote.id))
    if quote.billing_mode == BillingMode.MONTHLY:
        return redirect(url_for("client.quote_confirmation", quote_id=quote.id))
    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))
    flash(_("Devis %(ref)s validé. Votre facture %(number)s est prête à être réglée.",
            ref=quote.reference, number=invoice.number), "success")
    return redirect(url_for("client.invoice_payment", invoice_id=invoice.id))


@blueprint.get("/devis/<int:quote_id>/confirmation")
@client_required
def quote_confirmation(quote_id: int):
    """Monthly billing: the credits granted now and the date the invoice will be issued."""
    quote = _visible_quote(quote_id)
    if quote.status != QuoteStatus.ACCEPTED:
        return redirect(url_for("client.quote_page", quote_id=quote.id))
    credits = db.session.scalar(select(func.coalesce(func.sum(CreditEntry.amount), 0))
                                .where(CreditEntry.quote_id == quote.id))
    invoice_date = None
    if quote.billing_period:
        _first, next_month = period_bounds(quote.billing_period)
        invoice_date = next_month
    return render_template("client/quote_confirmation.html", quote=quote, credits=credits,
                           invoice_date=invoice_date)


@blueprint.get("/cgv")
@client_required
def terms_page():
    """The current Conditions Générales de Vente, in full."""
    terms = current_terms()
    if terms is None:
        abort(404)
    return render_template("client/terms.html", terms=terms)

