"""Quotes: authoring, sending, revisions, acceptance and refusal, the mandate and the CGV.

Requests for a quote are in `quote_requests`; reminders and the daily expiry in `quote_expiry`.

Every function flushes only; the caller commits once. State changes that race with other
actors are conditional UPDATEs (`WHERE status = 'sent'`), so one click wins and the others get
`QuoteNotPending`.

One module on purpose, longer than 450 lines: a quote's life from draft to decision is one state
machine, and every change of its status goes through `_transition`, the compare-and-set that a split
would have to make public (`expire` is the one `quote_expiry` calls).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from flask import current_app
from sqlalchemy import Select, Update, bindparam, func, select, update
from sqlalchemy.orm.attributes import set_committed_value

from . import audit, billing, credits, events, outbox
from .dates import paris_today
from .exceptions import (
    DecidingRoleRequired,
    DomainError,
    EmptyQuote,
    InvalidPrice,
    InvalidQuantity,
    InvalidRecipient,
    InvalidValidity,
    InvalidVatRate,
    LineLabelMissing,
    LinePriceMissing,
    MandateChangeNotAllowed,
    MandateMissing,
    NotAllowed,
    OnBehalfNoteMissing,
    OnBehalfNoteTooLong,
    PriceTooLarge,
    QuantityOutOfRange,
    QuoteExpired,
    QuoteNotDraft,
    QuoteNotPending,
    QuoteTooLarge,
    RevisionInProgress,
    TermsAlreadyPublished,
    TermsBodyMissing,
    TermsChanged,
    TermsLabelMissing,
    TermsMissing,
    UnknownProduct,
)
from .extensions import db
from .models import (
    BillingMode,
    Channel,
    ClientRole,
    Decision,
    DecisionKind,
    Organisation,
    Product,
    Quote,
    QuoteLine,
    QuoteRequest,
    QuoteRequestStatus,
    QuoteStatus,
    SupplyKind,
    TermsVersion,
    User,
    UserKind,
    utcnow,
)
from .money import vat_cents
from .representations import quote_json, quote_request_json
from .seller import current_terms, current_terms_query, seller_settings

DECIDING_ROLES = (ClientRole.RESPONSABLE, ClientRole.GESTIONNAIRE)
DECIDABLE_STATUS = QuoteStatus.SENT
# Bounds of what a quote or a request holds, far above any real order and far below the columns'
# limits (quantities and credits are 32-bit, amounts 64-bit): a typo is refused, never overflows.
MAX_QUANTITY = 1_000_000
MAX_UNIT_PRICE_CENTS = 999_999_999_99  # what an amount field accepts: 999 999 999,99 €
MAX_TOTAL_CENTS = 10**15
MAX_TOTAL_CREDITS = 2**31 - 1
MAX_ID = 2**31 - 1  # primary keys are 32-bit: a larger id names nothing (and would not bind)
ON_BEHALF_NOTE_MAX = 500  # a line or two of how the client asked, not a transcript


@dataclass(frozen=True)
class LineInput:
    """A quote line as typed by staff: a product (price and VAT default to its own) or a free line."""

    quantity: int
    product_id: int | None = None
    label: str | None = None
    unit_price_cents: int | None = None
    vat_rate_bp: int | None = None


# --- Drafts -----------------------------------------------------------------------------------


def create_draft(
    *,
    organisation: Organisation,
    actor: User,
    lines: Iterable[LineInput] = (),
    recipient: User | None = None,
    title: str = "",
    validity_days: int | None = None,
    request: QuoteRequest | None = None,
    ip: str | None = None,
) -> Quote:
    """Create a draft quote for an organisation (products published or not, or free lines)."""
    require_staff(actor)
    if recipient is not None:
        _check_recipient(recipient, organisation)
    quote = Quote(organisation=organisation, created_by=actor, recipient=recipient,
                  title=title.strip(), validity_days=_check_validity(validity_days),
                  request=request, status=QuoteStatus.DRAFT)
    quote.lines = _build_lines(lines)
    db.session.add(quote)
    _compute_totals(quote)
    audit.record("quote.created", quote, actor=actor, organisation_id=organisation.id, ip=ip)
    return quote


def update_draft(
    quote: Quote,
    *,
    actor: User,
    lines: Iterable[LineInput] | None = None,
    recipient: User | None = None,
    title: str | None = None,
    validity_days: int | None = None,
    ip: str | None = None,
) -> Quote:
    """Edit a draft: replace its lines, recipient, title or validity (only given fields change)."""
    require_staff(actor)
    if quote.status != QuoteStatus.DRAFT:
        raise QuoteNotDraft()
    if recipient is not None:
        _check_recipient(recipient, quote.organisation)
        quote.recipient = recipient
    if title is not None:
        quote.title = title.strip()
    if validity_days is not None:
        quote.validity_days = _check_validity(validity_days)
    if lines is not None:
        quote.lines = _build_lines(lines)
    _compute_totals(quote)
    db.session.flush()
    audit.record("quote.updated", quote, actor=actor, organisation_id=quote.organisation_id, ip=ip)
    return quote


def _build_lines(lines: Iterable[LineInput]) -> list[QuoteLine]:
    built = [_build_line(position, line) for position, line in enumerate(lines, start=1)]
    if (sum(line.quantity * line.unit_price_cents for line in built) > MAX_TOTAL_CENTS
            or sum(line.quantity * line.credits_per_unit for line in built) > MAX_TOTAL_CREDITS):
        raise QuoteTooLarge()
    return built


def find_product(product_id: object) -> Product | None:
    """The product of that id; None for an id that cannot be one."""
    if isinstance(product_id, bool) or not isinstance(product_id, int) or not 0 < product_id <= MAX_ID:
        return None
    return db.session.get(Product, product_id)


def check_quantity(quantity: object) -> None:
    """A whole number of units, 1 to MAX_QUANTITY."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise InvalidQuantity()
    if quantity > MAX_QUANTITY:
        raise QuantityOutOfRange(minimum=1, maximum=f"{MAX_QUANTITY:,}".replace(",", "\u202f"))


