"""The demo data (`flask demo load`, `make run`) tells one coherent story: every date follows the
one it depends on, numbers follow dates, no organisation without users nor quote without lines or
object, legal forms that match the names, distinct addresses in their own cities, and links in the
emails of the quotes awaiting a decision that still open them."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from portal.demo import load_demo
from portal.extensions import db
from portal.models import (
    BillingMode,
    ClientRole,
    CreditEntry,
    CreditEntryKind,
    Decision,
    Invoice,
    LoginToken,
    Organisation,
    Payment,
    Quote,
    QuoteRequest,
    QuoteStatus,
    SellerSettings,
    TermsVersion,
    UserKind,
    utcnow,
)

# The legal forms a French company's name may end with.
LEGAL_FORMS = {"SA", "SAS", "SASU", "SARL", "EURL", "SNC", "SCI", "SCP", "SELARL", "SELAS"}
# The département (first two digits of the postal code) of the demo's cities.
DEPARTMENTS = {"Lyon": "69", "Nantes": "44", "Lille": "59"}


@pytest.fixture
def demo(app):
    """The demo loaded; yields the moment it was loaded (nothing may be dated after it)."""
    assert load_demo()
    db.session.commit()
    return utcnow()


def _all(model) -> list:
    return db.session.scalars(select(model).order_by(model.id)).all()


def _in_order(*dates: datetime | None) -> bool:
    """Whether the dates given (None skipped) come in this order."""
    present = [date for date in dates if date is not None]
    return present == sorted(present)


def test_every_organisation_has_users_and_every_quote_lines_an_object_and_a_recipient(demo):
    for organisation in _all(Organisation):
        assert {user.client_role for user in organisation.users} == set(ClientRole), organisation.name
    for quote in _all(Quote):
        assert quote.lines and quote.title and quote.recipient is not None, quote.reference
        assert quote.recipient.organisation_id == quote.organisation_id
    for request in _all(QuoteRequest):
        assert request.lines and request.message


def test_legal_forms_match_the_names(demo):
    for organisation in _all(Organisation):
        assert organisation.legal_form in LEGAL_FORMS, organisation.name
        suffix = organisation.name.split()[-1]
        if suffix in LEGAL_FORMS:  # a name that states its form states the right one
            assert suffix == organisation.legal_form, organisation.name
    assert db.session.get(SellerSettings, 1).legal_form in LEGAL_FORMS


def test_addresses_are_distinct_and_in_their_city(demo):
    seller = db.session.get(SellerSettings, 1)
    addresses = [(o.address_line1, o.postal_code, o.city) for o in _all(Organisation)]
    addresses.append((seller.address_line1, seller.postal_code, seller.city))
    assert len(set(addresses)) == len(addresses)
    assert len({street for street, _code, _city in addresses}) == len(addresses)
    for street, postal_code, city in addresses:
        assert street[0].isdigit(), street  # a number and a street, not a placeholder
        assert postal_code.startswith(DEPARTMENTS[city]), (postal_code, city)


def test_the_cgv_were_written_before_being_published_and_before_any_client_joined(demo):
    (terms,) = _all(TermsVersion)
    assert terms.created_at < terms.published_at
    assert terms.published_at.strftime("%Y-%m") == terms.version_label  # "version 2026-01"
    assert all(terms.published_at < organisation.created_at for organisation in _all(Organisation))


def test_quotes_are_written_then_sent_then_decided_by_people_who_were_there(demo):
    for quote in _all(Quote):
        organisation = quote.organisation
        assert _in_order(organisation.created_at, quote.created_at, quote.sent_at, quote.decided_at, demo), (
            quote.reference)
        if quote.supersedes is not None:
            assert _in_order(quote.supersedes.sent_at, quote.created_at, quote.sent_at), quote.reference
    for decision in _all(Decision):
        quote = decision.quote
        assert decision.created_at == quote.decided_at
        assert _in_order(decision.actor.created_at, decision.created_at)
        assert _in_order(decision.terms_version.published_at, decision.created_at)
        if decision.actor.kind == UserKind.STAFF:  # on behalf: under a mandate given before
            assert _in_order(quote.organisation.created_at, decision.mandate_granted_at, decision.created_at)
    for request in _all(QuoteRequest):
        assert _in_order(request.requester.created_at, request.created_at, demo)


def test_credits_are_dated_at_their_acceptance_or_payment_and_invoices_at_the_decision(demo):
    grants = db.session.scalars(select(CreditEntry).where(CreditEntry.kind == CreditEntryKind.GRANT)).all()
    assert grants
    for grant in grants:
        quote = grant.quote
        if quote.billing_mode == BillingMode.MONTHLY:
            assert grant.created_at == quote.decided_at, quote.reference
        else:  # per order: granted when the invoice is paid
            invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))
            assert grant.created_at == invoice.paid_at, quote.reference
    for invoice in _all(Invoice):
        quote = db.session.get(Quote, invoice.quote_id)
        assert invoice.issued_at == quote.decided_at
        assert _in_order(invoice.issued_at, invoice.paid_at, demo)
    for payment in _all(Payment):
        assert payment.received_at == payment.invoice.paid_at


def test_numbers_follow_the_dates(demo):
    sent = db.session.scalars(select(Quote).where(Quote.revision == 1, Quote.sent_at.is_not(None))
                              .order_by(Quote.sent_at)).all()
    assert [quote.number for quote in sent] == sorted(quote.number for quote in sent)
    invoices = db.session.scalars(select(Invoice).order_by(Invoice.issued_at)).all()
    assert [invoice.number for invoice in invoices] == sorted(invoice.number for invoice in invoices)


def test_the_links_of_the_quotes_awaiting_a_decision_still_open_them(demo):
    waiting = db.session.scalars(select(Quote).where(Quote.status == QuoteStatus.SENT)).all()
    assert len(waiting) == 3
    for quote in waiting:
        link = db.session.scalar(select(LoginToken).where(LoginToken.quote_id == quote.id))
        assert link.expires_at > demo + timedelta(days=1), quote.reference
