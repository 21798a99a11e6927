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

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel.speaklater import LazyString
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from . import audit, billing
from .dates import paris_today, period_bounds
from .documents import format_period
from .exceptions import CloseAlreadyQueued, DomainError, PeriodNotOver
from .extensions import db
from .labels import period_label
from .models import (
    BillingMode,
    CloseJobStatus,
    Invoice,
    InvoiceKind,
    MonthlyCloseJob,
    Organisation,
    Quote,
    QuoteLine,
    QuoteStatus,
    User,
    quote_reference,
    utcnow,
)

BATCH = 100  # organisations billed in one transaction, their invoices inserted together
# A job left running that long (its worker died) is run again: the close resumes where it stopped.
CLOSE_JOB_LEASE = timedelta(hours=1)
ACTIVE_CLOSE = (CloseJobStatus.QUEUED, CloseJobStatus.RUNNING)
log = logging.getLogger(__name__)


def previous_period(now: datetime | None = None) -> str:
    """The month before the current one, in Paris time."""
    first_of_month = paris_today(now).replace(day=1)
    return (first_of_month - timedelta(days=1)).strftime("%Y-%m")


def _named(period: str) -> LazyString:
    """A period as a refusal names it, « novembre 2026 », in the language of whoever reads it."""
    return LazyString(period_label, period)


def check_closable(period: str, now: datetime | None = None) -> None:
    """A period can be closed once it is over: never the current month, never the future."""
    _, next_month = period_bounds(period)
    if paris_today(now) < next_month:
        raise PeriodNotOver(period=_named(period))


def unbilled_quotes_query(period: str):
    """The accepted monthly quotes a close of `period` bills: those of `period` and those of any
    earlier month still on no invoice. An acceptance committed after its own month's close (the
    close did not see it) is so billed by the next close, with its month shown on its lines."""
    return select(Quote).where(
        Quote.status == QuoteStatus.ACCEPTED,
        Quote.billing_mode == BillingMode.MONTHLY,
        Quote.billing_period <= period,
        Quote.monthly_invoice_id.is_(None),
    )


def pending_organisation_ids(period: str) -> list[int]:
    """Organisations with accepted monthly quotes of `period` (or of an earlier month, accepted
    after its close) not yet on an invoice."""
    query = unbilled_quotes_query(period).with_only_columns(Quote.organisation_id).distinct()
    return sorted(db.session.scalars(query))


@dataclass
class CloseSummary:
    period: str
    invoices: list[str] = field(default_factory=list)
    already_billed: int = 0  # pending when the run began, billed meanwhile by another runner
    failures: list[tuple[int, str]] = field(default_factory=list)
    billed_before: int = 0  # organisations billed for the period before this run began (a rerun)

    @property
    def already_billed_in_all(self) -> int:
        """Organisations this run found billed already: before it began, or by another runner."""
        return self.billed_before + self.already_billed


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
    summary = CloseSummary(period, billed_before=close_progress(period).issued)
    _forget_cached_plans()
    db.session.rollback()  # end the read transaction before the billing ones
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
        [(organisation, _invoice_lines(quotes, period)) for organisation, quotes in to_bill],
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
    """An unbilled quote as the invoice needs it: its id, reference, month and lines (plain rows)."""

    quote_id: int
    reference: str
    period: str
    lines: list


def _unbilled_lines(period: str, organisation_ids: list[int]) -> dict[int, list[_QuoteLines]]:
    """The unbilled quotes of `period` (and earlier) of these organisations with their lines, in
    invoice order."""
    rows = db.session.execute(
        unbilled_quotes_query(period)
        .with_only_columns(Quote.organisation_id, Quote.id, Quote.number, Quote.revision,
                           Quote.billing_period, QuoteLine.label, QuoteLine.quantity,
                           QuoteLine.unit_price_cents, QuoteLine.vat_rate_bp, QuoteLine.supply_kind)
        .join(QuoteLine, QuoteLine.quote_id == Quote.id)
        .where(Quote.organisation_id.in_(organisation_ids))
        .order_by(Quote.organisation_id, Quote.decided_at, Quote.id, QuoteLine.position)
    ).all()
    found: dict[int, list[_QuoteLines]] = {}
    for organisation_id, quote_id, number, revision, quote_period, *line in rows:
        quotes = found.setdefault(organisation_id, [])
        if not quotes or quotes[-1].quote_id != quote_id:
            reference = quote_reference(quote_id, number, revision)
            quotes.append(_QuoteLines(quote_id, reference, quote_period, []))
        quotes[-1].lines.append(line)
    return found


def _invoice_lines(quotes: list[_QuoteLines], period: str) -> list[billing.LineDraft]:
    """The invoice's lines: each quote's, labelled with its reference, and with its own month when
    it was accepted in an earlier one (after that month's close). Invoices are French."""
    return [
        billing.LineDraft(label=f"{_line_prefix(quote, period)} — {label}", quantity=quantity,
                          unit_price_cents=unit_price_cents, vat_rate_bp=vat_rate_bp,
                          quote_id=quote.quote_id, supply_kind=supply_kind)
        for quote in quotes
        for label, quantity, unit_price_cents, vat_rate_bp, supply_kind in quote.lines
    ]


def _line_prefix(quote: _QuoteLines, period: str) -> str:
    if quote.period == period:
        return quote.reference
    return f"{quote.reference} (validé en {format_period(quote.period)})"


