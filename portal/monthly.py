"""The monthly close: one consolidated invoice per organisation and month (billing, monthly mode).

`close_month` is a job, not an action: it commits each organisation in its own transaction so a
crash loses nothing already billed and a rerun bills only what remains. Running it twice, or in
two processes at once, bills each organisation-month once: the organisation row is locked while
it is billed, and a unique constraint on (organisation, period) backs that up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from . import audit, billing
from .exceptions import DomainError, InvalidPeriod
from .extensions import db
from .models import (
    BillingMode,
    Invoice,
    InvoiceKind,
    Organisation,
    Quote,
    QuoteLine,
    QuoteStatus,
    User,
)

PERIOD_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
CHUNK = 500  # organisations whose quotes the close reads in one query


def period_bounds(period: str) -> tuple[date, date]:
    """First day of the period and first day of the next month."""
    match = PERIOD_PATTERN.match(period or "")
    if not match:
        raise InvalidPeriod()
    first = date(int(match.group(1)), int(match.group(2)), 1)
    return first, (first + timedelta(days=32)).replace(day=1)


def previous_period(now: datetime | None = None) -> str:
    """The month before the current one, in Paris time."""
    first_of_month = billing.paris_today(now).replace(day=1)
    return (first_of_month - timedelta(days=1)).strftime("%Y-%m")


def check_closable(period: str, now: datetime | None = None) -> None:
    """A period can be closed once it is over: never the current month, never the future."""
    _, next_month = period_bounds(period)
    if billing.paris_today(now) < next_month:
        raise InvalidPeriod("La période %(period)s n'est pas terminée : elle ne peut pas encore "
                            "être facturée.", period=period)


def _unbilled_quotes_query(period: str):
    return select(Quote).where(
        Quote.status == QuoteStatus.ACCEPTED,
        Quote.billing_mode == BillingMode.MONTHLY,
        Quote.billing_period == period,
        Quote.monthly_invoice_id.is_(None),
    )


def pending_organisation_ids(period: str) -> list[int]:
    """Organisations with accepted monthly quotes of `period` not yet on an invoice."""
    query = _unbilled_quotes_query(period).with_only_columns(Quote.organisation_id).distinct()
    return sorted(db.session.scalars(query))


@dataclass
class OrganisationPreview:
    organisation: Organisation
    quotes: list[Quote]

    @property
    def total_ht_cents(self) -> int:
        return sum(quote.total_ht_cents for quote in self.quotes)

    @property
    def total_ttc_cents(self) -> int:
        return sum(quote.total_ttc_cents for quote in self.quotes)


def preview_month(period: str) -> list[OrganisationPreview]:
    """What closing `period` would bill, organisation by organisation."""
    period_bounds(period)
    quotes = db.session.scalars(
        _unbilled_quotes_query(period).options(selectinload(Quote.organisation))
        .order_by(Quote.organisation_id, Quote.id)
    ).all()
    previews: dict[int, OrganisationPreview] = {}
    for quote in quotes:
        preview = previews.setdefault(quote.organisation_id,
                                      OrganisationPreview(quote.organisation, []))
        preview.quotes.append(quote)
    return list(previews.values())


@dataclass
class CloseSummary:
    period: str
    invoices: list[str] = field(default_factory=list)
    already_billed: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)


def close_month(
    period: str,
    *,
    actor: User | None = None,
    now: datetime | None = None,
    on_organisation_done: Callable[[int], None] | None = None,
) -> CloseSummary:
    """Bill every organisation's accepted monthly quotes of `period`; commits per organisation.

    The quotes and lines are read CHUNK organisations at a time, before their transactions; each
    organisation's transaction then locks it and checks, in one statement, that it is not billed
    yet and that its quotes are still those read (else it reads them again, under the lock).
    """
    check_closable(period, now)
    organisation_ids = pending_organisation_ids(period)
    db.session.rollback()  # end the read transaction before the per-organisation ones
    summary = CloseSummary(period)
    for start in range(0, len(organisation_ids), CHUNK):
        chunk = organisation_ids[start:start + CHUNK]
        prefetched = _unbilled_lines(period, chunk)
        db.session.rollback()
        for organisation_id in chunk:
            _close_one(organisation_id, period, summary, actor=actor, now=now,
                       prefetched=prefetched.get(organisation_id, []))
            if on_organisation_done is not None:
                on_organisation_done(organisation_id)
    return summary


@dataclass(frozen=True)
class _QuoteLines:
    """An unbilled quote as the invoice needs it: its id, reference and lines (plain rows)."""

    quote_id: int
    reference: str
    lines: list


def _unbilled_lines(period: str, organisation_ids: list[int]) -> dict[int, list[_QuoteLines]]:
    """The unbilled quotes of `period` of these organisations with their lines, in invoice order."""
    rows = db.session.execute(
        _unbilled_quotes_query(period)
        .with_only_columns(Quote.organisation_id, Quote.id, Quote.number, Quote.revision,
                           QuoteLine.label, QuoteLine.quantity, QuoteLine.unit_price_cents,
                           QuoteLine.vat_rate_bp)
        .join(QuoteLine, QuoteLine.quote_id == Quote.id)
        .where(Quote.organisation_id.in_(organisation_ids))
        .order_by(Quote.organisation_id, Quote.decided_at, Quote.id, QuoteLine.position)
    ).all()
    found: dict[int, list[_QuoteLines]] = {}
    for organisation_id, quote_id, number, revision, *line in rows:
        quotes = found.setdefault(organisation_id, [])
        if not quotes or quotes[-1].quote_id != quote_id:
            reference = number if revision == 1 else f"{number}-R{revision}"  # as Quote.reference
            quotes.append(_QuoteLines(quote_id, reference, []))
        quotes[-1].lines.append(line)
    return found


def _close_one(organisation_id: int, period: str, summary: CloseSummary, *,
               actor: User | None, now: datetime | None, prefetched: list[_QuoteLines]) -> None:
    actor_id = actor.id if actor else None
    try:
        _plan_each_statement()
        actor_in_session = db.session.get(User, actor_id) if actor_id else None
        invoice = close_organisation_month(organisation_id, period, actor=actor_in_session, now=now,
                                           prefetched=prefetched)
        number = invoice.number if invoice else None
        db.session.commit()
    except IntegrityError as error:
        db.session.rollback()
        if not _already_invoiced(organisation_id, period):
            summary.failures.append((organisation_id, str(error.orig)))
            return
        number = None  # another runner billed it first
    except DomainError as error:
        db.session.rollback()
        summary.failures.append((organisation_id, str(error)))
        return
    if number:
        summary.invoices.append(number)
    else:
        summary.already_billed += 1


def _plan_each_statement() -> None:
    """PostgreSQL: plan each statement of this transaction for the data it runs on.

    Foreign-key checks are cached plans. Cached while the invoice table was nearly empty (the
    first close of a database, statistics not refreshed since), the check of each quote's and
    line's invoice scans that whole table, and the close grows quadratically with its size.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def _invoiced_statement(organisation_id: int, period: str):
    return select(Invoice.id).where(Invoice.organisation_id == organisation_id,
                                    Invoice.billing_period == period, Invoice.kind == InvoiceKind.INVOICE)


