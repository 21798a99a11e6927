"""Accepting and refusing quotes: who may decide, under which CGV, and what acceptance triggers."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import credits, quotes
from portal.exceptions import (
    MandateMissing,
    NotAllowed,
    QuoteExpired,
    QuoteNotPending,
    TermsChanged,
)
from portal.extensions import db
from portal.models import (
    AuditEvent,
    BillingMode,
    Channel,
    ClientRole,
    CreditEntry,
    Decision,
    DecisionKind,
    Invoice,
    OutboxEmail,
    Quote,
    QuoteStatus,
    utcnow,
)


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _accept(world, actor=None, **kwargs):
    kwargs.setdefault("terms_version", world["terms"])
    kwargs.setdefault("channel", Channel.PORTAL)
    return quotes.accept(world["quote"], actor=actor or world["users"][ClientRole.GESTIONNAIRE],
                         **kwargs)


def test_per_order_acceptance_records_evidence_and_issues_the_invoice(make):
    world = make.world()
    quote = world["quote"]
    decision = _accept(world, ip="198.51.100.4", user_agent="Mozilla/5.0 (iPhone)")
    assert quote.status == QuoteStatus.ACCEPTED
    assert decision.kind == DecisionKind.ACCEPTED
    assert decision.channel == Channel.PORTAL
    assert decision.terms_version_id == world["terms"].id
    assert decision.terms_sha256 == world["terms"].sha256 and len(decision.terms_sha256) == 64
    assert decision.quote_sha256 == quotes.quote_content_hash(quote)
    assert (decision.ip, decision.user_agent) == ("198.51.100.4", "Mozilla/5.0 (iPhone)")
    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))
    assert invoice.number.startswith("FA-") and invoice.number.endswith("-00001")
    assert invoice.total_ttc_cents == quote.total_ttc_cents
    assert invoice.due_date == invoice.issue_date + timedelta(days=world["org"].payment_terms_days)
    assert invoice.buyer["name"] == world["org"].name
    assert invoice.seller["siren"] == "123456789"
    assert _count(CreditEntry) == 0  # per order: credits come with the payment
    templates = set(db.session.scalars(select(OutboxEmail.template)))
    assert {"quote_decided", "invoice_issued"} <= templates


def test_quote_hash_changes_with_content(make):
    world = make.world()
    before = quotes.quote_content_hash(world["quote"])
    world["quote"].lines[0].quantity += 1
    assert quotes.quote_content_hash(world["quote"]) != before
    db.session.rollback()


def test_monthly_acceptance_grants_credits_and_waits_for_the_month(make):
    world = make.world(billing_mode=BillingMode.MONTHLY)
    now = datetime(2026, 1, 31, 23, 30)  # 1 February 00:30 in Paris
    world["quote"].valid_until = world["quote"].valid_until.replace(year=2026, month=3)
    _accept(world, now=now)
    quote = world["quote"]
    assert quote.billing_period == "2026-02"
    grant = db.session.scalar(select(CreditEntry))
    assert grant.amount == quote.total_credits == 20
    assert credits.credit_balance(world["org"].id) == 20
    assert _count(Invoice) == 0


def test_refusal_records_the_reason(make):
    world = make.world()
    decision = quotes.refuse(world["quote"], actor=world["users"][ClientRole.RESPONSABLE],
                             terms_version=world["terms"], channel=Channel.EMAIL_LINK,
                             reason="  Trop cher  ")
    assert world["quote"].status == QuoteStatus.REFUSED
    assert decision.reason == "Trop cher" and decision.kind == DecisionKind.REFUSED
    assert _count(Invoice) == 0 and _count(CreditEntry) == 0


@pytest.mark.parametrize("role", [ClientRole.RESPONSABLE, ClientRole.GESTIONNAIRE])
def test_deciders_may_accept(make, role):
    world = make.world()
    _accept(world, actor=world["users"][role])
    assert world["quote"].status == QuoteStatus.ACCEPTED


def test_membre_may_not_decide(make):
    world = make.world()
    with pytest.raises(NotAllowed):
        _accept(world, actor=world["users"][ClientRole.MEMBRE])
    with pytest.raises(NotAllowed):
        quotes.refuse(world["quote"], actor=world["users"][ClientRole.MEMBRE],
                      terms_version=world["terms"], channel=Channel.PORTAL)
    assert world["quote"].status == QuoteStatus.SENT and _count(Decision) == 0


def test_another_organisation_may_not_decide(make):
    world = make.world()
    stranger = make.client_user(make.organisation(), ClientRole.RESPONSABLE)
    with pytest.raises(NotAllowed):
        _accept(world, actor=stranger)


def test_staff_needs_the_mandate(make):
    world = make.world()
    db.session.commit()
    with pytest.raises(MandateMissing) as caught:
        _accept(world, actor=world["admin"], channel=Channel.BACK_OFFICE)
    assert "autorisé" in str(caught.value)
    db.session.rollback()
    assert _count(Decision) == 0 and _count(Invoice) == 0
    assert world["quote"].status == QuoteStatus.SENT


def test_staff_with_the_mandate_accepts_and_the_decision_references_it(make):
    world = make.world(mandate=True)
    responsable = world["users"][ClientRole.RESPONSABLE]
    decision = _accept(world, actor=world["admin"], channel=Channel.BACK_OFFICE, note="Par téléphone")
    assert decision.channel == Channel.BACK_OFFICE and decision.actor_id == world["admin"].id
    assert decision.mandate_granted_by_id == responsable.id
    assert decision.mandate_granted_at == world["org"].staff_validation_changed_at
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "quote.accepted"))
    assert audit.details["on_behalf"] is True


def test_mandate_withdrawn_blocks_staff_again(make):
    world = make.world(mandate=True)
    quotes.set_mandate(world["org"], allowed=False, actor=world["users"][ClientRole.RESPONSABLE])
    with pytest.raises(MandateMissing):
        _accept(world, actor=world["admin"], channel=Channel.BACK_OFFICE)


def test_only_the_responsable_sets_the_mandate(make):
    world = make.world()
    for actor in (world["users"][ClientRole.GESTIONNAIRE], world["admin"]):
        with pytest.raises(NotAllowed):
            quotes.set_mandate(world["org"], allowed=True, actor=actor)


@pytest.mark.parametrize("status", [QuoteStatus.ACCEPTED, QuoteStatus.REFUSED, QuoteStatus.EXPIRED,
                                    QuoteStatus.SUPERSEDED, QuoteStatus.CANCELLED])
def test_a_quote_not_sent_cannot_be_decided(make, status):
    world = make.world()
    world["quote"].status = status
    db.session.flush()
    with pytest.raises(QuoteNotPending):
        _accept(world)
    assert _count(Decision) == 0


def test_a_draft_cannot_be_decided(make):
    world = make.world()
    draft = quotes.create_draft(organisation=world["org"], actor=world["admin"],
                                recipient=world["users"][ClientRole.GESTIONNAIRE],
                                lines=[quotes.LineInput(label="x", quantity=1, unit_price_cents=1)])
    with pytest.raises(QuoteNotPending):
        quotes.accept(draft, actor=world["users"][ClientRole.GESTIONNAIRE],
                      terms_version=world["terms"], channel=Channel.PORTAL)


def test_second_decision_is_refused(make):
    world = make.world()
    _accept(world)
    with pytest.raises(QuoteNotPending):
        quotes.refuse(world["quote"], actor=world["users"][ClientRole.RESPONSABLE],
                      terms_version=world["terms"], channel=Channel.PORTAL)
    assert _count(Decision) == 1 and _count(Invoice) == 1


def test_past_validity_is_refused_before_the_expiry_job_runs(make):
    world = make.world()
    late = utcnow() + timedelta(days=40)
    with pytest.raises(QuoteExpired):
        _accept(world, now=late)


def test_terms_changed_since_the_page_was_shown(make):
    world = make.world()
    newer = make.terms(actor=world["admin"])
    with pytest.raises(TermsChanged):
        _accept(world, terms_version=world["terms"])
    decision = _accept(world, terms_version=newer)
    assert decision.terms_version_id == newer.id


def test_published_terms_are_frozen(make):
    from portal.exceptions import TermsPublished

    world = make.world()
    world["terms"].body = "Texte modifié en douce"
    with pytest.raises(TermsPublished):
        db.session.flush()
    db.session.rollback()


def test_decision_notifies_staff_once(make):
    world = make.world()
    _accept(world)
    rows = db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == "quote_decided")).all()
    assert [row.recipient for row in rows] == [world["admin"].email]


def test_decision_of_a_deactivated_authors_quote_goes_to_the_staff_address(app, make):
    world = make.world()
    world["admin"].active = False
    db.session.flush()
    _accept(world)
    db.session.commit()
    rows = db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == "quote_decided")).all()
    assert [row.recipient for row in rows] == [app.config["STAFF_NOTIFICATION_EMAIL"]]


def test_a_decision_without_the_terms_in_force_is_refused_and_changes_nothing(make):
    world = make.world()
    with pytest.raises(TermsChanged):
        _accept(world, terms_version=None)
    assert _count(Decision) == 0 and _count(Invoice) == 0
    assert db.session.scalar(select(Quote.status).where(Quote.id == world["quote"].id)) == QuoteStatus.SENT
