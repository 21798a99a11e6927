"""Invoices, numbering, payments, credit notes, immutability and the credit ledger."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from portal import billing, credits, dates, money, quotes, seller
from portal.exceptions import (
    InsufficientCredits,
    InvalidInput,
    InvoiceImmutable,
    InvoiceNotCancellable,
    InvoiceNotPayable,
    NotAllowed,
    PaymentMismatch,
    SellerSettingsIncomplete,
)
from portal.extensions import db
from portal.models import (
    Channel,
    ClientRole,
    CreditEntry,
    CreditEntryKind,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    OutboxEmail,
    Payment,
    PaymentProvider,
)


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _accepted_invoice(make, world=None) -> tuple[dict, Invoice]:
    world = world or make.world()
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=world["terms"], channel=Channel.PORTAL)
    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == world["quote"].id))
    return world, invoice


def _pay(invoice, reference="pi_123", **overrides):
    values = dict(provider=PaymentProvider.STRIPE, provider_reference=reference,
                  amount_cents=invoice.total_ttc_cents, currency="EUR")
    values.update(overrides)
    return billing.record_payment(invoice, **values)


def test_numbers_follow_each_other_per_series_and_year():
    assert billing.next_number("FA", 2026) == "FA-2026-00001"
    assert billing.next_number("FA", 2026) == "FA-2026-00002"
    assert billing.next_number("AV", 2026) == "AV-2026-00001"
    assert billing.next_number("FA", 2027) == "FA-2027-00001"


def test_a_rolled_back_number_is_not_consumed():
    billing.next_number("FA", 2026)
    db.session.commit()
    assert billing.next_number("FA", 2026) == "FA-2026-00002"
    db.session.rollback()  # e.g. the issuing transaction failed after taking the number
    assert billing.next_number("FA", 2026) == "FA-2026-00002"


def test_an_acceptances_invoice_email_names_its_invoice(make):
    """Queued before the invoice is inserted on PostgreSQL (tests/perf/test_billing.py), the email
    still names the invoice it announces."""
    world = make.world()
    db.session.commit()
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == world["quote"].id))
    email = db.session.scalar(select(OutboxEmail).where(OutboxEmail.template == "invoice_issued"))
    assert email.context == {"invoice_id": invoice.id}
    assert email.dedupe_key == f"invoice_issued:{invoice.id}:{email.recipient}"


def test_payment_marks_paid_grants_credits_and_notifies(make):
    world, invoice = _accepted_invoice(make)
    payment = _pay(invoice)
    assert invoice.status == InvoiceStatus.PAID and invoice.paid_at is not None
    assert payment.amount_cents == invoice.total_ttc_cents
    grant = db.session.scalar(select(CreditEntry))
    assert (grant.kind, grant.amount, grant.quote_id) == (CreditEntryKind.GRANT, 20, world["quote"].id)
    assert _count(OutboxEmail, OutboxEmail.template == "payment_received") == 1


def test_payment_is_idempotent_by_provider_reference(make):
    _, invoice = _accepted_invoice(make)
    first = _pay(invoice)
    again = _pay(invoice)
    assert again.id == first.id
    assert _count(Payment) == 1 and _count(CreditEntry) == 1


def test_a_second_payment_of_a_paid_invoice_is_refused(make):
    _, invoice = _accepted_invoice(make)
    _pay(invoice)
    with pytest.raises(InvoiceNotPayable):
        _pay(invoice, reference="pi_other")


@pytest.mark.parametrize("overrides", [{"amount_cents": 1}, {"currency": "USD"}])
def test_payment_with_another_amount_or_currency_is_refused(make, overrides):
    _, invoice = _accepted_invoice(make)
    db.session.commit()
    with pytest.raises(PaymentMismatch):
        _pay(invoice, **overrides)
    db.session.rollback()
    assert _count(Payment) == 0 and invoice.status == InvoiceStatus.ISSUED


def test_a_reference_already_used_for_another_invoice_is_refused(make):
    _, invoice = _accepted_invoice(make)
    _pay(invoice, reference="VIR-1")
    _, other = _accepted_invoice(make)
    with pytest.raises(PaymentMismatch):
        _pay(other, reference="VIR-1")


def test_credit_note_cancels_an_unpaid_invoice_in_full(make):
    world, invoice = _accepted_invoice(make)
    credit_note = billing.issue_credit_note(invoice, actor=world["admin"], reason="Erreur de quantité")
    assert invoice.status == InvoiceStatus.CANCELLED
    assert credit_note.kind == InvoiceKind.CREDIT_NOTE
    assert credit_note.number.startswith("AV-") and credit_note.credited_invoice_id == invoice.id
    assert credit_note.total_ttc_cents == invoice.total_ttc_cents
    assert [line.label for line in credit_note.lines] == [line.label for line in invoice.lines]
    with pytest.raises(InvoiceNotCancellable):
        billing.issue_credit_note(invoice, actor=world["admin"], reason="encore")
    with pytest.raises(InvoiceNotPayable):
        _pay(invoice)


def test_a_paid_invoice_cannot_be_credited_and_a_reason_is_required(make):
    world, invoice = _accepted_invoice(make)
    with pytest.raises(InvalidInput):
        billing.issue_credit_note(invoice, actor=world["admin"], reason=" ")
    _pay(invoice)
    with pytest.raises(InvoiceNotCancellable):
        billing.issue_credit_note(invoice, actor=world["admin"], reason="trop tard")


def test_issued_invoice_cannot_be_modified_through_the_orm(make):
    _, invoice = _accepted_invoice(make)
    db.session.commit()
    invoice.total_ttc_cents += 100
    with pytest.raises(InvoiceImmutable):
        db.session.flush()
    db.session.rollback()
    invoice.lines[0].label = "autre chose"
    with pytest.raises(InvoiceImmutable):
        db.session.flush()
    db.session.rollback()
    db.session.delete(invoice)
    with pytest.raises(InvoiceImmutable):
        db.session.flush()
    db.session.rollback()


def test_issued_invoice_cannot_be_modified_by_plain_sql(make):
    _, invoice = _accepted_invoice(make)
    db.session.commit()
    for statement in (
        update(Invoice).where(Invoice.id == invoice.id).values(total_ttc_cents=1),
        text("UPDATE invoice_line SET label = 'x'"),
        delete(Invoice).where(Invoice.id == invoice.id),
    ):
        with pytest.raises((IntegrityError, DBAPIError)):
            db.session.execute(statement)
        db.session.rollback()
    assert db.session.get(Invoice, invoice.id).total_ttc_cents > 1


def test_pdf_may_be_stored_once(make):
    _, invoice = _accepted_invoice(make)
    invoice.pdf, invoice.pdf_sha256 = b"%PDF-1", "a" * 64
    db.session.flush()
    invoice.pdf = b"%PDF-2"
    with pytest.raises(InvoiceImmutable):
        db.session.flush()
    db.session.rollback()


def test_incomplete_seller_settings_refuse_to_issue_naming_the_field(make):
    world = make.world()
    settings = seller.seller_settings()
    settings.siren = ""
    settings.share_capital = ""
    with pytest.raises(SellerSettingsIncomplete) as caught:
        quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                      terms_version=world["terms"], channel=Channel.PORTAL)
    assert "SIREN" in str(caught.value) and "capital social" in str(caught.value)


# --- Credit ledger ----------------------------------------------------------------------------


def test_ledger_consume_adjust_and_balance(make):
    world = make.world()
    org, admin = world["org"], world["admin"]
    credits.adjust_credits(org, 50, actor=admin, reason="Geste commercial")
    credits.consume_credits(org, 30, actor=None, reason="Analyse #1")
    assert credits.credit_balance(org.id) == 20
    with pytest.raises(InsufficientCredits) as caught:
        credits.consume_credits(org, 21, actor=None, reason="Analyse #2")
    assert "20" in str(caught.value)
    with pytest.raises(InsufficientCredits):
        credits.adjust_credits(org, -21, actor=admin, reason="Correction")
    credits.adjust_credits(org, -20, actor=admin, reason="Correction")
    assert credits.credit_balance(org.id) == 0
    kinds = db.session.scalars(select(CreditEntry.kind).order_by(CreditEntry.id)).all()
    assert kinds == [CreditEntryKind.ADJUSTMENT, CreditEntryKind.CONSUMPTION, CreditEntryKind.ADJUSTMENT]


def test_ledger_refuses_bad_input(make):
    world = make.world()
    with pytest.raises(InvalidInput):
        credits.consume_credits(world["org"], 0, actor=None, reason="rien")
    with pytest.raises(InvalidInput):
        credits.adjust_credits(world["org"], 10, actor=world["admin"], reason="")
    with pytest.raises(NotAllowed):
        credits.adjust_credits(world["org"], 10, actor=world["users"][ClientRole.RESPONSABLE],
                               reason="moi-même")


def test_one_credit_grant_per_quote_is_enforced_by_the_database(make):
    world, invoice = _accepted_invoice(make)
    _pay(invoice)
    assert credits.grant_quote_credits(world["quote"], actor=None).id == db.session.scalar(
        select(CreditEntry.id))
    db.session.add(CreditEntry(organisation_id=world["org"].id, kind=CreditEntryKind.GRANT,
                               amount=5, quote_id=world["quote"].id))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_one_invoice_per_quote_is_enforced_by_the_database(make):
    world, invoice = _accepted_invoice(make)
    with pytest.raises(IntegrityError):
        billing.issue_invoice(organisation=world["org"], quote=world["quote"],
                              lines=billing.quote_lines_for_invoice(world["quote"]))
    db.session.rollback()


def test_amount_formatting_is_french():
    assert money.format_amount(123456789) == "1\u202f234\u202f567,89\u00a0€"
    assert money.format_amount(5) == "0,05\u00a0€"


def test_vat_is_rounded_half_up_per_line():
    assert money.vat_cents(1, 2000) == 0  # 0,2 cent
    assert money.vat_cents(3, 2000) == 1  # 0,6 cent
    assert money.vat_cents(25, 2000) == 5
    assert money.vat_cents(999, 550) == 55  # 54,945 cents


def test_paris_dates():
    assert str(dates.paris_today(datetime(2026, 12, 31, 23, 30))) == "2027-01-01"
    assert str(dates.paris_today(datetime(2026, 7, 31, 21, 59))) == "2026-07-31"


def test_a_stored_pdf_is_never_replaced_even_unloaded_or_by_plain_sql(make):
    _, invoice = _accepted_invoice(make)
    invoice.pdf, invoice.pdf_sha256 = b"%PDF-1", "a" * 64
    db.session.commit()  # expires `invoice`: its deferred `pdf` is no longer loaded
    invoice.pdf = b"%PDF-forged"
    with pytest.raises(InvoiceImmutable):
        db.session.flush()
    db.session.rollback()
    with pytest.raises((IntegrityError, DBAPIError)):
        db.session.execute(update(Invoice).where(Invoice.id == invoice.id).values(pdf=b"x"))
    db.session.rollback()
    assert db.session.get(Invoice, invoice.id).pdf == b"%PDF-1"