def _already_invoiced(organisation_id: int, period: str) -> bool:
    return db.session.scalar(_invoiced_statement(organisation_id, period)) is not None


def close_organisation_month(
    organisation_id: int, period: str, *, actor: User | None = None, now: datetime | None = None,
    prefetched: list[_QuoteLines] | None = None,
) -> Invoice | None:
    """Issue one organisation's invoice for `period` (None if already billed); flushes only.

    `prefetched`: its unbilled quotes as read before this transaction (`_unbilled_lines`); they
    are used only if, under the organisation's lock, the same number of quotes is still unbilled.
    The set can only grow meanwhile (a quote leaves it only with the invoice checked here).
    """
    # Its users come along (the invoice's email goes to them); only the organisation is locked.
    organisation = db.session.scalars(
        select(Organisation).where(Organisation.id == organisation_id)
        .options(joinedload(Organisation.users)).with_for_update(of=Organisation)
    ).unique().one()
    # A statement after the lock: it sees what a concurrent runner committed before releasing it.
    unbilled = _unbilled_quotes_query(period).where(Quote.organisation_id == organisation_id)
    already, pending = db.session.execute(select(
        _invoiced_statement(organisation_id, period).exists(),
        select(func.count()).select_from(unbilled.subquery()).scalar_subquery(),
    )).one()
    if already or not pending:
        return None
    quotes = prefetched if prefetched and len(prefetched) == pending else (
        _unbilled_lines(period, [organisation_id]).get(organisation_id, []))
    first, next_month = period_bounds(period)
    lines = [
        billing.LineDraft(label=f"{quote.reference} — {label}", quantity=quantity,
                          unit_price_cents=unit_price_cents, vat_rate_bp=vat_rate_bp,
                          quote_id=quote.quote_id)
        for quote in quotes for label, quantity, unit_price_cents, vat_rate_bp in quote.lines
    ]
    invoice = billing.issue_invoice(organisation=organisation, lines=lines, now=now,
                                    billing_period=period,
                                    sale_date=next_month - timedelta(days=1))
    quote_table = Quote.__table__  # a plain UPDATE: no ORM synchronisation to do (none loaded)
    db.session.execute(
        update(quote_table).where(quote_table.c.id.in_([quote.quote_id for quote in quotes]))
        .values(monthly_invoice_id=invoice.id)
    )
    audit.record("invoice.issued", invoice, actor=actor, organisation_id=organisation_id,
                 number=invoice.number, period=period, quotes=[quote.reference for quote in quotes])
    billing.notify_invoice_issued(invoice, template="monthly_invoice_issued")
    return invoice