def _build_line(position: int, line: LineInput) -> QuoteLine:
    check_quantity(line.quantity)
    product = None
    if line.product_id is not None:
        product = find_product(line.product_id)
        if product is None:
            raise UnknownProduct()
    label = (line.label or (product.name if product else "")).strip()
    if not label:
        raise LineLabelMissing()
    price = line.unit_price_cents if line.unit_price_cents is not None else (
        product.unit_price_cents if product else None)
    if price is None:
        raise LinePriceMissing()
    if isinstance(price, bool) or not isinstance(price, int) or price < 0:
        raise InvalidPrice()
    if price > MAX_UNIT_PRICE_CENTS:
        raise PriceTooLarge()
    vat = line.vat_rate_bp if line.vat_rate_bp is not None else (
        product.vat_rate_bp if product else 2000)
    if vat not in billing.VAT_RATES_BP:
        raise InvalidVatRate()
    return QuoteLine(position=position, product=product, label=label, quantity=line.quantity,
                     unit_price_cents=price, vat_rate_bp=vat,
                     credits_per_unit=product.credits_per_unit if product else 0,
                     supply_kind=product.supply_kind if product else SupplyKind.SERVICES)


def _compute_totals(quote: Quote) -> None:
    for line in quote.lines:
        line.total_ht_cents = line.quantity * line.unit_price_cents
        line.total_vat_cents = vat_cents(line.total_ht_cents, line.vat_rate_bp)
    quote.total_ht_cents = sum(line.total_ht_cents for line in quote.lines)
    quote.total_vat_cents = sum(line.total_vat_cents for line in quote.lines)
    quote.total_ttc_cents = quote.total_ht_cents + quote.total_vat_cents
    quote.total_credits = sum(line.quantity * line.credits_per_unit for line in quote.lines)


def _check_validity(validity_days: int | None) -> int | None:
    if validity_days is not None and not 1 <= validity_days <= 365:
        raise InvalidValidity()
    return validity_days


def _check_recipient(recipient: User, organisation: Organisation) -> None:
    if (recipient.kind != UserKind.CLIENT or recipient.organisation_id != organisation.id
            or recipient.client_role not in DECIDING_ROLES or not recipient.active):
        raise InvalidRecipient()


def require_staff(actor: User) -> None:
    """Quotes and quote requests are handled by staff only."""
    if actor.kind != UserKind.STAFF:
        raise NotAllowed()


# --- Sending, revising, cancelling, expiring --------------------------------------------------


