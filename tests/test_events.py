"""Events to the platform (portal/events.py): each of the thirteen types is written by the domain
action that tells it, in that action's transaction, its `data` the object exactly as the API answers
it; each organisation numbers its events 1, 2, 3… in commit order; a rolled-back change writes
nothing and takes no number; an event is written only for an enabled subscribed endpoint, with one
pending delivery per such endpoint."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from portal import billing, credits, events, monthly, quote_expiry, quote_requests, quotes
from portal.extensions import db
from portal.models import (
    BillingMode,
    Channel,
    ClientRole,
    CreditEntry,
    DeliveryStatus,
    Event,
    Invoice,
    InvoiceKind,
    Organisation,
    PaymentProvider,
    QuoteRequest,
    SellerSettings,
    StaffRole,
    WebhookDelivery,
)
from portal.representations import quote_request_json
from portal.seller import current_terms

from .api_helpers import API, api_headers

SENT_AT = datetime(2026, 1, 5, 9, 30)
EXPIRY_RUN_AT = datetime(2026, 3, 1, 2, 0)
ACCEPTED_AT = datetime(2026, 3, 15, 10, 0)
CLOSE_AT = datetime(2026, 4, 1, 6, 0)
EVENT_ID = re.compile(r"evt_[0-9a-f]{24}")
_external_ids = itertools.count(1)


# --- Helpers ------------------------------------------------------------------------------------


def build_world(make, billing_mode: BillingMode = BillingMode.PER_ORDER) -> SimpleNamespace:
    """Seller, admin, the CGV in force, an organisation known to the platform (`external_id`) and
    its gestionnaire. Several worlds share the seller and the CGV."""
    if db.session.get(SellerSettings, 1) is None:
        make.seller_settings()
    admin = make.staff(StaffRole.ADMIN)
    terms = current_terms() or make.terms(actor=admin)
    organisation = make.organisation(billing_mode=billing_mode, external_id=f"plat-{next(_external_ids)}")
    manager = make.client_user(organisation, ClientRole.GESTIONNAIRE)
    make.client_user(organisation, ClientRole.RESPONSABLE)
    return SimpleNamespace(admin=admin, terms=terms, org=organisation, manager=manager)


def accepted_quote(make, world: SimpleNamespace, *, now: datetime | None = ACCEPTED_AT):
    quote = make.sent_quote(world.org, actor=world.admin, recipient=world.manager, now=now)
    quotes.accept(quote, actor=world.manager, terms_version=world.terms, channel=Channel.PORTAL, now=now)
    return quote


def recorded(event_type: str | None = None, organisation: Organisation | None = None) -> list[Event]:
    statement = select(Event).order_by(Event.id)
    if event_type is not None:
        statement = statement.where(Event.type == event_type)
    if organisation is not None:
        statement = statement.where(Event.organisation_id == organisation.id)
    return list(db.session.scalars(statement))


def only(event_type: str) -> Event:
    [event] = recorded(event_type)
    return event


def unix(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp())


def envelope_data(event: Event, event_type: str, organisation: Organisation) -> dict:
    """Check the envelope of `event` (its stored body, what every delivery sends); its `data`."""
    body = events.payload(event)
    assert EVENT_ID.fullmatch(event.public_id)
    assert (event.type, event.organisation_id) == (event_type, organisation.id)
    assert body == {"id": event.public_id, "object": "event", "type": event_type,
                    "api_version": events.API_VERSION, "created": unix(event.created_at),
                    "organisation": {"id": organisation.id, "external_id": organisation.external_id},
                    "sequence": event.sequence, "data": body["data"]}
    assert organisation.external_id and event.sequence >= 1
    return body["data"]


def sequences(organisation: Organisation) -> list[int]:
    return [event.sequence for event in recorded(organisation=organisation)]


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def listening(make):
    """An enabled endpoint subscribed to every type, there before anything happens."""
    return make.webhook_endpoint()


@pytest.fixture
def api(client):
    """GET through the platform API with a key holding every scope: the JSON answer."""
    headers = api_headers()

    def get(path: str) -> dict:
        response = client.get(API + path, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def post(path: str, body: dict, key: str):
        return client.post(API + path, json=body, headers={**headers, "Idempotency-Key": key})

    def entry(entry_id: int, organisation_id: int) -> dict:
        listed = get(f"/organisations/{organisation_id}/credits/entries?limit=100")
        return next(row for row in listed["data"] if row["id"] == entry_id)

    return SimpleNamespace(get=get, post=post, entry=entry)


def record_every_event_type(make) -> None:
    """Every event type once at least, each by its own domain action, and a test event; committed."""
    endpoint = make.webhook_endpoint()
    per_order = build_world(make)
    quote = accepted_quote(make, per_order)  # quote.sent, quote.accepted, invoice.issued
    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))
    # invoice.paid, credits.granted
    billing.record_payment(invoice, provider=PaymentProvider.BANK_TRANSFER, provider_reference="VIR-1",
                           amount_cents=invoice.total_ttc_cents, currency="EUR")
    refused = make.sent_quote(per_order.org, actor=per_order.admin, recipient=per_order.manager)
    quotes.refuse(refused, actor=per_order.manager, terms_version=per_order.terms, channel=Channel.PORTAL)
    make.sent_quote(per_order.org, actor=per_order.admin, recipient=per_order.manager, now=SENT_AT)
    quote_expiry.expire_overdue(now=EXPIRY_RUN_AT)  # quote.expired
    credits.adjust_credits(per_order.org, 5, actor=per_order.admin, reason="Geste commercial")
    credits.consume_credits(per_order.org, 3, actor=None, reason="Analyse")
    product = make.product()
    for answer in (True, False):
        request = quote_requests.create_request(organisation=per_order.org, requester=per_order.manager,
                                                items=[(product.id, 2)])
        if answer:  # answered when its quote is sent
            quotes.send(quote_requests.answer_request(request, actor=per_order.admin), actor=per_order.admin)
        else:
            quote_requests.decline_request(request, actor=per_order.admin, reason="Hors catalogue")
    monthly_world = build_world(make, BillingMode.MONTHLY)
    accepted_quote(make, monthly_world)  # credits granted at once
    db.session.commit()
    monthly.close_month("2026-03", now=CLOSE_AT)  # invoice.issued, committed
    invoice = db.session.scalar(select(Invoice).where(Invoice.organisation_id == monthly_world.org.id))
    billing.issue_credit_note(invoice, actor=monthly_world.admin, reason="Facturé par erreur")
    events.record_test(endpoint)
    db.session.commit()


# --- Each type, recorded by its action, carrying the object as the API answers it --------------


def test_quote_sent_accepted_and_its_invoice_carry_the_objects_the_api_answers(make, listening, api):
    world = build_world(make)
    quote = accepted_quote(make, world)
    db.session.commit()

    sent, accepted, issued = recorded(organisation=world.org)
    assert [event.type for event in (sent, accepted, issued)] == ["quote.sent", "quote.accepted",
                                                                    "invoice.issued"]
    assert envelope_data(sent, "quote.sent", world.org)["status"] == "sent"
    assert envelope_data(accepted, "quote.accepted", world.org) == api.get(f"/quotes/{quote.id}")
    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))
    assert envelope_data(issued, "invoice.issued", world.org) == api.get(f"/invoices/{invoice.id}")
    assert [event.sequence for event in (sent, accepted, issued)] == [1, 2, 3]
    assert {events.payload(event)["created"] for event in (sent, accepted, issued)} == {unix(ACCEPTED_AT)}


def test_quote_sent_data_is_the_sent_quote_as_the_api_answers_it(make, listening, api):
    world = build_world(make)
    quote = make.sent_quote(world.org, actor=world.admin, recipient=world.manager)
    db.session.commit()
    assert envelope_data(only("quote.sent"), "quote.sent", world.org) == api.get(f"/quotes/{quote.id}")


def test_quote_refused(make, listening, api):
    world = build_world(make)
    quote = make.sent_quote(world.org, actor=world.admin, recipient=world.manager)
    quotes.refuse(quote, actor=world.manager, terms_version=world.terms, channel=Channel.PORTAL,
                  reason="Trop cher")
    db.session.commit()
    data = envelope_data(only("quote.refused"), "quote.refused", world.org)
    assert data == api.get(f"/quotes/{quote.id}") and data["status"] == "refused"


def test_quote_expired_by_the_daily_job(make, listening, api):
    world = build_world(make)
    quote = make.sent_quote(world.org, actor=world.admin, recipient=world.manager, now=SENT_AT)
    assert quote_expiry.expire_overdue(now=EXPIRY_RUN_AT) == [quote]
    db.session.commit()
    data = envelope_data(only("quote.expired"), "quote.expired", world.org)
    assert data == api.get(f"/quotes/{quote.id}") and data["status"] == "expired"


def test_invoice_paid_then_credits_granted(make, listening, api):
    world = build_world(make)
    quote = accepted_quote(make, world)
    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))
    billing.record_payment(invoice, provider=PaymentProvider.STRIPE, provider_reference="pi_1",
                           amount_cents=invoice.total_ttc_cents, currency="EUR")
    db.session.commit()

    paid, granted = recorded(organisation=world.org)[-2:]
    data = envelope_data(paid, "invoice.paid", world.org)
    assert data == api.get(f"/invoices/{invoice.id}") and data["status"] == "paid"
    data = envelope_data(granted, "credits.granted", world.org)
    entry = db.session.scalar(select(CreditEntry).where(CreditEntry.quote_id == quote.id))
    assert data == api.entry(entry.id, world.org.id) and data["amount"] == quote.total_credits
    assert (paid.sequence, granted.sequence) == (4, 5)


def test_monthly_close_then_credit_note_cancel_the_invoice_and_reverse_the_credits(make, listening, api):
    world = build_world(make, BillingMode.MONTHLY)
    quote = accepted_quote(make, world)
    db.session.commit()
    granted = envelope_data(only("credits.granted"), "credits.granted", world.org)
    assert granted["quote"] == {"id": quote.id, "reference": quote.reference}
    assert granted == api.entry(granted["id"], world.org.id)

    monthly.close_month("2026-03", now=CLOSE_AT)
    invoice = db.session.scalar(select(Invoice).where(Invoice.organisation_id == world.org.id))
    [issued] = recorded("invoice.issued")
    assert envelope_data(issued, "invoice.issued", world.org) == api.get(f"/invoices/{invoice.id}")
    assert events.payload(issued)["created"] == unix(CLOSE_AT)

    note = billing.issue_credit_note(invoice, actor=world.admin, reason="Facturé par erreur")
    db.session.commit()
    note_issued, cancelled, reversed_ = recorded(organisation=world.org)[-3:]
    data = envelope_data(note_issued, "invoice.issued", world.org)
    assert data == api.get(f"/invoices/{note.id}") and data["kind"] == InvoiceKind.CREDIT_NOTE.value
    data = envelope_data(cancelled, "invoice.cancelled", world.org)
    assert data == api.get(f"/invoices/{invoice.id}") and data["status"] == "cancelled"
    data = envelope_data(reversed_, "credits.reversed", world.org)
    assert data == api.entry(data["id"], world.org.id)
    assert (data["amount"], data["credit_note"]) == (-quote.total_credits,
                                                     {"id": note.id, "number": note.number})
    assert sequences(world.org) == list(range(1, 8))


def test_credits_adjusted_and_consumed_through_the_api_once_each(make, listening, api):
    world = build_world(make)
    db.session.commit()
    path = f"/organisations/{world.org.id}/credits"
    adjusted = api.post(f"{path}/adjustments", {"amount": 10, "reason": "Offert"}, "k-1")
    consumed = api.post(f"{path}/consumptions", {"amount": 4, "reference": "analyse-1"}, "k-2")
    assert (adjusted.status_code, consumed.status_code) == (201, 201)

    for response, event_type in ((adjusted, "credits.adjusted"), (consumed, "credits.consumed")):
        data = envelope_data(only(event_type), event_type, world.org)
        created = response.get_json()
        assert data == {key: value for key, value in created.items() if key != "balance_after"}
        assert data == api.entry(created["id"], world.org.id)
    replayed = api.post(f"{path}/consumptions", {"amount": 4, "reference": "analyse-1"}, "k-2")
    assert replayed.headers["Idempotent-Replayed"] == "true"
    refused = api.post(f"{path}/consumptions", {"amount": 100, "reference": "analyse-2"}, "k-3")
    assert refused.status_code == 409
    assert sequences(world.org) == [1, 2]  # neither a replay nor a refusal tells anything


def test_quote_requests_received_through_the_api_then_answered_or_declined(make, listening, api):
    world = build_world(make)
    product = make.product()
    db.session.commit()
    created = [api.post(f"/organisations/{world.org.id}/quote-requests",
                        {"email": world.manager.email, "items": [{"product_id": product.id, "quantity": 2}]},
                        f"r-{n}") for n in (1, 2)]
    assert [response.status_code for response in created] == [201, 201]
    received = recorded("request.received")
    assert [envelope_data(event, "request.received", world.org) for event in received] == [
        response.get_json() for response in created]

    answered, declined = (db.session.get(QuoteRequest, response.get_json()["id"]) for response in created)
    draft = quote_requests.answer_request(answered, actor=world.admin)
    db.session.commit()
    assert recorded("request.answered") == []  # a draft answers nothing yet
    quotes.send(draft, actor=world.admin)
    quote_requests.decline_request(declined, actor=world.admin, reason="Produit arrêté")
    db.session.commit()
    told = [envelope_data(event, "request.answered", world.org) for event in recorded("request.answered")]
    assert [data["status"] for data in told] == ["answered", "declined"]
    assert told == [quote_request_json(db.session.get(QuoteRequest, data["id"])) for data in told]
    # The quote's sending and the request's answer: one transaction, one after the other.
    assert [event.type for event in recorded(organisation=world.org)] == [
        "request.received", "request.received", "quote.sent", "request.answered", "request.answered"]
    assert sequences(world.org) == [1, 2, 3, 4, 5]


def test_every_type_is_recorded_and_each_event_id_is_its_own(make):
    record_every_event_type(make)
    written = recorded()
    assert {event.type for event in written} == set(events.EVENT_TYPES) | {events.TEST_EVENT_TYPE}
    assert len({event.public_id for event in written}) == len(written)
    assert all(events.payload(event)["id"] == event.public_id for event in written)


# --- Each organisation's sequence -----------------------------------------------------------------


def test_each_organisation_numbers_its_events_in_commit_order(make, listening):
    staff = make.staff()
    first, second = make.organisation(external_id="a"), make.organisation(external_id="b")
    db.session.commit()
    told = []
    for organisation, amount in ((first, 5), (second, 7), (first, 3), (first, 2), (second, 1)):
        credits.adjust_credits(organisation, amount, actor=staff, reason="Ajustement")
        db.session.commit()
        told.append((organisation.id, recorded()[-1].sequence))
    assert told == [(first.id, 1), (second.id, 1), (first.id, 2), (first.id, 3), (second.id, 2)]
    assert (sequences(first), sequences(second)) == ([1, 2, 3], [1, 2])
    assert [db.session.get(Organisation, org.id).event_sequence for org in (first, second)] == [3, 2]


def test_the_monthly_close_gives_each_invoice_event_one_number_of_its_organisation(make, listening):
    worlds = [build_world(make, BillingMode.MONTHLY) for _ in range(3)]
    for index, world in enumerate(worlds):
        for _ in range(index + 1):
            accepted_quote(make, world)  # quote.sent, quote.accepted, credits.granted
    db.session.commit()
    summary = monthly.close_month("2026-03", now=CLOSE_AT)
    assert len(summary.invoices) == 3

    for index, world in enumerate(worlds):
        before = 3 * (index + 1)
        assert sequences(world.org) == list(range(1, before + 2))
        assert recorded(organisation=world.org)[-1].type == "invoice.issued"
    assert count(Event) == len({(event.organisation_id, event.sequence) for event in recorded()})


def test_record_many_numbers_several_events_of_one_organisation_in_order(make, listening):
    first, second = make.organisation(), make.organisation()
    written = events.record_many("credits.adjusted", [(first, {"n": 1}), (second, {"n": 2}),
                                                      (first, {"n": 3})])
    assert [(event.organisation_id, event.sequence) for event in written] == [
        (first.id, 1), (second.id, 1), (first.id, 2)]
    assert [events.payload(event)["data"] for event in written] == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_a_rolled_back_change_writes_no_event_no_delivery_and_takes_no_number(make, listening):
    staff, organisation = make.staff(), make.organisation()
    credits.adjust_credits(organisation, 5, actor=staff, reason="Solde initial")
    db.session.commit()

    credits.adjust_credits(organisation, 3, actor=staff, reason="Annulé ensuite")
    assert [event.sequence for event in recorded()] == [1, 2]  # written in the change's transaction
    db.session.rollback()
    assert (count(Event), count(WebhookDelivery)) == (1, 1)
    assert db.session.get(Organisation, organisation.id).event_sequence == 1

    credits.adjust_credits(organisation, 4, actor=staff, reason="Validé")
    db.session.commit()
    assert sequences(organisation) == [1, 2]
    assert [events.payload(event)["data"]["amount"] for event in recorded()] == [5, 4]


# --- Endpoints: who gets a delivery ---------------------------------------------------------------


def _adjust(make) -> Organisation:
    organisation = make.organisation()
    credits.adjust_credits(organisation, 5, actor=make.staff(), reason="Ajustement")
    db.session.commit()
    return organisation


def deliveries() -> list[WebhookDelivery]:
    return list(db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.endpoint_id)))


def test_no_enabled_endpoint_subscribed_no_event_and_no_number(make):
    make.webhook_endpoint(enabled=False)
    organisation = _adjust(make)
    assert (count(Event), count(WebhookDelivery)) == (0, 0)
    assert db.session.get(Organisation, organisation.id).event_sequence == 0


def test_a_disabled_endpoint_gets_no_delivery(make):
    enabled = make.webhook_endpoint()
    make.webhook_endpoint(enabled=False)
    _adjust(make)
    assert [delivery.endpoint_id for delivery in deliveries()] == [enabled.id]


def test_two_subscribed_endpoints_one_event_two_pending_deliveries(make):
    endpoints = [make.webhook_endpoint(), make.webhook_endpoint(event_types=["credits.adjusted"])]
    _adjust(make)
    [event] = recorded()
    assert [(delivery.event_id, delivery.endpoint_id) for delivery in deliveries()] == [
        (event.id, endpoint.id) for endpoint in endpoints]
    for delivery in deliveries():
        assert (delivery.status, delivery.attempts, delivery.delivered_at) == (
            DeliveryStatus.PENDING, 0, None)
        assert delivery.next_attempt_at == delivery.created_at == event.created_at


def test_an_endpoint_subscribed_to_other_types_only_gets_no_delivery(make):
    everything = make.webhook_endpoint()
    quotes_only = make.webhook_endpoint(event_types=["quote.sent", "quote.accepted"])
    _adjust(make)
    assert [delivery.endpoint_id for delivery in deliveries()] == [everything.id]
    world = build_world(make)
    make.sent_quote(world.org, actor=world.admin, recipient=world.manager)
    db.session.commit()
    sent = only("quote.sent")
    assert {delivery.endpoint_id for delivery in deliveries() if delivery.event_id == sent.id} == {
        everything.id, quotes_only.id}


def test_the_test_event_has_no_organisation_and_goes_to_its_endpoint_only(make):
    tested = make.webhook_endpoint(event_types=["invoice.paid"])
    make.webhook_endpoint()
    organisation = make.organisation()
    event = events.record_test(tested, now=ACCEPTED_AT)
    db.session.commit()

    assert (event.type, event.organisation_id, event.sequence) == (events.TEST_EVENT_TYPE, None, None)
    body = events.payload(only(events.TEST_EVENT_TYPE))
    assert body == {"id": event.public_id, "object": "event", "type": "endpoint.test",
                    "api_version": events.API_VERSION, "created": unix(ACCEPTED_AT),
                    "organisation": None, "sequence": None, "data": body["data"]}
    assert (body["data"]["object"], body["data"]["id"], body["data"]["url"]) == (
        "webhook_endpoint", tested.id, tested.url)
    assert [(delivery.event_id, delivery.endpoint_id) for delivery in deliveries()] == [(event.id, tested.id)]
    assert db.session.get(Organisation, organisation.id).event_sequence == 0
