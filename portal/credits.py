"""The prepaid credit ledger: an organisation's balance is the sum of its entries.

Accepted quotes grant credits (once per quote), analyses consume them, staff adjust them with a
reason, a credit note takes back what its invoice's quotes granted and is still unspent. Every
function here only flushes: the caller commits once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, func, select, union

from . import audit, events
from .exceptions import (
    AdjustmentReasonMissing,
    InsufficientCredits,
    InvalidConsumption,
    NotAllowed,
    OrganisationNotFound,
    ZeroAdjustment,
)
from .extensions import db
from .models import (
    ApiKey,
    CreditEntry,
    CreditEntryKind,
    Invoice,
    InvoiceLine,
    Organisation,
    Quote,
    User,
    UserKind,
    quote_reference,
    utcnow,
)
from .representations import entry_json

# The event each kind of entry appended by `_append_entry` tells the platform.
ENTRY_EVENTS = {CreditEntryKind.CONSUMPTION: "credits.consumed",
                CreditEntryKind.ADJUSTMENT: "credits.adjusted"}


def credit_balance(organisation_id: int) -> int:
    """An organisation's credit balance: the sum of its ledger, which the database keeps stored on
    the organisation (schema_guards.CREDIT_BALANCE_TRIGGERS)."""
    return db.session.scalar(select(Organisation.credit_balance)
                             .where(Organisation.id == organisation_id)) or 0


def grant_quote_credits(quote: Quote, *, actor: User | None,
                        now: datetime | None = None) -> CreditEntry | None:
    """Grant an accepted quote's credits, once (a unique constraint backs the check), dated `now`
    (the acceptance or the payment that grants them)."""
    if quote.total_credits <= 0:
        return None
    existing = db.session.scalar(
        select(CreditEntry).where(CreditEntry.quote_id == quote.id,
                                  CreditEntry.kind == CreditEntryKind.GRANT)
    )
    if existing is not None:
        return existing
    entry = CreditEntry(organisation_id=quote.organisation_id, kind=CreditEntryKind.GRANT,
                        amount=quote.total_credits, quote_id=quote.id,
                        actor_id=actor.id if actor else None,
                        reason=f"Devis {quote.reference}", created_at=now or utcnow())
    db.session.add(entry)
    db.session.flush()
    audit.record("credits.granted", entry, actor=actor, organisation_id=quote.organisation_id,
                 amount=entry.amount, quote=quote.reference)
    events.record("credits.granted", quote.organisation, entry_json(entry), now=now)
    return entry


class Posting(NamedTuple):
    """An entry just appended to the ledger, and the organisation's balance with it."""

    entry: CreditEntry
    balance_after: int


def consume_credits(
    organisation: Organisation, amount: int, *, actor: User | None, reason: str,
    external_reference: str | None = None, api_key: ApiKey | None = None,
) -> CreditEntry:
    """Consume credits; refused if the balance would go negative. Through the API, `api_key` is
    the consuming key and `external_reference` the platform's name of what used them."""
    return post_consumption(organisation.id, amount, actor=actor, reason=reason,
                            external_reference=external_reference, api_key=api_key).entry


def post_consumption(
    organisation_id: int, amount: int, *, actor: User | None, reason: str,
    external_reference: str | None = None, api_key: ApiKey | None = None,
) -> Posting:
    """`consume_credits` by the organisation's id (OrganisationNotFound if there is none), with the
    balance it leaves: the API's busiest call reads the organisation once, with its lock."""
    if amount <= 0:
        raise InvalidConsumption()
    return _append_entry(organisation_id, -amount, CreditEntryKind.CONSUMPTION, actor=actor,
                         reason=reason, external_reference=external_reference, api_key=api_key)


def adjust_credits(
    organisation: Organisation, amount: int, *, actor: User | None, reason: str, ip: str | None = None,
    api_key: ApiKey | None = None, external_reference: str | None = None,
) -> CreditEntry:
    """An adjustment of the balance, with a mandatory reason: by staff, or through the API by a key
    holding `credits:adjust` (`api_key`, no user)."""
    if (actor is None or actor.kind != UserKind.STAFF) and (actor is not None or api_key is None):
        raise NotAllowed()
    if not (reason or "").strip():
        raise AdjustmentReasonMissing()
    if amount == 0:
        raise ZeroAdjustment()
    return _append_entry(organisation.id, amount, CreditEntryKind.ADJUSTMENT, actor=actor,
                         reason=reason.strip(), ip=ip, api_key=api_key,
                         external_reference=external_reference).entry


