"""The JSON shapes of the objects the platform sees: the API answers them and events carry them.

One spelling for both, so a webhook's `data` is exactly what `GET` of the same object answers.
Links to the client portal are absolute, built on PORTAL_BASE_URL, never on the Host of a request:
the platform's server calls the API, the client's browser opens the portal, and a forged Host
header must not end up in a link. Paths come from the portal's own routes (the URL map), so a link
cannot drift from the page it names, and they are built the same inside a request or in a job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app

from .models import CreditEntry, Invoice, Organisation, Quote, QuoteRequest


def iso(moment: datetime | None) -> str | None:
    """Datetimes are naive UTC in the database: ISO 8601 with its Z here."""
    return moment.isoformat(timespec="seconds") + "Z" if moment is not None else None


def portal_path(endpoint: str, **values: object) -> str:
    """The path of a portal page from the application's root (as PORTAL_URL_PREFIX is written):
    PORTAL_BASE_URL already holds any mount point (SCRIPT_NAME) of the application."""
    return current_app.url_map.bind("portal").build(endpoint, values)


def portal_link(endpoint: str, **values: object) -> str:
    """Absolute URL of a portal page, e.g. `portal_link("client.quote_page", quote_id=12)`."""
    return str(current_app.config["PORTAL_BASE_URL"]).rstrip("/") + portal_path(endpoint, **values)


def organisation_json(organisation: Organisation) -> dict[str, Any]:
    return {
        "object": "organisation",
        "id": organisation.id,
        "external_id": organisation.external_id,
        "name": organisation.name,
        "siren": organisation.siren,
        "siret": organisation.siret,
        "vat_number": organisation.vat_number,
        "billing_mode": organisation.billing_mode.value,
        "billing_email": organisation.billing_email,
        "address": {
            "line1": organisation.address_line1,
            "line2": organisation.address_line2,
            "postal_code": organisation.postal_code,
            "city": organisation.city,
            "country": organisation.country,
        },
        "created_at": iso(organisation.created_at),
    }


def quote_json(quote: Quote) -> dict[str, Any]:
    return {
        "object": "quote",
        "id": quote.id,
        "reference": quote.reference,
        "organisation_id": quote.organisation_id,
        "title": quote.title,
        "status": quote.status.value,
        "billing_mode": quote.billing_mode.value if quote.billing_mode else None,
        "totals": {"total_ht_cents": quote.total_ht_cents, "total_vat_cents": quote.total_vat_cents,
                   "total_ttc_cents": quote.total_ttc_cents, "total_credits": quote.total_credits},
        "currency": "EUR",
        "valid_until": quote.valid_until.isoformat() if quote.valid_until else None,
        "sent_at": iso(quote.sent_at),
        "decided_at": iso(quote.decided_at),
        "created_at": iso(quote.created_at),
        "portal_url": portal_link("client.quote_page", quote_id=quote.id),
        "pdf_url": portal_link("client.quote_pdf", quote_id=quote.id),
    }


def invoice_json(invoice: Invoice) -> dict[str, Any]:
    return {
        "object": "invoice",
        "id": invoice.id,
        "number": invoice.number,
        "kind": invoice.kind.value,
        "status": invoice.status.value,
        "organisation_id": invoice.organisation_id,
        "quote_id": invoice.quote_id,
        "credited_invoice_id": invoice.credited_invoice_id,
        "billing_period": invoice.billing_period,
        "issue_date": invoice.issue_date.isoformat(),
        "due_date": invoice.due_date.isoformat(),
        "totals": {"total_ht_cents": invoice.total_ht_cents, "total_vat_cents": invoice.total_vat_cents,
                   "total_ttc_cents": invoice.total_ttc_cents},
        "currency": invoice.currency,
        "is_payable": invoice.is_payable,
        "paid_at": iso(invoice.paid_at),
        "portal_url": portal_link("client.invoice_page", invoice_id=invoice.id),
        "pdf_url": portal_link("client.invoice_pdf", invoice_id=invoice.id),
    }


def quote_request_json(quote_request: QuoteRequest) -> dict[str, Any]:
    return {
        "object": "quote_request",
        "id": quote_request.id,
        "status": quote_request.status.value,
        "organisation_id": quote_request.organisation_id,
        "requester": {"id": quote_request.requester.id, "email": quote_request.requester.email},
        "items": [{"product_id": line.product_id, "sku": line.product.sku, "name": line.product.name,
                   "quantity": line.quantity} for line in quote_request.lines],
        "message": quote_request.message,
        "created_at": iso(quote_request.created_at),
    }


def entry_json(entry: CreditEntry) -> dict[str, Any]:
    return {
        "object": "credit_entry",
        "id": entry.id,
        "organisation_id": entry.organisation_id,
        "kind": entry.kind.value,
        "amount": entry.amount,
        "quote": {"id": entry.quote.id, "reference": entry.quote.reference} if entry.quote else None,
        "credit_note": ({"id": entry.credit_note.id, "number": entry.credit_note.number}
                        if entry.credit_note else None),
        "external_reference": entry.external_reference,
        "description": entry.reason,
        "created_at": iso(entry.created_at),
    }
