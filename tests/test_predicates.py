"""The domain's predicates, spelt once: `Invoice.is_payable` (Python and SQL), `quotes.may_decide`,
`quotes.mandate_allows`."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal import billing, quotes
from portal.extensions import db
from portal.models import (
    Channel,
    ClientRole,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    StaffRole,
)


@pytest.mark.parametrize(("kind", "status", "payable"), [
    (InvoiceKind.INVOICE, InvoiceStatus.ISSUED, True),
    (InvoiceKind.INVOICE, InvoiceStatus.PAID, False),
    (InvoiceKind.INVOICE, InvoiceStatus.CANCELLED, False),
    (InvoiceKind.CREDIT_NOTE, InvoiceStatus.ISSUED, False),
])
def test_is_payable_in_python(kind, status, payable):
    assert Invoice(kind=kind, status=status).is_payable is payable


def test_is_payable_in_sql_selects_the_same_invoices(make):
    world = make.world()
    gestionnaire = world["users"][ClientRole.GESTIONNAIRE]
    quotes.accept(world["quote"], actor=gestionnaire, terms_version=world["terms"],
                  channel=Channel.PORTAL)
    unpaid = db.session.scalar(select(Invoice))
    other = make.sent_quote(world["org"], actor=world["admin"], recipient=gestionnaire)
    quotes.accept(other, actor=gestionnaire, terms_version=world["terms"], channel=Channel.PORTAL)
    cancelled = db.session.scalar(select(Invoice).where(Invoice.quote_id == other.id))
    note = billing.issue_credit_note(cancelled, actor=world["admin"], reason="Erreur de saisie")
    db.session.commit()

    payable_ids = set(db.session.scalars(select(Invoice.id).where(Invoice.is_payable)))
    assert payable_ids == {unpaid.id}
    assert set(db.session.scalars(select(Invoice.id).where(~Invoice.is_payable))) == {cancelled.id, note.id}
    everything = db.session.scalars(select(Invoice)).all()
    assert {invoice.id for invoice in everything if invoice.is_payable} == payable_ids
    assert "invoice.kind" in str(select(Invoice.id).where(Invoice.is_payable))


@pytest.mark.parametrize(("role", "active", "allowed"), [
    (ClientRole.RESPONSABLE, True, True),
    (ClientRole.GESTIONNAIRE, True, True),
    (ClientRole.MEMBRE, True, False),
    (ClientRole.GESTIONNAIRE, False, False),
])
def test_may_decide_client_users(make, role, active, allowed):
    user = make.client_user(make.organisation(), role, active=active)
    assert quotes.may_decide(user) is allowed


def test_staff_never_decide_as_clients_and_the_mandate_is_the_organisations(make):
    assert quotes.may_decide(make.staff(StaffRole.ADMIN)) is False
    organisation = make.organisation()
    assert quotes.mandate_allows(organisation) is False
    organisation.staff_validation_allowed = True
    assert quotes.mandate_allows(organisation) is True
