"""French labels of enum values, and the display filters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from portal.labels import french_date, label, vat_rate
from portal.models import (
    DecisionKind,
    InvoiceKind,
    InvoiceStatus,
    OutboxStatus,
    QuoteRequestStatus,
    QuoteStatus,
)


def test_members_with_the_same_value_keep_their_own_label():
    # StrEnum members of different enums with one value are equal: labels must not mix them up.
    assert QuoteStatus.SENT == OutboxStatus.SENT
    assert label(QuoteStatus.SENT) == "En attente du client"
    assert label(OutboxStatus.SENT) == "Envoyé"
    assert label(QuoteStatus.CANCELLED) == "Annulé" and label(InvoiceStatus.CANCELLED) == "Annulée par avoir"
    assert label(QuoteStatus.ACCEPTED) == "Validé" and label(DecisionKind.ACCEPTED) == "Validation"


def test_every_member_of_every_enum_has_a_label(app):
    for enum_class in (QuoteStatus, InvoiceStatus, InvoiceKind, OutboxStatus, QuoteRequestStatus,
                       DecisionKind):
        for member in enum_class:
            assert label(member) != member.value, member


def test_vat_rates_and_dates_in_french():
    assert [vat_rate(rate) for rate in (0, 210, 550, 1000, 2000)] == [
        "0\u00a0%", "2,1\u00a0%", "5,5\u00a0%", "10\u00a0%", "20\u00a0%"]
    assert french_date(date(2026, 3, 1)) == "01/03/2026"
    assert french_date(datetime(2026, 7, 31, 22, 30)) == "01/08/2026 00:30"  # Paris summer time


def test_datetimes_shown_in_paris_time_across_daylight_saving_changes():
    """Every minute of the days Paris changes offset (spring and autumn), and one instant a day
    for three years, read as the time zone database converts them."""
    paris = ZoneInfo("Europe/Paris")
    instants = [start + timedelta(minutes=minute, seconds=37, microseconds=123)
                for start in (datetime(2026, 3, 28, 12), datetime(2026, 10, 24, 12))
                for minute in range(36 * 60)]
    instants += [datetime(2025, 1, 1, 17, 59, 59) + timedelta(days=day, hours=day % 24)
                 for day in range(3 * 366)]
    for instant in instants:
        in_paris = instant.replace(tzinfo=UTC).astimezone(paris)
        assert french_date(instant) == in_paris.strftime("%d/%m/%Y %H:%M"), instant
    assert french_date(datetime(2026, 3, 29, 0, 59)) == "29/03/2026 01:59"
    assert french_date(datetime(2026, 3, 29, 1, 0)) == "29/03/2026 03:00"
    assert french_date(datetime(2026, 10, 25, 0, 59)) == "25/10/2026 02:59"
    assert french_date(datetime(2026, 10, 25, 1, 0)) == "25/10/2026 02:00"
