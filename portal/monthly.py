"""The monthly close: one consolidated invoice per organisation and month (billing, monthly mode).

`close_month` is a job, not an action: it commits a batch of organisations at a time, so a crash
loses at most the batch in progress and a rerun bills only what remains. Running it twice, or in
two processes at once, bills each organisation-month once: the organisation rows are locked while
they are billed, and a unique constraint on (organisation, period) backs that up. While a batch
runs (about a tenth of a second for 100 organisations), anything that writes a row referencing one
of its organisations (a decision, a credit entry) waits for it, and from its numbers to its commit
it holds the invoice number counter, which every acceptance issuing an invoice waits for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from . import audit, billing
from .dates import paris_today, period_bounds
from .exceptions import DomainError, PeriodNotOver
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
    quote_reference,
)

BATCH = 100  # organisations billed in one transaction, their invoices inserted together


def previous_period(now: datetime | None = None) -> str:
    """The month before the current one, in Paris time."""
    first_of_month = paris_today(now).replace(day=1)
    return (first_of_month - timedelta(days=1)).strftime("%Y-%m")


def check_closable(period: str, now: datetime | None = None) -> None:
    """A period can be closed once it is over: never the current month, never the future."""
    _, next_month = period_bounds(period)
    if paris_today(now) < next_month:
        raise PeriodNotOver(period=period)


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
    batch_size: int = BATCH,
) -> CloseSummary:
    """Bill every organisation's accepted monthly quotes of `period`; commits every `batch_size`
    organisations, then calls `on_organisation_done` for each of them.

    A batch that fails (an organisation's data refused, a concurrent runner's invoice) is rolled
    back and its organisations are billed again one transaction each, so that a failure is that
    organisation's only.
    """
    check_closable(period, now)
    organisation_ids = pending_organisation_ids(period)
    _forget_cached_plans()
    db.session.rollback()  # end the read transaction before the billing ones
    summary = CloseSummary(period)
    actor_id = actor.id if actor else None
    for start in range(0, len(organisation_ids), batch_size):
        batch = organisation_ids[start:start + batch_size]
        _close_batch(batch, period, summary, actor_id=actor_id, now=now)
        if on_organisation_done is not None:
            for organisation_id in batch:
                on_organisation_done(organisation_id)
    return summary


def _close_batch(batch: list[int], period: str, summary: CloseSummary, *,
                 actor_id: int | None, now: datetime | None) -> None:
    try:
        _check_references_by_index()
        actor = db.session.get(User, actor_id) if actor_id else None
        invoices = close_organisations_month(batch, period, actor=actor, now=now)
        numbers = [invoice.number if invoice else None for invoice in invoices.values()]
        db.session.commit()
    except (IntegrityError, DomainError) as error:
        db.session.rollback()
        if len(batch) > 1:
            for organisation_id in batch:
                _close_batch([organisation_id], period, summary, actor_id=actor_id, now=now)
        elif isinstance(error, DomainError):
            summary.failures.append((batch[0], str(error)))
        elif _already_invoiced(batch[0], period):
            summary.already_billed += 1  # another runner billed it first
        else:
            summary.failures.append((batch[0], str(error.orig)))
        return
    summary.invoices.extend(number for number in numbers if number)
    summary.already_billed += numbers.count(None)


def _check_references_by_index() -> None:
    """PostgreSQL: in this transaction, foreign-key checks (and every statement) read indexes.

    A foreign-key check is a cached plan. Cached while the invoice table was nearly empty (the
    first close of a database), it is a scan of the whole table, which the close then runs for each
    line and quote it writes, ever longer: the close grew quadratically. Planning every statement
    afresh (plan_cache_mode) also avoided it, at the price of planning 300,000 checks.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL enable_seqscan = off"))


def _forget_cached_plans() -> None:
    """PostgreSQL: the plans this connection cached before the close (a web worker's, made while
    the invoice table was small) are made again, under _check_references_by_index."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("DISCARD PLANS"))


def _already_invoiced(organisation_id: int, period: str) -> bool:
    return db.session.scalar(_invoiced_query(period, [organisation_id])) is not None


def _invoiced_query(period: str, organisation_ids: list[int]):
    return select(Invoice.organisation_id).where(
        Invoice.organisation_id.in_(organisation_ids), Invoice.billing_period == period,
        Invoice.kind == InvoiceKind.INVOICE)


def close_organisations_month(
    organisation_ids: list[int], period: str, *, actor: User | None = None,
    now: datetime | None = None,
) -> dict[int, Invoice | None]:
    """Issue these organisations' invoices for `period`, numbered in id order; flushes only.

    Returns each organisation's invoice, or None if it was billed already or has nothing to bill.
    The organisations are locked first, in id order (as every runner does: two never deadlock),
    then their unbilled quotes are read under the locks; only the quotes read are marked billed, so
    none is marked without being on the invoice.
    """
    # Their users come along (the invoice's email goes to them); only the organisations are locked.
    organisations = db.session.scalars(
        select(Organisation).where(Organisation.id.in_(organisation_ids)).order_by(Organisation.id)
        .options(joinedload(Organisation.users)).with_for_update(of=Organisation)
    ).unique().all()
    unbilled = _unbilled_lines(period, organisation_ids)
    billed = set(db.session.scalars(_invoiced_query(period, organisation_ids)))
    to_bill = [(organisation, unbilled[organisation.id]) for organisation in organisations
               if organisation.id in unbilled and organisation.id not in billed]
    result: dict[int, Invoice | None] = dict.fromkeys(organisation_ids)
    if not to_bill:
        return result
    _, next_month = period_bounds(period)
    invoices = billing.issue_monthly_invoices(
        [(organisation, _invoice_lines(quotes)) for organisation, quotes in to_bill],
        period=period, sale_date=next_month - timedelta(days=1), now=now)
    billed_now = list(zip(invoices, to_bill, strict=True))
    _mark_quotes_billed(billed_now)
    for invoice, (organisation, quotes) in billed_now:
        db.session.add(audit.event_for(
            "invoice.issued", invoice, actor=actor, organisation_id=organisation.id,
            number=invoice.number, period=period, quotes=[quote.reference for quote in quotes]))
        db.session.add_all(billing.new_invoice_emails(invoice, organisation,
                                                      template="monthly_invoice_issued"))
        result[organisation.id] = invoice
    db.session.flush()
    return result


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
            quotes.append(_QuoteLines(quote_id, quote_reference(quote_id, number, revision), []))
        quotes[-1].lines.append(line)
    return found


def _invoice_lines(quotes: list[_QuoteLines]) -> list[billing.LineDraft]:
    return [
        billing.LineDraft(label=f"{quote.reference} — {label}", quantity=quantity,
                          unit_price_cents=unit_price_cents, vat_rate_bp=vat_rate_bp,
                          quote_id=quote.quote_id)
        for quote in quotes for label, quantity, unit_price_cents, vat_rate_bp in quote.lines
    ]


def _mark_quotes_billed(billed_now: list[tuple[Invoice, tuple[Organisation, list[_QuoteLines]]]]) -> None:
    # One UPDATE sent for many rows (executemany); a plain table: no ORM object to synchronise.
    quote_table = Quote.__table__
    db.session.execute(
        update(quote_table).where(quote_table.c.id == bindparam("billed_quote_id"))
        .values(monthly_invoice_id=bindparam("billing_invoice_id")),
        [{"billed_quote_id": quote.quote_id, "billing_invoice_id": invoice.id}
         for invoice, (_, quotes) in billed_now for quote in quotes],
    )