# --- Credit notes take back the credits still held -------------------------------------------


@dataclass(frozen=True)
class CreditReversal:
    """What a credit note does to the credits its invoice's quotes granted: `taken_back` from the
    balance, `kept` by the client (already consumed)."""

    taken_back: int
    kept: int


def reverse_credit_note_credits(invoice: Invoice, credit_note: Invoice, *, actor: User | None,
                                ip: str | None = None) -> list[CreditEntry]:
    """Take back, with `credit_note`, the credits that the cancelled `invoice`'s quotes granted and
    that the organisation still holds.

    The rule: the credits taken back are at most what the organisation still holds. The reversal
    total is min(credits granted by the invoice's quotes, current balance), taken quote by quote in
    quote order (oldest quote first); the rest counts as consumed and stays with the client. Each
    quote gets at most one REVERSAL entry (a unique constraint backs it), of a negative amount,
    referencing the credit note and the quote; a quote with nothing left to take back gets none
    (never an entry of 0). A per-order invoice has one quote, a monthly invoice one per quote
    accepted in its month; quotes that granted nothing take nothing back.
    """
    # No consumption may slip between the balance read and the entries.
    balance = _locked_balance(invoice.organisation_id)
    grants = _grants_of(_quote_ids(invoice), not_yet_reversed=True)
    shares = _shares([granted for _, _, granted in grants], balance)
    entries = []
    for (quote_id, reference, granted), taken in zip(grants, shares, strict=True):
        if taken == 0:
            continue
        entry = CreditEntry(organisation_id=invoice.organisation_id, kind=CreditEntryKind.REVERSAL,
                            amount=-taken, quote_id=quote_id, credit_note_id=credit_note.id,
                            actor_id=actor.id if actor else None, reason=credit_note.reason)
        db.session.add(entry)
        db.session.flush()
        audit.record("credits.reversal", entry, actor=actor, organisation_id=invoice.organisation_id,
                     ip=ip, amount=entry.amount, quote=reference, granted=granted,
                     credit_note=credit_note.number, invoice=invoice.number)
        events.record("credits.reversed", invoice.organisation, entry_json(entry))
        entries.append(entry)
    return entries


def reversal_preview(invoice: Invoice) -> CreditReversal | None:
    """What a credit note on `invoice` would take back now (None: its quotes granted nothing)."""
    granted = [amount for _, _, amount in _grants_of(_quote_ids(invoice), not_yet_reversed=True)]
    if not granted:
        return None
    taken = sum(_shares(granted, credit_balance(invoice.organisation_id)))
    return CreditReversal(taken_back=taken, kept=sum(granted) - taken)


def credit_note_reversal(credit_note: Invoice) -> CreditReversal | None:
    """What `credit_note` took back of its invoice's granted credits, and what the client kept
    (None when they granted none, or for an invoice that is no credit note)."""
    if credit_note.credited_invoice is None:
        return None
    granted = sum(amount for _, _, amount in _grants_of(_quote_ids(credit_note.credited_invoice)))
    if not granted:
        return None
    taken = -db.session.scalar(select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
        CreditEntry.credit_note_id == credit_note.id, CreditEntry.kind == CreditEntryKind.REVERSAL))
    return CreditReversal(taken_back=taken, kept=granted - taken)


def _shares(granted: list[int], balance: int) -> list[int]:
    """How much of each grant, in order, the balance still covers."""
    shares = []
    for amount in granted:
        taken = max(0, min(amount, balance))
        shares.append(taken)
        balance -= taken
    return shares


