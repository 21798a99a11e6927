"""The credit balance stored on each organisation is the sum of its ledger, whoever writes an entry:
the domain (grants, consumptions, adjustments, a credit note's reversal) or a plain INSERT, since
the database's own trigger keeps it. The consumption reads it under the organisation's lock."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select

from portal import billing, credits, quotes
from portal.exceptions import InsufficientCredits, OrganisationNotFound
from portal.extensions import db
from portal.models import (
    BillingMode,
    Channel,
    ClientRole,
    CreditEntry,
    CreditEntryKind,
    Invoice,
    Organisation,
)
from portal.quotes import LineInput


def _ledger_sum(organisation_id: int) -> int:
    return db.session.scalar(select(func.coalesce(func.sum(CreditEntry.amount), 0))
                             .where(CreditEntry.organisation_id == organisation_id))


def _stored(organisation_id: int) -> int:
    return db.session.scalar(select(Organisation.credit_balance).where(Organisation.id == organisation_id))


def test_every_kind_of_entry_keeps_the_stored_balance_equal_to_the_ledger(make):
    make.seller_settings()
    admin = make.staff()
    terms = make.terms(actor=admin)
    org, other = make.organisation(billing_mode=BillingMode.PER_ORDER), make.organisation()
    decider = make.client_user(org, ClientRole.GESTIONNAIRE)
    quote = make.sent_quote(org, actor=admin, recipient=decider,
                            lines=[LineInput(product_id=make.product(credits_per_unit=100).id, quantity=1)])
    quotes.accept(quote, actor=decider, terms_version=terms, channel=Channel.PORTAL)
    credits.grant_quote_credits(quote, actor=admin)
    assert (_stored(org.id), _ledger_sum(org.id)) == (100, 100)

    credits.consume_credits(org, 30, actor=None, reason="Analyse")
    credits.adjust_credits(org, -5, actor=admin, reason="Correction")
    credits.adjust_credits(other, 7, actor=admin, reason="Geste commercial")
    assert (_stored(org.id), _stored(other.id)) == (65, 7)

    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))
    billing.issue_credit_note(invoice, actor=admin, reason="Commande annulée", ip=None)
    assert _stored(org.id) == _ledger_sum(org.id) == 0  # the reversal took back the 65 still held

    # A writer outside the domain (a bulk load, a console) keeps it too: the database adds each entry.
    db.session.execute(insert(CreditEntry).values(organisation_id=other.id, kind=CreditEntryKind.ADJUSTMENT,
                                                  amount=3, reason="Import"))
    assert _stored(other.id) == _ledger_sum(other.id) == 10
    assert credits.credit_balance(other.id) == 10


def test_a_consumption_beyond_the_stored_balance_is_refused_and_changes_nothing(make):
    admin = make.staff()
    org = make.organisation()
    credits.adjust_credits(org, 10, actor=admin, reason="Solde initial")
    with pytest.raises(InsufficientCredits):
        credits.post_consumption(org.id, 11, actor=None, reason="Trop")
    posting = credits.post_consumption(org.id, 10, actor=None, reason="Tout")
    assert posting.balance_after == 0 == _stored(org.id) == _ledger_sum(org.id)


def test_a_consumption_for_an_organisation_that_does_not_exist_is_not_found(make):
    with pytest.raises(OrganisationNotFound):
        credits.post_consumption(999_999, 1, actor=None, reason="Analyse")