def send(quote: Quote, *, actor: User, now: datetime | None = None, ip: str | None = None) -> Quote:
    """Send a draft: number it, freeze it, set its validity and billing mode, email the recipient."""
    require_staff(actor)
    if quote.status != QuoteStatus.DRAFT:
        raise QuoteNotDraft()
    if not quote.lines:
        raise EmptyQuote()
    if quote.recipient is None:
        raise InvalidRecipient()
    _check_recipient(quote.recipient, quote.organisation)
    now = now or utcnow()
    if quote.supersedes is not None:
        _supersede(quote.supersedes, actor=actor, ip=ip)
    today = paris_today(now)
    quote.number = quote.number or billing.next_number(billing.QUOTE_SERIES, today.year)
    validity = quote.validity_days or seller_settings().quote_validity_days or 30
    quote.valid_until = today + timedelta(days=validity)
    quote.billing_mode = quote.organisation.billing_mode
    _compute_totals(quote)
    quote.status = QuoteStatus.SENT
    quote.sent_at = now
    db.session.flush()
    audit.record("quote.sent", quote, actor=actor, organisation_id=quote.organisation_id, ip=ip,
                 number=quote.reference, total_ttc_cents=quote.total_ttc_cents)
    events.record("quote.sent", quote.organisation, quote_json(quote), now=now)
    outbox.enqueue_with_magic_link(user=quote.recipient, quote=quote, template="quote_sent",
                                   dedupe_key=f"quote_sent:{quote.id}", now=now)
    if quote.request_id is not None:
        _answer_request(quote, actor=actor, now=now, ip=ip)
    return quote


