"""Paris dates: what day it is in Paris (invoices and validity are dated so) and billing periods."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from .exceptions import InvalidPeriod
from .models import utcnow

PARIS = ZoneInfo("Europe/Paris")
PERIOD_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def paris_today(now: datetime | None = None) -> date:
    """The calendar date in Paris at `now` (naive UTC), which dates invoices and validity."""
    moment = (now or utcnow()).replace(tzinfo=UTC)
    return moment.astimezone(PARIS).date()


def period_bounds(period: str) -> tuple[date, date]:
    """First day of the billing period 2026-03 and first day of the next month."""
    match = PERIOD_PATTERN.match(period or "")
    if not match:
        raise InvalidPeriod()
    first = date(int(match.group(1)), int(match.group(2)), 1)
    return first, (first + timedelta(days=32)).replace(day=1)


def billing_period_bounds(period: str) -> tuple[date, date]:
    """First and last day of a billing period 2026-03, as invoices print it."""
    first, next_month = period_bounds(period)
    return first, next_month - timedelta(days=1)
