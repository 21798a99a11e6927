"""The order of a decision's writes: the invoice number's counter row stays locked from the number
to the commit, so as little as possible is written after it (README, Performance: Decisions)."""

from __future__ import annotations

import pytest

from portal import quotes
from portal.extensions import db
from portal.models import Channel, ClientRole

from ..conftest import IS_POSTGRES
from ..web import count_queries

pytestmark = pytest.mark.perf


def _tables_written(statements: list[str]) -> list[str]:
    written = []
    for statement in statements:
        words = statement.split()
        if words[0] in ("INSERT", "UPDATE"):
            written.append(words[2] if words[0] == "INSERT" else words[1])
    return written


def test_after_taking_its_number_an_acceptance_writes_only_the_invoice_lines_and_audit(make):
    """Every other write comes first where the database gives the invoice its id before the insert
    (PostgreSQL); that the email still names its invoice: tests/test_billing.py."""
    world = make.world()
    db.session.commit()
    with count_queries() as counter:
        quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                      terms_version=world["terms"], channel=Channel.PORTAL)
        db.session.commit()
    written = _tables_written(counter.statements)
    after_number = written[len(written) - written[::-1].index("number_counter"):]
    if IS_POSTGRES:
        assert after_number == ["invoice", "invoice_line", "audit_event"]
    else:  # SQLite: one writer at a time, and the invoice's id exists only once it is inserted
        assert after_number == ["invoice", "invoice_line", "outbox_email", "audit_event"]