def _answer_request(quote: Quote, *, actor: User, now: datetime, ip: str | None) -> None:
    """The request a quote was drafted from is answered once the quote is sent (see
    `quote_requests`); its requester is told, by the quote's own email when they receive it."""
    request = quote.request
    if not db.session.execute(
        update(QuoteRequest)
        .where(QuoteRequest.id == request.id, QuoteRequest.status == QuoteRequestStatus.NEW)
        .values(status=QuoteRequestStatus.ANSWERED, handled_by_id=actor.id, handled_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount:
        return
    db.session.refresh(request)
    audit.record("request.answered", request, actor=actor, organisation_id=request.organisation_id,
                 ip=ip, quote_id=quote.id)
    events.record("request.answered", request.organisation, quote_request_json(request), now=now)
    if request.requester_id != quote.recipient_id and request.requester.active:
        outbox.enqueue_request_outcome(request, quote=quote)


def _supersede(previous: Quote, *, actor: User, ip: str | None) -> None:
    if not _transition(previous, QuoteStatus.SUPERSEDED):
        raise QuoteNotPending()
    audit.record("quote.superseded", previous, actor=actor, organisation_id=previous.organisation_id,
                 ip=ip)


def revise(quote: Quote, *, actor: User, ip: str | None = None) -> Quote:
    """Start a new revision of a sent quote; it replaces the sent one when it is sent."""
    require_staff(actor)
    if quote.status != QuoteStatus.SENT:
        raise QuoteNotPending()
    pending = db.session.scalar(
        select(Quote.id).where(Quote.supersedes_id == quote.id, Quote.status == QuoteStatus.DRAFT)
    )
    if pending is not None:
        raise RevisionInProgress()
    revision = Quote(organisation=quote.organisation, number=quote.number,
                     revision=quote.revision + 1, title=quote.title, recipient=quote.recipient,
                     created_by=actor, supersedes=quote, validity_days=quote.validity_days,
                     status=QuoteStatus.DRAFT)
    revision.lines = [
        QuoteLine(position=line.position, product_id=line.product_id, label=line.label,
                  quantity=line.quantity, unit_price_cents=line.unit_price_cents,
                  vat_rate_bp=line.vat_rate_bp, credits_per_unit=line.credits_per_unit,
                  supply_kind=line.supply_kind)
        for line in quote.lines
    ]
    db.session.add(revision)
    _compute_totals(revision)
    audit.record("quote.revised", revision, actor=actor, organisation_id=quote.organisation_id,
                 ip=ip, revises=quote.reference)
    return revision


def cancel(quote: Quote, *, actor: User, ip: str | None = None) -> Quote:
    """Cancel a draft or a sent quote."""
    require_staff(actor)
    if quote.status == QuoteStatus.DRAFT:
        quote.status = QuoteStatus.CANCELLED
        db.session.flush()
    else:
        if not _transition(quote, QuoteStatus.CANCELLED):
            raise QuoteNotPending()
    audit.record("quote.cancelled", quote, actor=actor, organisation_id=quote.organisation_id, ip=ip)
    return quote


def expire(quote: Quote) -> bool:
    """Mark a sent quote expired (see `quote_expiry.expire_overdue`); False if it was decided or
    cancelled meanwhile."""
    if not _transition(quote, QuoteStatus.EXPIRED):
        return False
    audit.record("quote.expired", quote, actor=None, organisation_id=quote.organisation_id)
    events.record("quote.expired", quote.organisation, quote_json(quote))
    return True


def _transition(quote: Quote, target: QuoteStatus, *, terms_id: int | None = None,
                **values: object) -> bool:
    """Move a sent quote to `target`, only if it is still sent and, given `terms_id`, that CGV
    version is in force (a row-level compare-and-set); False if it did not move."""
    statement = _transition_statement(tuple(values), terms_id is not None)
    parameters = {"quote_id": quote.id, "target": target, "terms_id": terms_id,
                  **{f"new_{column}": value for column, value in values.items()}}
    if not db.session.execute(statement, parameters).rowcount:
        return False
    # The row holds what was just written, locked until commit: set on the object, not read back.
    for key, value in {"status": target, **values}.items():
        set_committed_value(quote, key, value)
    return True


@cache
def _transition_statement(columns: tuple[str, ...], checks_terms: bool) -> Update:
    """Built once per shape, values left as parameters: building a statement and its cache key
    cost more than running it."""
    statement = update(Quote).where(Quote.id == bindparam("quote_id"), Quote.status == QuoteStatus.SENT)
    if checks_terms:
        in_force = current_terms_query().with_only_columns(TermsVersion.id).scalar_subquery()
        statement = statement.where(in_force == bindparam("terms_id"))
    new_values = {column: bindparam(f"new_{column}", type_=Quote.__table__.c[column].type)
                  for column in columns}
    return (statement.values(status=bindparam("target", type_=Quote.status.type), **new_values)
            .execution_options(synchronize_session=False))


# --- Terms of sale (CGV) ----------------------------------------------------------------------


def quote_with_current_terms(quote_id: int) -> tuple[Quote | None, TermsVersion | None]:
    """A quote and the CGV version in force, read in one statement (the quote page shows both)."""
    row = db.session.execute(_quote_with_current_terms_statement(), {"quote_id": quote_id}).one_or_none()
    return (row[0], row[1]) if row else (None, None)


@cache
def _quote_with_current_terms_statement() -> Select:
    """Built once (the portal's busiest statement): building it and its cache key took longer
    than running it."""
    in_force = current_terms_query().with_only_columns(TermsVersion.id).scalar_subquery()
    return (select(Quote, TermsVersion).outerjoin(TermsVersion, TermsVersion.id == in_force)
            .where(Quote.id == bindparam("quote_id")))


def publish_terms(terms: TermsVersion, *, actor: User, now: datetime | None = None,
                  ip: str | None = None) -> TermsVersion:
    """Publish a CGV version: hash its body and make it current; it is frozen from then on."""
    require_staff(actor)
    if terms.published_at is not None:
        raise TermsAlreadyPublished()
    if not (terms.body or "").strip():
        raise TermsBodyMissing()
    if not (terms.version_label or "").strip():
        raise TermsLabelMissing()
    terms.sha256 = hashlib.sha256(terms.body.encode("utf-8")).hexdigest()
    terms.published_at = now or utcnow()
    db.session.flush()
    audit.record("terms.published", terms, actor=actor, ip=ip, version=terms.version_label,
                 sha256=terms.sha256)
    return terms


# --- Decisions --------------------------------------------------------------------------------


def quote_content_hash(quote: Quote) -> str:
    """SHA-256 of the canonical content the client decided on."""
    content = {
        "number": quote.number, "revision": quote.revision, "organisation_id": quote.organisation_id,
        "billing_mode": quote.billing_mode.value if quote.billing_mode else None,
        "valid_until": quote.valid_until.isoformat() if quote.valid_until else None,
        "lines": [[line.label, line.quantity, line.unit_price_cents, line.vat_rate_bp,
                   line.credits_per_unit] for line in quote.lines],
        "totals": [quote.total_ht_cents, quote.total_vat_cents, quote.total_ttc_cents,
                   quote.total_credits],
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()


def accept(quote: Quote, *, actor: User, terms_version: TermsVersion | None, channel: Channel,
           ip: str | None = None, user_agent: str | None = None,
           now: datetime | None = None, note: str | None = None) -> Decision:
    """Accept a sent quote under `terms_version`, the CGV the client read (refused unless it is the
    version in force): per order, issue its invoice; monthly, grant its credits. Staff, under the
    mandate, write in `note` how the client asked."""
    now = now or utcnow()
    decision = _decide(quote, DecisionKind.ACCEPTED, actor=actor, terms_version=terms_version,
                       channel=channel, ip=ip, user_agent=user_agent, now=now, reason=None, note=note)
    if quote.billing_mode == BillingMode.MONTHLY:
        quote.billing_period = paris_today(now).strftime("%Y-%m")
        db.session.flush()
        credits.grant_quote_credits(quote, actor=actor, now=now)
        outbox.enqueue_monthly_acceptance(quote, _monthly_acceptance_addresses(quote, actor))
    else:
        billing.issue_invoice_for_quote(quote, actor=actor, now=now, ip=ip)
    return decision


def _monthly_acceptance_addresses(quote: Quote, actor: User) -> list[str]:
    """Who is told of a monthly acceptance: the client who decided (on behalf, the quote's
    recipient), to confirm their credits, and the organisation's invoice contact, who will pay."""
    decider = quote.recipient if actor.kind == UserKind.STAFF else actor
    if decider is None or not decider.active:
        return billing.invoice_contacts(quote.organisation)
    return [decider.email, *billing.invoice_contacts(quote.organisation, preferred=decider)]


def refuse(quote: Quote, *, actor: User, terms_version: TermsVersion | None, channel: Channel,
           reason: str | None = None, ip: str | None = None, user_agent: str | None = None,
           now: datetime | None = None, note: str | None = None) -> Decision:
    """Refuse a sent quote, with an optional reason (staff, under the mandate: and a `note`)."""
    return _decide(quote, DecisionKind.REFUSED, actor=actor, terms_version=terms_version,
                   channel=channel, ip=ip, user_agent=user_agent, now=now or utcnow(),
                   reason=(reason or "").strip() or None, note=note)


def _decide(quote: Quote, kind: DecisionKind, *, actor: User, terms_version: TermsVersion | None,
            channel: Channel, ip: str | None, user_agent: str | None, now: datetime,
            reason: str | None, note: str | None) -> Decision:
    organisation = quote.organisation
    _check_decider(actor, organisation)
    on_behalf = actor.kind == UserKind.STAFF
    # Checked before anything changes; a client deciding for themselves is asked for no note.
    note = check_on_behalf_note(note) if on_behalf else None
    if quote.status != QuoteStatus.SENT:
        raise QuoteNotPending()
    if quote.valid_until is not None and quote.valid_until < paris_today(now):
        raise QuoteExpired()
    target = QuoteStatus.ACCEPTED if kind == DecisionKind.ACCEPTED else QuoteStatus.REFUSED
    # The CGV shown must still be the version in force: checked in the compare-and-set itself, so
    # that a version published meanwhile is seen at the very moment the quote is decided.
    if terms_version is None or not _transition(quote, target, terms_id=terms_version.id, decided_at=now):
        raise _why_undecided(terms_version)
    decision = Decision(
        quote_id=quote.id, kind=kind, actor_id=actor.id, organisation_id=organisation.id,
        channel=channel, terms_version_id=terms_version.id, terms_sha256=terms_version.sha256,
        quote_sha256=quote_content_hash(quote),
        mandate_granted_by_id=organisation.staff_validation_changed_by_id if on_behalf else None,
        mandate_granted_at=organisation.staff_validation_changed_at if on_behalf else None,
        ip=ip, user_agent=(user_agent or "")[:500] or None, reason=reason, created_at=now,
        actor_role=(actor.staff_role if on_behalf else actor.client_role).value, on_behalf_note=note,
    )
    db.session.add(decision)
    db.session.flush()
    audit.record(f"quote.{kind.value}", quote, actor=actor, organisation_id=organisation.id, ip=ip,
                 channel=channel, terms=terms_version.version_label, on_behalf=on_behalf, reason=reason,
                 **({"note": note} if on_behalf else {}))
    events.record(f"quote.{kind.value}", organisation, quote_json(quote), now=now)
    # No lookup of the dedupe key: a quote is decided once (the compare-and-set above).
    outbox.insert_new([{"author_id": quote.created_by_id,
                        "staff_address": current_app.config["STAFF_NOTIFICATION_EMAIL"],
                        "template": "quote_decided",
                        "context": {"quote_id": quote.id, "decision_id": decision.id},
                        "dedupe_key": f"quote_decided:{quote.id}"}], DECIDED_EMAIL)
    if on_behalf:
        outbox.enqueue_decided_on_behalf(decision, _responsable_addresses(organisation))
    return decision


def check_on_behalf_note(note: str | None) -> str:
    """Staff's note of how the client asked for a decision on its behalf: required, 500 characters
    at most; returned stripped."""
    note = (note or "").strip()
    if not note:
        raise OnBehalfNoteMissing()
    if len(note) > ON_BEHALF_NOTE_MAX:
        raise OnBehalfNoteTooLong(maximum=ON_BEHALF_NOTE_MAX)
    return note


def _responsable_addresses(organisation: Organisation) -> list[str]:
    """Whoever may withdraw the mandate: the organisation's active responsables."""
    return list(db.session.scalars(select(User.email).where(
        User.organisation_id == organisation.id, User.client_role == ClientRole.RESPONSABLE,
        User.active.is_(True))))


def _why_undecided(terms_version: TermsVersion | None) -> DomainError:
    """Why the compare-and-set of a decision changed nothing: no CGV published, another version in
    force, or the quote decided (or cancelled) meanwhile."""
    current = current_terms()
    if current is None:
        return TermsMissing()
    if terms_version is None or terms_version.id != current.id:
        return TermsChanged()
    return QuoteNotPending()


# Staff's work in progress: never shown to the organisation (portal pages, PDFs) nor to the platform.
HIDDEN_FROM_CLIENTS = (QuoteStatus.DRAFT,)


def may_decide(user: User) -> bool:
    """Whether `user` may accept, refuse and pay for their organisation: an active client user,
    responsable or gestionnaire (a membre only reads). The one spelling of the rule."""
    return user.kind == UserKind.CLIENT and user.active and user.client_role in DECIDING_ROLES


def mandate_allows(organisation: Organisation) -> bool:
    """Whether the organisation lets staff validate its quotes on its behalf (its mandate)."""
    return bool(organisation.staff_validation_allowed)


def _check_decider(actor: User, organisation: Organisation) -> None:
    if actor.kind == UserKind.STAFF:
        if not mandate_allows(organisation):
            raise MandateMissing()
        return
    if actor.organisation_id != organisation.id or not actor.active:
        raise NotAllowed()
    if not may_decide(actor):
        raise DecidingRoleRequired()


# The staff email of a decision goes to the quote's author if still active, else to the staff
# notification address: read by the INSERT itself, not loaded first.
_ACTIVE_AUTHOR = select(User.email).where(User.id == bindparam("author_id"), User.active).scalar_subquery()
DECIDED_EMAIL = outbox.INSERT_EMAIL.values(
    recipient=func.coalesce(_ACTIVE_AUTHOR, bindparam("staff_address")))


# --- Mandate ----------------------------------------------------------------------------------


def set_mandate(organisation: Organisation, *, allowed: bool, actor: User,
                now: datetime | None = None, ip: str | None = None) -> Organisation:
    """Turn the client's mandate for staff validation on or off (its responsable only)."""
    if (actor.kind != UserKind.CLIENT or actor.organisation_id != organisation.id
            or actor.client_role != ClientRole.RESPONSABLE):
        raise MandateChangeNotAllowed()
    organisation.staff_validation_allowed = allowed
    organisation.staff_validation_changed_by_id = actor.id
    organisation.staff_validation_changed_at = now or utcnow()
    db.session.flush()
    audit.record("organisation.mandate", organisation, actor=actor, organisation_id=organisation.id,
                 ip=ip, allowed=allowed)
    return organisation