def _quote_ids(invoice: Invoice) -> list[int]:
    """The quotes an invoice bills: its lines' (per order: its one quote; monthly: the month's)
    and the quotes marked as billed by it."""
    return list(db.session.scalars(union(
        select(InvoiceLine.quote_id).where(InvoiceLine.invoice_id == invoice.id,
                                           InvoiceLine.quote_id.is_not(None)),
        select(Quote.id).where(Quote.monthly_invoice_id == invoice.id),
        select(Invoice.quote_id).where(Invoice.id == invoice.id, Invoice.quote_id.is_not(None)),
    )))


def _grants_of(quote_ids: list[int], *, not_yet_reversed: bool = False) -> list[tuple[int, str, int]]:
    """(quote id, quote reference, credits granted) of the quotes among `quote_ids` that granted
    credits, in quote order; with `not_yet_reversed`, those no credit note took back yet."""
    if not quote_ids:
        return []
    statement = (select(CreditEntry.quote_id, Quote.number, Quote.revision, CreditEntry.amount)
                 .join(Quote, Quote.id == CreditEntry.quote_id)
                 .where(CreditEntry.kind == CreditEntryKind.GRANT, CreditEntry.amount > 0,
                        CreditEntry.quote_id.in_(quote_ids))
                 .order_by(CreditEntry.quote_id))
    if not_yet_reversed:
        reversed_quotes = select(CreditEntry.quote_id).where(CreditEntry.kind == CreditEntryKind.REVERSAL,
                                                              CreditEntry.quote_id.in_(quote_ids))
        statement = statement.where(CreditEntry.quote_id.not_in(reversed_quotes))
    return [(quote_id, quote_reference(quote_id, number, revision), amount)
            for quote_id, number, revision, amount in db.session.execute(statement)]


def _locked_balance(organisation_id: int) -> int:
    """The organisation's balance, its row locked until the commit so that two writers cannot
    both see the same balance (one statement for both)."""
    return db.session.scalar(select(Organisation.credit_balance)
                             .where(Organisation.id == organisation_id).with_for_update()) or 0


# Built once (a consumption's statements are the API's busiest): the organisation and its balance,
# its row locked until the commit, and whether any webhook endpoint could hear of the entry. The
# balance is a column of its own: an organisation loaded earlier in the session keeps its
# attributes, but the balance is always the row's.
LOCKED_ORGANISATION = (select(Organisation, Organisation.credit_balance, events.ANY_ENABLED_ENDPOINT)
                       .where(Organisation.id == bindparam("organisation_id")).with_for_update())


class LockedOrganisation(NamedTuple):
    organisation: Organisation
    balance: int
    any_enabled_endpoint: bool


def _locked_organisation(organisation_id: int) -> LockedOrganisation:
    """The organisation, its balance and whether an endpoint is enabled, read with its row locked
    until the commit (one statement)."""
    found = db.session.execute(LOCKED_ORGANISATION, {"organisation_id": organisation_id}).one_or_none()
    if found is None:
        raise OrganisationNotFound(resource="organisation")
    organisation, balance, any_enabled_endpoint = found
    return LockedOrganisation(organisation, balance, bool(any_enabled_endpoint))


def _append_entry(
    organisation_id: int,
    amount: int,
    kind: CreditEntryKind,
    *,
    actor: User | None,
    reason: str,
    ip: str | None = None,
    external_reference: str | None = None,
    api_key: ApiKey | None = None,
) -> Posting:
    organisation, balance, any_enabled_endpoint = _locked_organisation(organisation_id)
    if balance + amount < 0:
        raise InsufficientCredits(balance=balance)
    entry = CreditEntry(organisation_id=organisation.id, kind=kind, amount=amount,
                        actor_id=actor.id if actor else None, reason=reason,
                        external_reference=external_reference,
                        api_key_id=api_key.id if api_key else None)
    db.session.add(entry)
    db.session.flush()  # the database adds `amount` to the organisation's stored balance
    audit.record(f"credits.{kind.value}", entry, actor=actor, organisation_id=organisation.id,
                 ip=ip, amount=amount, reason=reason, external_reference=external_reference,
                 api_key=api_key.prefix if api_key else None)
    if any_enabled_endpoint:  # else no endpoint subscribes: events.record would write nothing
        events.record(ENTRY_EVENTS[kind], organisation, entry_json(entry))
    return Posting(entry, balance + amount)
