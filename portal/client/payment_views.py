"""The payment page of an invoice: card (Stripe.js, see `payments`) and bank transfer, and the
card's return page, which asks Stripe how the payment went and records it (once, with the webhook)."""

from __future__ import annotations

import re

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import payments
from ..exceptions import (
    CardDeclined,
    CardNotRecognised,
    CardPaymentUnavailable,
    PayingRoleRequired,
    PaymentIntentRefused,
)
from ..models import Invoice, InvoiceStatus
from ..payments import Outcome
from ..transaction import transaction, transactional
from . import blueprint
from .access import can_decide, client_required, own

SETUP_INTENT_ID = re.compile(r"seti_[A-Za-z0-9_]{1,200}")


@blueprint.get("/factures/<int:invoice_id>/payer")
@client_required
@transactional
def invoice_payment(invoice_id: int):
    """The payment page: the payment modules offered for an unpaid invoice."""
    invoice = own(Invoice, invoice_id)
    refusal = _refusal(invoice)
    if refusal is not None:
        return refusal
    card, card_error = None, None
    if payments.enabled():
        try:
            card = payments.card_checkout(invoice)
        except CardPaymentUnavailable as error:
            card_error = str(error)
        if card is not None and card.outcome is not None:
            return _show_outcome(invoice, card.outcome)
    return render_template("client/payment.html", invoice=invoice, seller=invoice.seller, card=card,
                           card_error=card_error, stripe=payments.browser_settings())


@blueprint.get("/factures/<int:invoice_id>/payer/retour")
@client_required
def invoice_payment_return(invoice_id: int):
    """Back from the card payment: ask Stripe how it went, record a success, say so."""
    invoice = own(Invoice, invoice_id)
    if not can_decide():
        return _refusal(invoice)
    with transaction(refusals=CardPaymentUnavailable) as settled:
        outcome = payments.settle_return(invoice, request.args.get("payment_intent"))
    if not settled.ok:
        return redirect(url_for("client.invoice_page", invoice_id=invoice.id))
    return _show_outcome(invoice, outcome)


@blueprint.post("/factures/<int:invoice_id>/payer/carte")
@client_required
def invoice_payment_confirm(invoice_id: int):
    """localstripe only (`payments.confirms_on_server`): confirm the card the page collected.
    Every tab that ends on the paid invoice (this one's payment, or a sibling's) gets `succeeded`."""
    invoice = own(Invoice, invoice_id)
    if not (payments.enabled() and payments.confirms_on_server()):
        abort(404)
    if not can_decide():
        raise PayingRoleRequired()
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # "[[[[…" nested deeper than Python's limit is no ValueError
        body = None
    setup_intent = body.get("setup_intent") if isinstance(body, dict) else None
    if not isinstance(setup_intent, str) or not SETUP_INTENT_ID.fullmatch(setup_intent):
        raise CardNotRecognised()
    with transaction(refusals=()):  # committed, a decline too; a refusal is the JSON error
        result = payments.confirm_on_server(invoice, setup_intent)
    status = ("declined" if result.declined else "succeeded" if result.outcome in payments.PAID_OUTCOMES
              else str(result.outcome or "requires_action"))
    answer = {"status": status, "outcome": str(result.outcome) if result.outcome else None,
              "payment_intent": result.intent_id, "client_secret": result.client_secret,
              "return_url": url_for("client.invoice_payment_return", invoice_id=invoice.id,
                                    payment_intent=result.intent_id)}
    if result.declined:
        return jsonify(error=str(CardDeclined()), **answer), CardDeclined.http_status
    return jsonify(answer)


def _refusal(invoice: Invoice):
    """The way back to the invoice when the current user may not pay it, or it is not to pay."""
    if not can_decide():
        flash(str(PayingRoleRequired()), "error")
    elif not invoice.is_payable:
        flash(_("Cette facture n'est pas à régler (déjà payée ou annulée)."), "info")
    else:
        return None
    return redirect(url_for("client.invoice_page", invoice_id=invoice.id))


def _show_outcome(invoice: Invoice, outcome: Outcome):
    """Tell how the card payment went, on the invoice (settled) or the payment page (to retry)."""
    if invoice.status == InvoiceStatus.PAID and outcome not in (Outcome.FLAGGED, Outcome.REFUSED):
        flash(_("Paiement reçu, merci : la facture %(number)s est réglée.", number=invoice.number), "success")
        return redirect(url_for("client.invoice_page", invoice_id=invoice.id))
    messages = {
        Outcome.PROCESSING: (_("Votre paiement est en cours de traitement : la facture sera marquée "
                               "payée dès sa confirmation."), "info"),
        Outcome.FLAGGED: (_("Votre paiement a bien été reçu ; notre équipe doit le vérifier avant de "
                            "marquer la facture payée et reviendra vers vous si nécessaire."), "info"),
        Outcome.REFUSED: (str(PaymentIntentRefused()), "error"),
        Outcome.DECLINED: (str(CardDeclined()), "error"),
    }
    message, category = messages.get(outcome, (
        _("Le paiement par carte n'a pas été finalisé : aucun montant n'a été débité."), "info"))
    flash(message, category)
    retry = invoice.status == InvoiceStatus.ISSUED and outcome in (Outcome.DECLINED, Outcome.INCOMPLETE)
    return redirect(url_for("client.invoice_payment" if retry else "client.invoice_page",
                            invoice_id=invoice.id))
