"""Events under real concurrency on PostgreSQL: twenty API consumptions of one organisation at once
each write their event in their own transaction, numbered 1 to 20 in the order they committed.

The requests are released together through the organisation's row lock (tests/test_api_concurrency_pg.py):
each consumption locks that row before reading the balance, so they commit one after the other and
the balance each one leaves tells its place in that order.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from portal import api_keys, credits, events
from portal.extensions import db
from portal.models import Event, Organisation, WebhookDelivery

from .test_api_concurrency_pg import REQUESTS, consume, race_through_the_lock


def test_twenty_concurrent_consumptions_write_twenty_events_numbered_1_to_20_in_commit_order(
        wide_app, make):
    endpoint = make.webhook_endpoint(event_types=["credits.consumed"])
    organisation = make.organisation(external_id="plat-concurrent")
    credits.adjust_credits(organisation, REQUESTS, actor=make.staff(), reason="Solde initial")
    _, secret = api_keys.create_key("plateforme", ["credits:consume"], actor=None)
    db.session.commit()
    assert db.session.scalars(select(Event)).all() == []  # nobody listens to credits.adjusted
    auth = {"Authorization": f"Bearer {secret}"}

    responses = race_through_the_lock(
        organisation.id, lambda index: consume(wide_app, organisation.id, auth, f"analyse-{index}"))

    assert [response.status_code for response in responses] == [201] * REQUESTS
    created = {body["id"]: body for body in (response.get_json() for response in responses)}
    db.session.rollback()  # read what is committed now
    written = db.session.scalars(select(Event).order_by(Event.sequence)).all()
    assert [event.sequence for event in written] == list(range(1, REQUESTS + 1))
    for event in written:
        body = events.payload(event)
        assert (body["type"], body["organisation"]) == (
            "credits.consumed", {"id": organisation.id, "external_id": "plat-concurrent"})
        assert body["sequence"] == event.sequence
        answered = created[body["data"]["id"]]
        assert body["data"] == {key: value for key, value in answered.items() if key != "balance_after"}
        # The n-th to commit left REQUESTS - n credits: numbers follow the commits.
        assert answered["balance_after"] == REQUESTS - event.sequence
    assert len({events.payload(event)["data"]["id"] for event in written}) == REQUESTS
    assert db.session.get(Organisation, organisation.id).event_sequence == REQUESTS
    assert credits.credit_balance(organisation.id) == 0
    deliveries = db.session.scalars(select(WebhookDelivery)).all()
    assert Counter((delivery.endpoint_id, delivery.event_id) for delivery in deliveries) == Counter(
        {(endpoint.id, event.id): 1 for event in written})
