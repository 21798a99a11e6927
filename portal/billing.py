"""Invoices, gapless numbering, credit notes and payments recorded (the credit ledger: `credits`).

Every function here only flushes: the caller commits once. The exception is `close_month`
(in `monthly.py`), a job that commits a batch of organisations at a time so that it can resume.

VAT is rounded per line, half up, on the line's total HT (`money.vat_cents`); totals are sums of lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache

from sqlalchemy import Integer, Select, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from . import audit, credits, events, lifecycle, outbox
from .dates import paris_today
from .exceptions import (
    CreditNoteReasonMissing,
    EmptyInvoice,
    InvoiceNotCancellable,
    InvoiceNotPayable,
    PaymentMismatch,
    PaymentReferenceTaken,
)
from .extensions import db
from .models import (
    ClientRole,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    LifecycleSource,
    LifecycleStatus,
    NumberCounter,
    Organisation,
    Payment,
    PaymentProvider,
    Quote,
    SupplyKind,
    User,
    utcnow,
)
from .money import vat_cents
from .representations import invoice_json
from .seller import seller_snapshot

VAT_RATES_BP = (0, 210, 550, 1000, 2000)
INVOICE_SERIES = "FA"
CREDIT_NOTE_SERIES = "AV"
QUOTE_SERIES = "DV"


def next_number(series: str, year: int) -> str:
    """Take the next number of a series; the counter row stays locked until the caller commits."""
    return next_numbers(series, year, 1)[0]


def next_numbers(series: str, year: int, count: int) -> list[str]:
    """Take the next `count` numbers of a series; the counter row stays locked until the caller commits.

    The increment is an UPDATE on one row, so a concurrent issuer waits for our commit and a
    rollback gives the numbers back: the series has no gap and no duplicate. The row is created
    only when the UPDATE finds none (a series' first number of the year): one statement, not two,
    while the lock is contended.
    """
    last = _increment_counter(series, year, count)
    if last is None:
        _ensure_counter(series, year)
        last = _increment_counter(series, year, count)
    return [f"{series}-{year}-{value:05d}" for value in range(last - count + 1, last + 1)]


# A Core statement, built once: counters are never loaded as objects, so there is nothing to
# synchronise, and building the statement cost more than running it.
_COUNTER = NumberCounter.__table__
INCREMENT_COUNTER = (
    update(_COUNTER)
    .where(_COUNTER.c.series == bindparam("of_series"), _COUNTER.c.year == bindparam("of_year"))
    .values(last_value=_COUNTER.c.last_value + bindparam("count", type_=Integer))
    .returning(_COUNTER.c.last_value)
)


def _increment_counter(series: str, year: int, count: int) -> int | None:
    return db.session.execute(INCREMENT_COUNTER, {"of_series": series, "of_year": year, "count": count}
                              ).scalar_one_or_none()


def _ensure_counter(series: str, year: int) -> None:
    dialect = db.session.get_bind().dialect.name
    builder = {"postgresql": pg_insert, "sqlite": sqlite_insert}.get(dialect)
    values = {"series": series, "year": year, "last_value": 0}
    if builder is None:
        if db.session.get(NumberCounter, (series, year)) is None:
            db.session.execute(insert(NumberCounter).values(**values))
        return
    db.session.execute(builder(NumberCounter).values(**values).on_conflict_do_nothing())


def buyer_snapshot(organisation: Organisation) -> dict[str, str]:
    """The buyer identity frozen onto an invoice."""
    fields = ["name", "legal_form", "siren", "siret", "vat_number", "address_line1",
              "address_line2", "postal_code", "city", "country"]
    return {field: getattr(organisation, field) or "" for field in fields}


@dataclass(frozen=True)
class LineDraft:
    """One invoice line before issue."""

    label: str
    quantity: int
    unit_price_cents: int
    vat_rate_bp: int
    quote_id: int | None = None
    supply_kind: SupplyKind | None = SupplyKind.SERVICES

    @property
    def total_ht_cents(self) -> int:
        return self.quantity * self.unit_price_cents

    @property
    def total_vat_cents(self) -> int:
        return vat_cents(self.total_ht_cents, self.vat_rate_bp)


def issue_invoice(
    *,
    organisation: Organisation,
    lines: list[LineDraft],
    kind: InvoiceKind = InvoiceKind.INVOICE,
    now: datetime | None = None,
    quote: Quote | None = None,
    billing_period: str | None = None,
    credited_invoice: Invoice | None = None,
    sale_date: date | None = None,
    reason: str | None = None,
    email_template: str | None = None,
    contact: User | None = None,
) -> Invoice:
    """Issue a numbered invoice or credit note with frozen seller and buyer identities; with
    `email_template`, queue its email to the organisation's invoice contacts (see `invoice_contacts`)."""
    invoice = _unnumbered_invoice(
        organisation, lines, seller_snapshot(), kind=kind, now=now, billing_period=billing_period,
        sale_date=sale_date, quote_id=quote.id if quote else None,
        credited_invoice_id=credited_invoice.id if credited_invoice else None, reason=reason)
    # Where the database hands out the id before the insert (PostgreSQL's sequence), the emails are
    # queued before the number is taken: the counter row stays locked from the number to the commit,
    # and concurrent issuers wait for every statement sent in between.
    invoice.id = _id_before_insert(Invoice)
    emails_first = invoice.id is not None
    if email_template and emails_first:
        _queue_invoice_emails(invoice.id, organisation, contact, email_template)
    _number_and_insert([(invoice, lines)])
    if email_template and not emails_first:
        _queue_invoice_emails(invoice.id, organisation, contact, email_template)
    events.record("invoice.issued", organisation, invoice_json(invoice), now=now)
    return invoice


def _id_before_insert(model: type[db.Model]) -> int | None:
    """The next id of `model`'s table from its sequence (PostgreSQL); None where ids exist only
    once a row is inserted (SQLite)."""
    if db.session.get_bind().dialect.name != "postgresql":
        return None
    return db.session.scalar(_next_id_statement(model.__tablename__))


@cache
def _next_id_statement(table: str) -> Select:
    return select(func.nextval(func.pg_get_serial_sequence(table, "id")))


def _queue_invoice_emails(invoice_id: int, organisation: Organisation, contact: User | None,
                          template: str) -> None:
    # No lookup of the dedupe keys: they name an invoice of this transaction, which no row can name yet.
    outbox.insert_new([_invoice_email(invoice_id, address, template)
                       for address in invoice_contacts(organisation, contact)])


def issue_monthly_invoices(
    batch: list[tuple[Organisation, list[LineDraft]]], *, period: str, sale_date: date,
    now: datetime | None = None,
) -> list[Invoice]:
    """Issue the consolidated invoices of several organisations for `period`, numbered in the
    order given: the seller's settings are read once, rows are inserted many per statement, and all
    are dated alike (one `now`: a batch running over midnight on 31 December stays in one year)."""
    now = now or utcnow()
    seller = seller_snapshot()
    drafts = [(_unnumbered_invoice(organisation, lines, seller, kind=InvoiceKind.INVOICE, now=now,
                                   billing_period=period, sale_date=sale_date), lines)
              for organisation, lines in batch]
    _number_and_insert(drafts)
    issued = [(organisation, invoice_json(invoice))
              for (organisation, _), (invoice, _) in zip(batch, drafts, strict=True)]
    events.record_many("invoice.issued", issued, now=now)
    return [invoice for invoice, _ in drafts]


def _unnumbered_invoice(organisation: Organisation, lines: list[LineDraft], seller: dict[str, str], *,
                        kind: InvoiceKind, now: datetime | None, billing_period: str | None,
                        sale_date: date | None, quote_id: int | None = None,
                        credited_invoice_id: int | None = None, reason: str | None = None) -> Invoice:
    if not lines:
        raise EmptyInvoice()
    issue_date = paris_today(now)
    return Invoice(
        kind=kind,
        organisation_id=organisation.id,
        quote_id=quote_id,
        billing_period=billing_period,
        credited_invoice_id=credited_invoice_id,
        status=InvoiceStatus.ISSUED,
        issue_date=issue_date,
        due_date=issue_date + timedelta(days=organisation.payment_terms_days),
        sale_date=sale_date,
        total_ht_cents=sum(line.total_ht_cents for line in lines),
        total_vat_cents=sum(line.total_vat_cents for line in lines),
        total_ttc_cents=sum(line.total_ht_cents + line.total_vat_cents for line in lines),
        seller=seller,
        buyer=buyer_snapshot(organisation),
        reason=reason,
        issued_at=now or utcnow(),
    )


def _number_and_insert(drafts: list[tuple[Invoice, list[LineDraft]]]) -> None:
    """Number the invoices (all of one kind and issue date) in order, then insert them and their lines."""
    # The numbers come last: their counter row stays locked until the caller commits, so every step
    # moved before them (the caller's pending changes too) is one concurrent issuers don't wait for.
    db.session.flush()
    first = drafts[0][0]
    series = INVOICE_SERIES if first.kind == InvoiceKind.INVOICE else CREDIT_NOTE_SERIES
    numbers = next_numbers(series, first.issue_date.year, len(drafts))
    for (invoice, _), number in zip(drafts, numbers, strict=True):
        invoice.number = number
    db.session.add_all(invoice for invoice, _ in drafts)
    db.session.flush()
    # Plain rows: a monthly invoice has dozens of lines, and ORM objects for them cost more than
    # all the rest of the invoice; `invoice.lines` loads them when read. No RETURNING: psycopg then
    # sends one prepared single-row INSERT per line in a pipeline, twice as fast as multi-row
    # INSERTs of a thousand VALUES each, which PostgreSQL plans afresh every time.
    rows = [row for invoice, lines in drafts for row in _line_rows(invoice.id, lines)]
    db.session.execute(insert(InvoiceLine.__table__), rows)


def _line_rows(invoice_id: int, lines: list[LineDraft]) -> list[dict[str, object]]:
    return [
        {"invoice_id": invoice_id, "position": position, "quote_id": line.quote_id, "label": line.label,
         "quantity": line.quantity, "unit_price_cents": line.unit_price_cents,
         "vat_rate_bp": line.vat_rate_bp, "total_ht_cents": line.total_ht_cents,
         "total_vat_cents": line.total_vat_cents, "supply_kind": line.supply_kind}
        for position, line in enumerate(lines, start=1)
    ]


def quote_lines_for_invoice(quote: Quote) -> list[LineDraft]:
    """The frozen lines of a quote, as invoice lines."""
    return [
        LineDraft(
            label=line.label,
            quantity=line.quantity,
            unit_price_cents=line.unit_price_cents,
            vat_rate_bp=line.vat_rate_bp,
            quote_id=quote.id,
            supply_kind=line.supply_kind,
        )
        for line in quote.lines
    ]


def issue_invoice_for_quote(
    quote: Quote, *, actor: User | None, now: datetime | None = None, ip: str | None = None
) -> Invoice:
    """Invoice an accepted per-order quote, and tell the client."""
    invoice = issue_invoice(
        organisation=quote.organisation,
        lines=quote_lines_for_invoice(quote),
        now=now,
        quote=quote,
        sale_date=paris_today(quote.decided_at),
        email_template="invoice_issued",
        contact=quote.recipient,
    )
    audit.record("invoice.issued", invoice, actor=actor, organisation_id=quote.organisation_id,
                 ip=ip, number=invoice.number, quote=quote.reference)
    return invoice


def invoice_contacts(organisation: Organisation, preferred: User | None = None) -> list[str]:
    """Who receives an organisation's invoices: its billing address, else the quote's recipient,
    else its responsables."""
    if organisation.billing_email:
        return [organisation.billing_email]
    if preferred is not None:
        return [preferred.email]
    return sorted(
        user.email
        for user in organisation.users
        if user.active and user.client_role == ClientRole.RESPONSABLE
    )


def new_invoice_emails(invoice: Invoice, organisation: Organisation, *, template: str) -> list:
    """The 'invoice issued' emails of an invoice issued in this transaction, not yet added
    (`outbox.new_email`): to the organisation's invoice contacts."""
    return [outbox.new_email(**_invoice_email(invoice.id, address, template))
            for address in invoice_contacts(organisation)]


def _invoice_email(invoice_id: int, address: str, template: str) -> dict:
    return {"recipient": address, "template": template, "context": {"invoice_id": invoice_id},
            "dedupe_key": f"{template}:{invoice_id}:{address}"}


def record_payment(
    invoice: Invoice,
    *,
    provider: PaymentProvider,
    provider_reference: str,
    amount_cents: int,
    currency: str,
    actor: User | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> Payment:
    """Record a full payment of an invoice, once per provider reference, then grant its credits."""
    existing = _payment_by_reference(provider_reference)
    if existing is not None:
        return _same_invoice(existing, invoice)
    if amount_cents != invoice.total_ttc_cents or currency.upper() != invoice.currency:
        raise PaymentMismatch()
    paid = db.session.execute(
        update(Invoice)
        .where(Invoice.id == invoice.id, Invoice.is_payable)
        .values(status=InvoiceStatus.PAID, paid_at=now or utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not paid:
        # A concurrent delivery of the same payment may have committed while we waited.
        existing = _payment_by_reference(provider_reference)
        if existing is not None:
            return _same_invoice(existing, invoice)
        raise InvoiceNotPayable()
    db.session.refresh(invoice)
    payment = Payment(invoice_id=invoice.id, provider=provider, provider_reference=provider_reference,
                      amount_cents=amount_cents, currency=currency.upper(),
                      recorded_by_id=actor.id if actor else None, received_at=now or utcnow())
    try:
        # The same reference may be committing for another invoice: the unique index waits for it.
        with db.session.begin_nested():
            db.session.add(payment)
    except IntegrityError:
        existing = _payment_by_reference(provider_reference)
        if existing is None:
            raise
        return _same_invoice(existing, invoice)
    events.record("invoice.paid", invoice.organisation, invoice_json(invoice), now=now)
    lifecycle.record(invoice, LifecycleStatus.CASHED, source=LifecycleSource.PORTAL, actor=actor,
                     occurred_at=now, note=provider_reference)
    if invoice.quote is not None:
        credits.grant_quote_credits(invoice.quote, actor=actor, now=now)
    audit.record("invoice.paid", invoice, actor=actor, organisation_id=invoice.organisation_id,
                 ip=ip, provider=provider, reference=provider_reference, amount_cents=amount_cents)
    for address in invoice_contacts(invoice.organisation, invoice.quote.recipient if invoice.quote else None):
        outbox.enqueue(recipient=address, template="payment_received",
                       context={"invoice_id": invoice.id, "payment_id": payment.id},
                       dedupe_key=f"payment_received:{payment.id}:{address}")
    return payment


def _payment_by_reference(reference: str) -> Payment | None:
    return db.session.scalar(select(Payment).where(Payment.provider_reference == reference))


def _same_invoice(payment: Payment, invoice: Invoice) -> Payment:
    if payment.invoice_id != invoice.id:
        raise PaymentReferenceTaken()
    return payment


def issue_credit_note(
    invoice: Invoice, *, actor: User, reason: str, now: datetime | None = None, ip: str | None = None
) -> Invoice:
    """Cancel an unpaid invoice in full by a credit note referencing it; the credits its quotes
    granted and the organisation still holds are taken back (`credits.reverse_credit_note_credits`)."""
    reason = (reason or "").strip()
    if not reason:
        raise CreditNoteReasonMissing()
    cancelled = db.session.execute(
        update(Invoice)
        .where(Invoice.id == invoice.id, Invoice.is_payable)
        .values(status=InvoiceStatus.CANCELLED, cancelled_at=now or utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not cancelled:
        raise InvoiceNotCancellable()
    db.session.refresh(invoice)
    lines = [
        LineDraft(label=line.label, quantity=line.quantity, unit_price_cents=line.unit_price_cents,
                  vat_rate_bp=line.vat_rate_bp, quote_id=line.quote_id, supply_kind=line.supply_kind)
        for line in invoice.lines
    ]
    credit_note = issue_invoice(organisation=invoice.organisation, lines=lines,
                                kind=InvoiceKind.CREDIT_NOTE, now=now, credited_invoice=invoice,
                                sale_date=invoice.sale_date, reason=reason,
                                email_template="credit_note_issued")
    audit.record("invoice.credited", invoice, actor=actor, organisation_id=invoice.organisation_id,
                 ip=ip, credit_note=credit_note.number, reason=reason)
    events.record("invoice.cancelled", invoice.organisation, invoice_json(invoice), now=now)
    credits.reverse_credit_note_credits(invoice, credit_note, actor=actor, ip=ip)
    return credit_note
