"""PostgreSQL only: concurrent webhook workers (SKIP LOCKED) deliver each event once per endpoint.

Each worker thread has its own app context, hence its own session and connection; the test
commits its events before any worker starts.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import select, text

from portal import events
from portal.delivery import webhooks
from portal.extensions import db
from portal.models import DeliveryStatus, Organisation, WebhookDelivery

from .threads import in_threads
from .webhook_receiver import running_receiver

EVENTS = 200
WORKERS = 4


@pytest.fixture
def webhook_receiver():
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture(autouse=True)
def local_webhooks(app, wide_app, monkeypatch):
    """Deliver to the receiver: plain http, to 127.0.0.1 (as in development), from either app."""
    for each in (app, wide_app):
        monkeypatch.setitem(each.config, "WEBHOOKS_ALLOW_LOCAL", True)
        monkeypatch.setitem(each.config, "WEBHOOKS_HTTPS_ONLY", False)


def _backlog(make, receiver, count: int) -> None:
    """`count` events of several organisations, for two endpoints (paths /a and /b)."""
    make.webhook_endpoint(url=receiver.url("/a"))
    make.webhook_endpoint(url=receiver.url("/b"))
    organisations = [make.organisation() for _ in range(5)]
    events.record_many("credits.consumed", [(organisations[n % 5], {"n": n}) for n in range(count)])
    db.session.commit()


def test_concurrent_workers_deliver_each_event_once_per_endpoint(wide_app, make, webhook_receiver):
    _backlog(make, webhook_receiver, EVENTS)
    webhook_receiver.answer(200, delay=0.002)  # slow enough for the workers to interleave

    results, errors = in_threads(wide_app, lambda: webhooks.deliver_pending(limit=10_000), WORKERS,
                                 timeout=120)

    assert errors == []
    assert sum(result.delivered for result in results) == 2 * EVENTS
    assert sum(result.retried + result.failed for result in results) == 0
    assert all(result.delivered > 0 for result in results), "every worker should have had work"
    received = Counter((request.path, request.headers["Portail-Event-Id"])
                       for request in webhook_receiver.requests)
    assert len(received) == 2 * EVENTS
    assert set(received.values()) == {1}
    assert {path for path, _ in received} == {"/a", "/b"}
    rows = db.session.scalars(select(WebhookDelivery)).all()
    assert {(row.status, row.attempts) for row in rows} == {(DeliveryStatus.DELIVERED, 1)}
    assert len(rows) == 2 * EVENTS


def test_a_delivery_locked_by_another_worker_is_skipped_not_waited_for(app, make, webhook_receiver):
    _backlog(make, webhook_receiver, 3)
    ids = list(db.session.scalars(select(WebhookDelivery.id).order_by(WebhookDelivery.id)))
    with db.engine.connect() as other:
        transaction = other.begin()
        other.execute(text("SELECT id FROM webhook_delivery WHERE id = :id FOR UPDATE"), {"id": ids[0]})
        results, errors = in_threads(app, webhooks.deliver_pending, 1, timeout=20)
        transaction.rollback()

    assert errors == []
    assert results[0].delivered == 5
    locked = db.session.get(WebhookDelivery, ids[0])
    assert (locked.status, locked.attempts) == (DeliveryStatus.PENDING, 0)
    assert webhooks.deliver_pending().delivered == 1
    assert len(webhook_receiver.requests) == 6


def test_workers_racing_the_writers_deliver_every_committed_event_once(wide_app, make, webhook_receiver):
    """Events keep being committed while two workers loop: none is lost, none is sent twice."""
    make.webhook_endpoint(url=webhook_receiver.url())
    organisation_id = make.organisation().id
    db.session.commit()
    written, done = [], threading.Event()

    def write() -> None:
        with wide_app.app_context():
            for n in range(60):
                organisation = db.session.get(Organisation, organisation_id)
                written.append(events.record("credits.consumed", organisation, {"n": n}).public_id)
                db.session.commit()
        done.set()

    def work() -> int:
        delivered = 0
        while True:
            finished = done.is_set()  # read before the pass: a pass after the last commit follows
            delivered += webhooks.deliver_pending(limit=10).delivered
            if finished:
                return delivered + webhooks.deliver_pending(limit=10_000).delivered

    writer = threading.Thread(target=write)
    writer.start()
    results, errors = in_threads(wide_app, work, 2, timeout=120)
    writer.join(30)

    assert errors == []
    assert sum(results) == len(written) == 60
    assert sorted(webhook_receiver.event_ids()) == sorted(written)
