"""French labels of enum values, and the display filters."""

from __future__ import annotations

from datetime import date, datetime

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
