"""The life cycle of an issued invoice as the 2026–2027 e-invoicing reform defines it: the statuses
an approved platform (plateforme agréée) reports, each recorded with when it happened and who told
it. « Encaissée » is recorded by the payment itself; staff record by hand what they learn.

Transmission through an approved platform is not built here: its API standard is not available. The
seam where an adapter will plug in is `PlatformAdapter` (it transmits an invoice's Factur-X PDF and
reports the statuses it learns) and `apply_platform_report`, which records a reported status with
the platform as its source. No adapter exists until a platform is chosen.

Like every domain module, functions here flush only; the caller commits once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select

from . import audit
from .exceptions import LifecycleDateInFuture, LifecycleStatusByPaymentOnly, UnknownLifecycleStatus
from .extensions import db
from .models import Invoice, InvoiceLifecycleEvent, LifecycleSource, LifecycleStatus, User, utcnow

# The reform's codes of these statuses (the platforms' and the directory's vocabulary).
STATUS_CODES = {LifecycleStatus.DEPOSITED: 200, LifecycleStatus.APPROVED: 205,
                LifecycleStatus.REFUSED: 210, LifecycleStatus.CASHED: 212,
                LifecycleStatus.REJECTED: 213}
# « Encaissée » is the payment's: staff record a payment (a transfer), which records it.
RECORDED_BY_STAFF = (LifecycleStatus.DEPOSITED, LifecycleStatus.REJECTED, LifecycleStatus.REFUSED,
                     LifecycleStatus.APPROVED)


def record(invoice: Invoice, status: LifecycleStatus | str, *, source: LifecycleSource,
           actor: User | None = None, occurred_at: datetime | None = None, note: str | None = None,
           ip: str | None = None) -> InvoiceLifecycleEvent:
    """Append one status to `invoice`'s life cycle; flushes."""
    status = _status(status)
    now = utcnow()
    event = InvoiceLifecycleEvent(invoice_id=invoice.id, status=status, source=source,
                                  occurred_at=occurred_at or now, recorded_at=now,
                                  actor_id=actor.id if actor else None, note=(note or "").strip() or None)
    db.session.add(event)
    db.session.flush()
    audit.record("invoice.lifecycle", invoice, actor=actor, organisation_id=invoice.organisation_id,
                 ip=ip, number=invoice.number, status=status, source=source)
    return event


def record_by_staff(invoice: Invoice, status: LifecycleStatus | str, *, actor: User,
                    occurred_at: datetime | None, note: str | None, ip: str | None = None
                    ) -> InvoiceLifecycleEvent:
    """A status staff learnt (from the platform's portal, from the client); « encaissée » is the
    payment's to record."""
    status = _status(status)
    if status not in RECORDED_BY_STAFF:
        raise LifecycleStatusByPaymentOnly()
    if occurred_at is not None and occurred_at > utcnow():
        raise LifecycleDateInFuture()
    return record(invoice, status, source=LifecycleSource.STAFF, actor=actor, occurred_at=occurred_at,
                  note=note, ip=ip)


def history(invoice: Invoice) -> list[InvoiceLifecycleEvent]:
    """The invoice's life cycle, oldest first."""
    return list(db.session.scalars(
        select(InvoiceLifecycleEvent).where(InvoiceLifecycleEvent.invoice_id == invoice.id)
        .order_by(InvoiceLifecycleEvent.occurred_at, InvoiceLifecycleEvent.id)))


def _status(status: LifecycleStatus | str) -> LifecycleStatus:
    try:
        return LifecycleStatus(status)
    except ValueError:
        raise UnknownLifecycleStatus() from None


# --- The seam of an approved platform ----------------------------------------------------------


@dataclass(frozen=True)
class PlatformReport:
    """A status a platform reports for one of our invoices (by its number)."""

    invoice_number: str
    code: int
    occurred_at: datetime
    note: str | None = None


class PlatformAdapter(Protocol):
    """What an approved platform's adapter provides (none is built: see the module)."""

    def transmit(self, invoice: Invoice, facturx_pdf: bytes) -> None:
        """Hand the invoice over to the platform (its « dépôt »)."""

    def reports(self, since: datetime) -> list[PlatformReport]:
        """The statuses the platform learnt since `since`."""


def apply_platform_report(report: PlatformReport) -> InvoiceLifecycleEvent | None:
    """Record a platform's report; None for an invoice number or a code that is not ours."""
    status = next((status for status, code in STATUS_CODES.items() if code == report.code), None)
    invoice = db.session.scalar(select(Invoice).where(Invoice.number == report.invoice_number))
    if status is None or invoice is None:
        return None
    return record(invoice, status, source=LifecycleSource.PLATFORM, occurred_at=report.occurred_at,
                  note=report.note)
