"""Quote requests: a client asks for a quote on published products; staff answer it with a
pre-filled draft or decline it with a reason.

A request stays new (in the home's queue) while its draft is prepared: it is answered when the
quote linked to it (`Quote.request_id`) is sent, by `quotes.send`, which then tells the requester.

Every function flushes only; the caller commits once. Starting the draft and declining are one
conditional UPDATE (`WHERE status = 'new'`): the request's row stays locked until commit, so two
staff clicks make one draft, and a request already answered or declined gives `RequestNotOpen`.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import current_app
from flask_babel import ngettext
from sqlalchemy import select, update

from . import audit, events, outbox, quotes
from .dates import paris_today
from .exceptions import DeclineReasonMissing, EmptyRequest, NotAllowed, RequestNotOpen, UnknownProduct
from .extensions import db
from .i18n import gettext
from .labels import french_date
from .models import (
    ClientRole,
    Organisation,
    Quote,
    QuoteRequest,
    QuoteRequestLine,
    QuoteRequestStatus,
    QuoteStatus,
    User,
    UserKind,
    utcnow,
)
from .representations import quote_request_json

TITLE_LENGTH = Quote.__table__.c.title.type.length


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
    """The draft answering a request: pre-filled from it (title, recipient, lines) and linked to it,
    or the one already being prepared. The request stays new until that quote is sent."""
    _claim_request(request, actor=actor)
    linked = request.quote  # read once the request is locked (refreshed by _claim_request)
    if linked is not None and linked.status == QuoteStatus.DRAFT:
        return linked
    if linked is not None:
        # A draft cancelled before it was sent answered nothing: the new draft takes its place.
        linked.request = None
        db.session.flush()
    recipient, title = default_recipient(request), draft_title(request)
    # The new quote is tied to the request (in the session) before create_draft adds it: a lookup of
    # its products must not flush it half-built.
    with db.session.no_autoflush:
        return quotes.create_draft(
            organisation=request.organisation, actor=actor, recipient=recipient, title=title,
            request=request, ip=ip,
            lines=[quotes.LineInput(product_id=line.product_id, quantity=line.quantity)
                   for line in request.lines],
        )


def draft_title(request: QuoteRequest) -> str:
    """The object of the answering quote (a request has no subject of its own): « Demande du
    <date> : <first product> », and how many more products it asks for."""
    values = {"date": french_date(paris_today(request.created_at)), "product": request.lines[0].product.name}
    more = len(request.lines) - 1
    if not more:
        title = gettext("Demande du %(date)s : %(product)s", **values)
    else:
        title = ngettext("Demande du %(date)s : %(product)s et %(num)d autre produit",
                         "Demande du %(date)s : %(product)s et %(num)d autres produits", more, **values)
    return title[:TITLE_LENGTH]


def default_recipient(request: QuoteRequest) -> User | None:
    """Who the answer goes to: the requester when they may decide, else the organisation's
    responsable (the longest-standing active one); None when it has none."""
    if quotes.may_decide(request.requester):
        return request.requester
    return db.session.scalar(
        select(User).where(User.organisation_id == request.organisation_id, User.kind == UserKind.CLIENT,
                           User.client_role == ClientRole.RESPONSABLE, User.active.is_(True))
        .order_by(User.id).limit(1)
    )


def decline_request(request: QuoteRequest, *, actor: User, reason: str,
                    ip: str | None = None) -> QuoteRequest:
    """Decline a request, with a reason the client will read (and receives by email)."""
    reason = (reason or "").strip()
    if not reason:
        raise DeclineReasonMissing()
    _claim_request(request, actor=actor, status=QuoteRequestStatus.DECLINED, handled_at=utcnow(),
                   decline_reason=reason)
    audit.record("request.declined", request, actor=actor, organisation_id=request.organisation_id,
                 ip=ip, reason=reason)
    draft = db.session.scalar(select(Quote).where(Quote.request_id == request.id,
                                                  Quote.status == QuoteStatus.DRAFT))
    if draft is not None:  # the answer being prepared will not be sent
        quotes.cancel(draft, actor=actor, ip=ip)
    events.record("request.answered", request.organisation, quote_request_json(request))
    if request.requester.active:
        outbox.enqueue_request_outcome(request)
    return request


def _claim_request(request: QuoteRequest, *, actor: User, **values: object) -> None:
    """Take a new request in hand (`handled_by_id`, and `values`), or RequestNotOpen."""
    quotes.require_staff(actor)
    changed = db.session.execute(
        update(QuoteRequest)
        .where(QuoteRequest.id == request.id, QuoteRequest.status == QuoteRequestStatus.NEW)
        .values(handled_by_id=actor.id, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        raise RequestNotOpen()
    db.session.refresh(request)
