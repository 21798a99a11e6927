"""Quote authoring, sending, revisions, cancellation, expiry and quote requests."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import func, select

from portal import quote_expiry, quote_requests, quotes
from portal.exceptions import (
    EmptyQuote,
    InvalidInput,
    InvalidPrice,
    InvalidQuantity,
    InvalidRecipient,
    InvalidVatRate,
    NotAllowed,
    QuoteNotDraft,
    QuoteNotPending,
    UnknownProduct,
)
from portal.extensions import db
from portal.models import (
    AuditEvent,
    BillingMode,
    ClientRole,
    OutboxEmail,
    Quote,
    QuoteLine,
    QuoteStatus,
)
from portal.quotes import LineInput


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def setup(make):
    make.seller_settings()
    org = make.organisation()
    return {
        "staff": make.staff(),
        "org": org,
        "recipient": make.client_user(org, ClientRole.GESTIONNAIRE),
        "published": make.product(unit_price_cents=12345, vat_rate_bp=2000, credits_per_unit=5),
        "unpublished": make.product(published=False, unit_price_cents=50000, vat_rate_bp=1000,
                                    credits_per_unit=0),
    }


def _draft(setup, lines, **kwargs):
    return quotes.create_draft(organisation=setup["org"], actor=setup["staff"],
                               recipient=setup["recipient"], lines=lines, **kwargs)


def test_draft_takes_published_unpublished_and_free_lines(setup):
    quote = _draft(setup, [
        LineInput(product_id=setup["published"].id, quantity=3),
        LineInput(product_id=setup["unpublished"].id, quantity=1),
        LineInput(label="Frais de dossier", quantity=1, unit_price_cents=999, vat_rate_bp=550),
    ])
    assert quote.status == QuoteStatus.DRAFT and quote.number is None
    assert [line.label for line in quote.lines] == [setup["published"].name,
                                                     setup["unpublished"].name, "Frais de dossier"]
    # VAT per line, rounded half up: 370,35 × 20 % = 74,07 ; 500 × 10 % = 50 ; 9,99 × 5,5 % = 0,549 45 → 0,55
    assert [line.total_vat_cents for line in quote.lines] == [7407, 5000, 55]
    assert quote.total_ht_cents == 37035 + 50000 + 999
    assert quote.total_vat_cents == 7407 + 5000 + 55
    assert quote.total_ttc_cents == quote.total_ht_cents + quote.total_vat_cents
    assert quote.total_credits == 15


def test_price_override_and_edit_draft(setup):
    quote = _draft(setup, [LineInput(product_id=setup["published"].id, quantity=1,
                                     unit_price_cents=10000)])
    assert quote.total_ht_cents == 10000
    quotes.update_draft(quote, actor=setup["staff"], title="Nouveau titre",
                        lines=[LineInput(product_id=setup["published"].id, quantity=4)])
    db.session.flush()
    assert quote.title == "Nouveau titre"
    assert quote.total_ht_cents == 4 * 12345
    assert _count(QuoteLine) == 1


def test_send_numbers_freezes_and_notifies(setup):
    setup["org"].billing_mode = BillingMode.MONTHLY
    quote = _draft(setup, [LineInput(product_id=setup["published"].id, quantity=2)])
    now = datetime(2026, 3, 10, 9, 0)
    quotes.send(quote, actor=setup["staff"], now=now)
    assert quote.status == QuoteStatus.SENT
    assert quote.number == "DV-2026-00001"
    assert quote.valid_until == date(2026, 4, 9)  # 30 days by default (seller settings)
    assert quote.billing_mode == BillingMode.MONTHLY
    setup["org"].billing_mode = BillingMode.PER_ORDER
    assert quote.billing_mode == BillingMode.MONTHLY  # the snapshot does not follow the organisation
    email = db.session.scalar(select(OutboxEmail).where(OutboxEmail.template == "quote_sent"))
    assert email.recipient == setup["recipient"].email
    assert email.dedupe_key == f"quote_sent:{quote.id}"
    second = quotes.send(_draft(setup, [LineInput(product_id=setup["published"].id, quantity=1)]),
                         actor=setup["staff"], now=now)
    assert second.number == "DV-2026-00002"


def test_send_uses_the_quote_validity_override(setup):
    quote = _draft(setup, [LineInput(product_id=setup["published"].id, quantity=1)],
                   validity_days=7)
    quotes.send(quote, actor=setup["staff"], now=datetime(2026, 1, 1, 12))
    assert quote.valid_until == date(2026, 1, 8)


def test_sent_quote_cannot_be_edited_or_resent(setup):
    quote = quotes.send(_draft(setup, [LineInput(product_id=setup["published"].id, quantity=1)]),
                        actor=setup["staff"])
    with pytest.raises(QuoteNotDraft):
        quotes.update_draft(quote, actor=setup["staff"], title="modifié")
    with pytest.raises(QuoteNotDraft):
        quotes.send(quote, actor=setup["staff"])


def test_send_refuses_an_empty_quote_or_a_missing_recipient(setup):
    with pytest.raises(EmptyQuote):
        quotes.send(_draft(setup, []), actor=setup["staff"])
    no_recipient = quotes.create_draft(organisation=setup["org"], actor=setup["staff"],
                                       lines=[LineInput(product_id=setup["published"].id, quantity=1)])
    with pytest.raises(InvalidRecipient):
        quotes.send(no_recipient, actor=setup["staff"])


@pytest.mark.parametrize("role", [ClientRole.MEMBRE])
def test_recipient_must_be_a_decider_of_the_organisation(setup, make, role):
    with pytest.raises(InvalidRecipient):
        _draft({**setup, "recipient": make.client_user(setup["org"], role)}, [])
    other = make.client_user(make.organisation(), ClientRole.RESPONSABLE)
    with pytest.raises(InvalidRecipient):
        _draft({**setup, "recipient": other}, [])


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (LineInput(product_id=999_999, quantity=1), UnknownProduct),
        (LineInput(label="x", quantity=0, unit_price_cents=100), InvalidQuantity),
        (LineInput(label="x", quantity=-2, unit_price_cents=100), InvalidQuantity),
        (LineInput(label="x", quantity=1, unit_price_cents=-1), InvalidPrice),
        (LineInput(label="x", quantity=1, unit_price_cents=100, vat_rate_bp=1960), InvalidVatRate),
        (LineInput(label="", quantity=1, unit_price_cents=100), InvalidInput),
        (LineInput(label="x", quantity=1), InvalidInput),
    ],
)
def test_bad_lines_are_refused_with_a_french_message_and_nothing_written(setup, line, error):
    db.session.commit()
    before = (_count(Quote), _count(QuoteLine), _count(AuditEvent))
    with pytest.raises(error) as caught:
        _draft(setup, [line])
    db.session.rollback()
    assert (_count(Quote), _count(QuoteLine), _count(AuditEvent)) == before
    message = str(caught.value)
    assert message and message[0].isupper() and message.endswith((".", "%.", "€."))


def test_only_staff_author_quotes(setup):
    with pytest.raises(NotAllowed):
        quotes.create_draft(organisation=setup["org"], actor=setup["recipient"], lines=[])


def test_revision_supersedes_the_sent_quote_when_sent(setup):
    original = quotes.send(_draft(setup, [LineInput(product_id=setup["published"].id, quantity=1)]),
                           actor=setup["staff"])
    revision = quotes.revise(original, actor=setup["staff"])
    assert revision.status == QuoteStatus.DRAFT
    assert (revision.number, revision.revision) == (original.number, 2)
    assert original.status == QuoteStatus.SENT  # still decidable until the revision goes out
    with pytest.raises(InvalidInput):
        quotes.revise(original, actor=setup["staff"])  # one revision in preparation at a time
    quotes.update_draft(revision, actor=setup["staff"],
                        lines=[LineInput(product_id=setup["published"].id, quantity=5)])
    quotes.send(revision, actor=setup["staff"])
    assert original.status == QuoteStatus.SUPERSEDED
    assert revision.reference == f"{original.number}-R2"
    assert revision.total_ht_cents == 5 * 12345 and original.total_ht_cents == 12345


def test_cancel_draft_and_sent_but_not_decided(setup, make):
    draft = _draft(setup, [LineInput(product_id=setup["published"].id, quantity=1)])
    quotes.cancel(draft, actor=setup["staff"])
    assert draft.status == QuoteStatus.CANCELLED
    sent = quotes.send(_draft(setup, [LineInput(product_id=setup["published"].id, quantity=1)]),
                       actor=setup["staff"])
    quotes.cancel(sent, actor=setup["staff"])
    assert sent.status == QuoteStatus.CANCELLED
    with pytest.raises(QuoteNotPending):
        quotes.cancel(sent, actor=setup["staff"])


def test_expire_overdue_uses_paris_dates(setup):
    quote = quotes.send(_draft(setup, [LineInput(product_id=setup["published"].id, quantity=1)],
                               validity_days=1), actor=setup["staff"], now=datetime(2026, 6, 1, 10))
    assert quote.valid_until == date(2026, 6, 2)
    # 2 June 21:30 UTC is 23:30 in Paris: still valid.
    assert quote_expiry.expire_overdue(now=datetime(2026, 6, 2, 21, 30)) == []
    # 2 June 22:30 UTC is 3 June 00:30 in Paris: expired.
    assert quote_expiry.expire_overdue(now=datetime(2026, 6, 2, 22, 30)) == [quote]
    assert quote.status == QuoteStatus.EXPIRED
    assert quote_expiry.expire_overdue(now=datetime(2026, 6, 5)) == []


def test_every_state_change_is_audited(setup):
    quote = _draft(setup, [LineInput(product_id=setup["published"].id, quantity=1)])
    quotes.send(quote, actor=setup["staff"], ip="203.0.113.7")
    quotes.cancel(quote, actor=setup["staff"])
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.object_id == quote.id)
                                .order_by(AuditEvent.id)).all()
    assert [event.action for event in events] == ["quote.created", "quote.sent", "quote.cancelled"]
    assert events[1].ip == "203.0.113.7" and events[1].actor_id == setup["staff"].id
    assert events[1].organisation_id == setup["org"].id


# --- Quote requests ---------------------------------------------------------------------------


def test_request_refuses_unpublished_products_and_bad_quantities(setup, make):
    requester = make.client_user(setup["org"], ClientRole.MEMBRE)
    with pytest.raises(UnknownProduct):
        quote_requests.create_request(organisation=setup["org"], requester=requester,
                                      items=[(setup["unpublished"].id, 1)])
    with pytest.raises(InvalidQuantity):
        quote_requests.create_request(organisation=setup["org"], requester=requester,
                                      items=[(setup["published"].id, 0)])
    with pytest.raises(NotAllowed):
        quote_requests.create_request(organisation=make.organisation(), requester=requester,
                                      items=[(setup["published"].id, 1)])


def test_validity_window_is_bounded(setup):
    with pytest.raises(InvalidInput):
        _draft(setup, [], validity_days=0)
    with pytest.raises(InvalidInput):
        _draft(setup, [], validity_days=366)
