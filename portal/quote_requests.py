"""Quote requests: a client asks for a quote on published products; staff answer it with a
pre-filled draft or decline it with a reason.

Every function flushes only; the caller commits once. Answering and declining are one
conditional UPDATE (`WHERE status = 'new'`), so one staff click wins and the others get
`RequestNotOpen`.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import current_app
from sqlalchemy import update

from . import audit, events, outbox, quotes
from .exceptions import DeclineReasonMissing, EmptyRequest, NotAllowed, RequestNotOpen, UnknownProduct
from .extensions import db
from .models import (
    Organisation,
    Quote,
    QuoteRequest,
    QuoteRequestLine,
    QuoteRequestStatus,
    User,
    UserKind,
    utcnow,
)
from .representations import quote_request_json


def create_request(*, organisation: Organisation, requester: User, items: Iterable[tuple[int, int]],
                   message: str = "", ip: str | None = None) -> QuoteRequest:
    """A client asks for a quote on published products; staff are notified."""
    if requester.kind != UserKind.CLIENT or requester.organisation_id != organisation.id:
        raise NotAllowed()
    request = QuoteRequest(organisation=organisation, requester=requester,
                           message=(message or "").strip())
    for product_id, quantity in items:
        product = quotes.find_product(product_id)
        if product is None or not product.published:
            raise UnknownProduct()
        quotes.check_quantity(quantity)
        request.lines.append(QuoteRequestLine(product=product, quantity=quantity))
    if not request.lines:
        raise EmptyRequest()
    db.session.add(request)
    db.session.flush()
    audit.record("request.created", request, actor=requester, organisation_id=organisation.id, ip=ip)
    events.record("request.received", organisation, quote_request_json(request))
    outbox.enqueue(recipient=current_app.config["STAFF_NOTIFICATION_EMAIL"],
                   template="request_received", context={"request_id": request.id},
                   dedupe_key=f"request_received:{request.id}")
    return request


def answer_request(request: QuoteRequest, *, actor: User, ip: str | None = None) -> Quote:
    """Answer a request with a draft quote pre-filled from it and linked to it."""
    _claim_request(request, QuoteRequestStatus.ANSWERED, actor=actor)
    recipient = request.requester if request.requester.client_role in quotes.DECIDING_ROLES else None
    quote = quotes.create_draft(
        organisation=request.organisation, actor=actor, recipient=recipient, request=request,
        lines=[quotes.LineInput(product_id=line.product_id, quantity=line.quantity)
               for line in request.lines],
        ip=ip,
    )
    audit.record("request.answered", request, actor=actor, organisation_id=request.organisation_id,
                 ip=ip, quote_id=quote.id)
    events.record("request.answered", request.organisation, quote_request_json(request))
    return quote


def decline_request(request: QuoteRequest, *, actor: User, reason: str,
                    ip: str | None = None) -> QuoteRequest:
    """Decline a request, with a reason the client will read."""
    reason = (reason or "").strip()
    if not reason:
        raise DeclineReasonMissing()
    _claim_request(request, QuoteRequestStatus.DECLINED, actor=actor, decline_reason=reason)
    audit.record("request.declined", request, actor=actor, organisation_id=request.organisation_id,
                 ip=ip, reason=reason)
    events.record("request.answered", request.organisation, quote_request_json(request))
    return request


def _claim_request(request: QuoteRequest, target: QuoteRequestStatus, *, actor: User,
                   **values: object) -> None:
    quotes.require_staff(actor)
    changed = db.session.execute(
        update(QuoteRequest)
        .where(QuoteRequest.id == request.id, QuoteRequest.status == QuoteRequestStatus.NEW)
        .values(status=target, handled_by_id=actor.id, handled_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        raise RequestNotOpen()
    db.session.refresh(request)
