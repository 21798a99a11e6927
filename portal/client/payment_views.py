"""The payment page of an invoice: the payment modules offered (bank transfer for now)."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _

from ..models import Invoice, InvoiceKind, InvoiceStatus
from . import blueprint
from .access import can_decide, client_required, own


@blueprint.get("/factures/<int:invoice_id>/payer")
@client_required
def invoice_payment(invoice_id: int):
    """The payment page: the payment modules offered for an unpaid invoice."""
    invoice = own(Invoice, invoice_id)
    if not can_decide():
        flash(_("Seuls le responsable et les gestionnaires de l’organisation peuvent régler une facture."),
              "error")
        return redirect(url_for("client.invoice_page", invoice_id=invoice.id))
    if invoice.kind != InvoiceKind.INVOICE or invoice.status != InvoiceStatus.ISSUED:
        flash(_("Cette facture n'est pas à régler (déjà payée ou annulée)."), "info")
        return redirect(url_for("client.invoice_page", invoice_id=invoice.id))
    return render_template("client/payment.html", invoice=invoice, seller=invoice.seller)
