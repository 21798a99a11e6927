"""What the monthly close will bill: the back office's preview of a close (organisation by
organisation), and a client's invoices to come (month by month). Both read the quotes the close bills
(monthly.unbilled_quotes_query: a month's, and an earlier month's accepted after its close)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import bindparam, select
from sqlalchemy.orm import load_only, selectinload

from .dates import period_bounds
from .extensions import db
from .models import BillingMode, Invoice, InvoiceKind, Organisation, Quote, QuoteStatus
from .monthly import unbilled_quotes_query


class QuoteTotals:
    """The totals of `quotes` (what a monthly invoice will add up)."""

    quotes: list[Quote]

    @property
    def total_ht_cents(self) -> int:
        return sum(quote.total_ht_cents for quote in self.quotes)

    @property
    def total_ttc_cents(self) -> int:
        return sum(quote.total_ttc_cents for quote in self.quotes)


@dataclass
class OrganisationPreview(QuoteTotals):
    organisation: Organisation
    quotes: list[Quote]


@dataclass
class InvoiceToCome(QuoteTotals):
    """A monthly invoice an organisation will get: the close of `period` bills `quotes`, on the
    first day of the next month (`issue_date`)."""

    period: str
    issue_date: date
    quotes: list[Quote] = field(default_factory=list)


# What a client's « Factures » shows of each quote waiting for its invoice (no relationship loaded).
WAITING_QUOTES = (
    select(Quote)
    .options(load_only(Quote.id, Quote.number, Quote.revision, Quote.title, Quote.total_ht_cents,
                       Quote.total_ttc_cents, Quote.total_credits, Quote.billing_period,
                       Quote.decided_at, raiseload=True))
    .where(Quote.organisation_id == bindparam("organisation_id"), Quote.status == QuoteStatus.ACCEPTED,
           Quote.billing_mode == BillingMode.MONTHLY, Quote.monthly_invoice_id.is_(None),
           Quote.billing_period.is_not(None))
    .order_by(Quote.billing_period, Quote.id)
)
INVOICED_PERIODS = select(Invoice.billing_period).where(
    Invoice.organisation_id == bindparam("organisation_id"), Invoice.kind == InvoiceKind.INVOICE,
    Invoice.billing_period.is_not(None))


def invoices_to_come(organisation_id: int) -> list[InvoiceToCome]:
    """The organisation's monthly invoices to come, in month order. A quote waits for its own
    month's close; one whose month is invoiced already (accepted after that close) waits for the
    next close that has not billed the organisation yet (see unbilled_quotes_query)."""
    waiting = db.session.scalars(WAITING_QUOTES, {"organisation_id": organisation_id}).all()
    invoiced = set(db.session.scalars(INVOICED_PERIODS, {"organisation_id": organisation_id})
                   ) if waiting else set()
    to_come: dict[str, InvoiceToCome] = {}
    for quote in waiting:
        period = quote.billing_period
        while period in invoiced:
            period = _next_period(period)
        if period not in to_come:
            to_come[period] = InvoiceToCome(period, period_bounds(period)[1])
        to_come[period].quotes.append(quote)
    return sorted(to_come.values(), key=lambda invoice: invoice.period)


def _next_period(period: str) -> str:
    return period_bounds(period)[1].strftime("%Y-%m")


def preview_month(period: str) -> list[OrganisationPreview]:
    """What closing `period` would bill, organisation by organisation."""
    period_bounds(period)
    quotes = db.session.scalars(
        unbilled_quotes_query(period).options(selectinload(Quote.organisation))
        .order_by(Quote.organisation_id, Quote.id)
    ).all()
    previews: dict[int, OrganisationPreview] = {}
    for quote in quotes:
        preview = previews.setdefault(quote.organisation_id,
                                      OrganisationPreview(quote.organisation, []))
        preview.quotes.append(quote)
    return list(previews.values())
