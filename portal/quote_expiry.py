"""Sent quotes reaching their validity date: the reminders before it, the expiry after it.

The daily jobs `flask quotes remind` and `flask quotes expire` run these; both flush only and the
command commits. The status change itself is `quotes.expire`, a compare-and-set like every other.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select

from . import outbox, quotes
from .dates import paris_today
from .extensions import db
from .models import Quote, QuoteStatus, utcnow

REMINDER_DAYS = (7, 1)


def expire_overdue(*, now: datetime | None = None) -> list[Quote]:
    """Mark expired every sent quote whose validity date has passed (Paris time)."""
    today = paris_today(now)
    overdue = db.session.scalars(
        select(Quote).where(Quote.status == QuoteStatus.SENT, Quote.valid_until < today)
    ).all()
    return [quote for quote in overdue if quotes.expire(quote)]  # False: decided meanwhile


def remind_expiring(*, now: datetime | None = None) -> int:
    """Queue the reminders due for sent quotes (7 days and 1 day before their validity date).

    Each reminder goes once (its dedupe key) and carries a fresh magic link. A run that was
    missed catches up with the closest reminder only; a quote sent after a reminder's day never
    gets that one. Returns how many reminders were queued.
    """
    now = now or utcnow()
    today = paris_today(now)
    candidates = db.session.scalars(
        select(Quote).where(Quote.status == QuoteStatus.SENT, Quote.valid_until >= today,
                            Quote.valid_until <= today + timedelta(days=max(REMINDER_DAYS)))
        .order_by(Quote.id)
    ).all()
    due = {}
    for quote in candidates:
        days = _reminder_due(quote, today)
        if days is not None and quote.recipient is not None and quote.recipient.active:
            due[f"quote_reminder:{quote.id}:{days}"] = (quote, days)
    for key in outbox.queued_keys(due):
        del due[key]
    for key, (quote, days) in due.items():
        outbox.enqueue_with_magic_link(user=quote.recipient, quote=quote, template="quote_reminder",
                                       dedupe_key=key, context={"days": days}, now=now)
        quote.reminders_sent += 1
    db.session.flush()
    return len(due)


def _reminder_due(quote: Quote, today: date) -> int | None:
    """The reminder due today for `quote`, as days before its validity date, if any."""
    days_left = (quote.valid_until - today).days
    sent_on = paris_today(quote.sent_at)
    for days in sorted(REMINDER_DAYS):
        if days_left <= days and (quote.valid_until - sent_on).days > days:
            return days
    return None
