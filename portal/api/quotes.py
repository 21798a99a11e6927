"""API: an organisation's quotes and invoices (lists and one by id), and quote requests.

What the API shows is what the organisation's own users see in their portal: drafts are staff's
work in progress, neither listed nor found (404). Each object carries the absolute links of its
portal page and PDF, for the platform to open them (after a single sign-on, `sessions.py`).
"""

from __future__ import annotations

import enum
from typing import Any

from flask import request
from sqlalchemy import Select, select
from sqlalchemy.orm import InstrumentedAttribute, load_only

from .. import quote_requests, quotes
from ..exceptions import ClientUserNotFound, InvalidApiField, InvoiceNotFound, QuoteNotFound
from ..extensions import db
from ..i18n import lazy_gettext as _l
from ..models import (
    Invoice,
    InvoiceStatus,
    Quote,
    QuoteStatus,
    User,
    UserKind,
)
from ..representations import invoice_json, quote_json, quote_request_json
from . import blueprint, operation
from .credits import json_body, text_field
from .idempotency import idempotent
from .organisations import organisation_or_404
from .pagination import paginate

ONE_OF = _l("l'une des valeurs %(values)s")
REQUEST_ITEMS = _l("une liste de 1 à %(max)s objets {\"product_id\": entier, \"quantity\": entier}")
MAX_ITEMS = 100
MAX_EMAIL = 254
MAX_MESSAGE = 5000
LISTED_QUOTE_STATUSES = tuple(status for status in QuoteStatus if status not in quotes.HIDDEN_FROM_CLIENTS)
# An invoice's columns the API shows: not its PDF, nor its seller and buyer snapshots (JSON).
INVOICE_COLUMNS = (Invoice.id, Invoice.number, Invoice.kind, Invoice.status, Invoice.organisation_id,
                   Invoice.quote_id, Invoice.credited_invoice_id, Invoice.billing_period,
                   Invoice.currency, Invoice.issue_date, Invoice.due_date, Invoice.total_ht_cents,
                   Invoice.total_vat_cents, Invoice.total_ttc_cents, Invoice.paid_at)


# --- Quotes and invoices ----------------------------------------------------------------------


@blueprint.get("/organisations/<int:organisation_id>/quotes")
@operation("quotes:read")
def list_quotes(organisation_id: int):
    """The organisation's quotes, newest first (drafts left out); `status` narrows the list."""
    organisation = organisation_or_404(organisation_id)
    statement = select(Quote).where(Quote.organisation_id == organisation.id,
                                    Quote.status.not_in(quotes.HIDDEN_FROM_CLIENTS))
    return paginate(_status_filter(statement, Quote.status, LISTED_QUOTE_STATUSES), Quote.id, quote_json)


@blueprint.get("/organisations/<int:organisation_id>/invoices")
@operation("quotes:read")
def list_invoices(organisation_id: int):
    """The organisation's invoices and credit notes, newest first; `status` narrows the list."""
    organisation = organisation_or_404(organisation_id)
    statement = (select(Invoice).options(load_only(*INVOICE_COLUMNS, raiseload=True))
                 .where(Invoice.organisation_id == organisation.id))
    return paginate(_status_filter(statement, Invoice.status, tuple(InvoiceStatus)), Invoice.id,
                    invoice_json)


@blueprint.get("/quotes/<int:quote_id>")
@operation("quotes:read")
def get_quote(quote_id: int):
    quote = db.session.get(Quote, quote_id)
    if quote is None or quote.status in quotes.HIDDEN_FROM_CLIENTS:
        raise QuoteNotFound(resource="quote")
    return quote_json(quote)


@blueprint.get("/invoices/<int:invoice_id>")
@operation("quotes:read")
def get_invoice(invoice_id: int):
    invoice = db.session.get(Invoice, invoice_id, options=[load_only(*INVOICE_COLUMNS)])
    if invoice is None:
        raise InvoiceNotFound(resource="invoice")
    return invoice_json(invoice)


def _status_filter(statement: Select, column: InstrumentedAttribute,
                   allowed: tuple[enum.StrEnum, ...]) -> Select:
    """`statement` narrowed to the `status` asked for, one of `allowed` (422 for any other)."""
    status = request.args.get("status")
    if status is None:
        return statement
    values = [member.value for member in allowed]
    if status not in values:
        raise InvalidApiField(field="status", expected=str(ONE_OF) % {"values": ", ".join(values)})
    return statement.where(column == status)


# --- Quote requests ---------------------------------------------------------------------------


@blueprint.post("/organisations/<int:organisation_id>/quote-requests")
@operation("requests:write")
@idempotent
def create_quote_request(organisation_id: int):
    """A quote request on behalf of one of the organisation's client users, as if sent from their
    portal (staff are notified and answer it in the back office)."""
    organisation = organisation_or_404(organisation_id)
    body = json_body()
    requester = _client_user(text_field(body, "email", MAX_EMAIL), organisation_id=organisation.id)
    message = body.get("message")
    created = quote_requests.create_request(
        organisation=organisation, requester=requester, items=_requested_items(body),
        message="" if message in (None, "") else text_field(body, "message", MAX_MESSAGE),
        ip=request.remote_addr,
    )
    return quote_request_json(created), 201


def _client_user(email: str, *, organisation_id: int) -> User:
    user = db.session.scalar(select(User).where(
        User.email == email.lower(), User.kind == UserKind.CLIENT, User.active.is_(True),
        User.organisation_id == organisation_id))
    if user is None:
        raise ClientUserNotFound(email=email)
    return user


def _requested_items(body: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(product_id, quantity) pairs as sent: the domain refuses an empty list, an unknown or
    unpublished product and a quantity that is not a whole number from 1 to its maximum, as it
    does for the portal."""
    items = body.get("items")
    if not isinstance(items, list) or len(items) > MAX_ITEMS or not all(isinstance(i, dict) for i in items):
        raise InvalidApiField(field="items", expected=str(REQUEST_ITEMS) % {"max": MAX_ITEMS})
    return [(item.get("product_id"), item.get("quantity")) for item in items]

