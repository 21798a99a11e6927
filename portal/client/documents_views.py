"""PDF downloads of the portal: only the organisation's own quotes and invoices."""

from __future__ import annotations

from flask import Response, abort

from .. import documents, quotes
from ..extensions import pdf_limit
from ..models import Invoice, Quote
from ..transaction import transactional
from . import blueprint
from .access import client_required, own


def pdf_response(data: bytes, filename: str) -> Response:
    """A PDF download with a safe file name."""
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@blueprint.get("/devis/<int:quote_id>/pdf")
@client_required
@pdf_limit
@transactional  # keep the bytes rendered at first need
def quote_pdf(quote_id: int):
    """The quote's PDF: stored at the first download of each state of the quote, then served."""
    quote = own(Quote, quote_id)
    if quote.status in quotes.HIDDEN_FROM_CLIENTS:
        abort(404)
    data, filename = documents.stored_quote_pdf(quote), f"{quote.reference}.pdf"
    return pdf_response(data, filename)


@blueprint.get("/factures/<int:invoice_id>/pdf")
@client_required
@pdf_limit
@transactional  # keep the bytes rendered at first need
def invoice_pdf(invoice_id: int):
    """The invoice's PDF: its original, stored at first download and served identically ever
    after; once paid, its rendering « acquittée »."""
    invoice = own(Invoice, invoice_id)
    return pdf_response(*documents.invoice_download(invoice))