def _mark_quotes_billed(billed_now: list[tuple[Invoice, tuple[Organisation, list[_QuoteLines]]]]) -> None:
    # One UPDATE sent for many rows (executemany); a plain table: no ORM object to synchronise.
    quote_table = Quote.__table__
    db.session.execute(
        update(quote_table).where(quote_table.c.id == bindparam("billed_quote_id"))
        .values(monthly_invoice_id=bindparam("billing_invoice_id")),
        [{"billed_quote_id": quote.quote_id, "billing_invoice_id": invoice.id}
         for invoice, (_, quotes) in billed_now for quote in quotes],
    )


# --- The close queued from the back office, run by the outbox worker ---------------------------


def queue_close(period: str, *, actor: User) -> MonthlyCloseJob:
    """Queue the close of `period` for the worker (`flask outbox work`); flushes only. A period
    already queued or running is refused (CloseAlreadyQueued); two concurrent clicks meet the
    unique index, whose violation leaves the session to be rolled back by the caller."""
    check_closable(period)
    if latest_close_job(period, active_only=True) is not None:
        raise CloseAlreadyQueued(period=_named(period))
    job = MonthlyCloseJob(period=period, requested_by_id=actor.id, status=CloseJobStatus.QUEUED)
    db.session.add(job)
    try:
        db.session.flush()
    except IntegrityError:
        raise CloseAlreadyQueued(period=_named(period)) from None
    audit.record("monthly_close.queued", job, actor=actor, period=period)
    return job


def latest_close_job(period: str, *, active_only: bool = False) -> MonthlyCloseJob | None:
    """The last close job asked for `period` (only a queued or running one if `active_only`)."""
    query = select(MonthlyCloseJob).where(MonthlyCloseJob.period == period)
    if active_only:
        query = query.where(MonthlyCloseJob.status.in_(ACTIVE_CLOSE))
    return db.session.scalar(query.order_by(MonthlyCloseJob.id.desc()).limit(1))


@dataclass
class CloseProgress:
    """How far the billing of a period is: invoices issued vs organisations to bill in all."""

    issued: int
    pending: int

    @property
    def total(self) -> int:
        return self.issued + self.pending


def close_progress(period: str) -> CloseProgress:
    """Invoices issued for `period` and organisations still to bill."""
    issued = db.session.scalar(select(func.count(Invoice.id)).where(
        Invoice.billing_period == period, Invoice.kind == InvoiceKind.INVOICE))
    pending = db.session.scalar(unbilled_quotes_query(period).with_only_columns(
        func.count(Quote.organisation_id.distinct())))
    return CloseProgress(issued=issued or 0, pending=pending or 0)


def run_queued_closes(*, now: datetime | None = None) -> int:
    """Run every queued close (and any left running past CLOSE_JOB_LEASE by a dead worker), oldest
    first; a job, like `close_month`: it commits as it goes, so call it with a clean session.
    Returns the number of jobs run. Several workers never run the same job (SKIP LOCKED)."""
    count = 0
    while (job_id := _claim_close_job(utcnow())) is not None:
        _run_close_job(job_id, now=now)
        count += 1
    return count


def _claim_close_job(now: datetime) -> int | None:
    claimable = (MonthlyCloseJob.status == CloseJobStatus.QUEUED) | (
        (MonthlyCloseJob.status == CloseJobStatus.RUNNING)
        & (MonthlyCloseJob.started_at < now - CLOSE_JOB_LEASE))
    candidate = (select(MonthlyCloseJob.id).where(claimable).order_by(MonthlyCloseJob.id).limit(1)
                 .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers anyway
                 .scalar_subquery())
    job_id = db.session.execute(
        update(MonthlyCloseJob).where(MonthlyCloseJob.id == candidate, claimable)
        .values(status=CloseJobStatus.RUNNING, started_at=now)
        .returning(MonthlyCloseJob.id).execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    db.session.commit()
    return job_id


def _run_close_job(job_id: int, *, now: datetime | None) -> None:
    job = db.session.get(MonthlyCloseJob, job_id)
    period, actor = job.period, job.requested_by
    try:
        summary = close_month(period, actor=actor, now=now)
    except Exception as error:  # a refusal (the period) or a bug: the job says so, the worker goes on
        db.session.rollback()
        if not isinstance(error, DomainError):
            log.exception("Monthly close %s (job %s) failed", period, job_id)
        _finish_close_job(job_id, CloseJobStatus.FAILED, error=str(error) or type(error).__name__)
        return
    failures = "\n".join(f"{_organisation_name(organisation_id)} : {message}"
                          for organisation_id, message in summary.failures)
    _finish_close_job(job_id, CloseJobStatus.DONE, issued_count=len(summary.invoices),
                      already_billed_count=summary.already_billed_in_all,
                      failures_count=len(summary.failures), error=failures or None)
    log.info("Monthly close %s (job %s): %s invoice(s) issued, %s failure(s)", period, job_id,
             len(summary.invoices), len(summary.failures))


def _organisation_name(organisation_id: int) -> str:
    return db.session.scalar(select(Organisation.name).where(Organisation.id == organisation_id)) \
        or str(organisation_id)


def _finish_close_job(job_id: int, status: CloseJobStatus, **values) -> None:
    db.session.execute(
        update(MonthlyCloseJob).where(MonthlyCloseJob.id == job_id)
        .values(status=status, finished_at=utcnow(), **values)
        .execution_options(synchronize_session=False))
    db.session.commit()
