"""PostgreSQL only: concurrent outbox workers (SKIP LOCKED) and concurrent magic-link clicks.

Each worker thread has its own app context, hence its own session and connection; the test
commits its data before any worker starts.
"""

from __future__ import annotations

from sqlalchemy import select, text

from portal import auth, outbox, quote_requests
from portal.delivery import worker
from portal.exceptions import MagicLinkUsed
from portal.extensions import db
from portal.models import ClientRole, OutboxEmail, OutboxStatus

from .threads import in_threads

WORKERS = 2
EMAILS = 40


def _queue(make, count: int) -> list[int]:
    org = make.organisation()
    request = quote_requests.create_request(organisation=org,
                                            requester=make.client_user(org, ClientRole.MEMBRE),
                                            items=[(make.product().id, 1)])
    for n in range(count - 1):
        outbox.enqueue(recipient=f"destinataire{n}@example.test", template="request_received",
                       context={"request_id": request.id}, dedupe_key=f"test:{n}")
    db.session.commit()
    return list(db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id)))


def test_two_workers_send_each_message_exactly_once(app, make, smtp_server):
    smtp_server.handler.delay = 0.01  # slow enough for the workers to interleave
    ids = _queue(make, EMAILS)

    results, errors = in_threads(app, lambda: worker.send_pending(limit=1000), WORKERS)

    assert errors == []
    assert sum(result.sent for result in results) == EMAILS
    assert all(result.sent > 0 for result in results), "both workers should have had work"
    assert sum(result.retried + result.failed for result in results) == 0
    message_ids = [received.message["Message-ID"] for received in smtp_server.messages]
    assert len(message_ids) == len(set(message_ids)) == EMAILS
    rows = db.session.scalars(select(OutboxEmail).where(OutboxEmail.id.in_(ids))).all()
    assert {(row.status, row.attempts) for row in rows} == {(OutboxStatus.SENT, 1)}


def test_a_row_locked_by_another_worker_is_skipped_not_waited_for(app, make, smtp_server):
    ids = _queue(make, 3)
    with db.engine.connect() as other:
        transaction = other.begin()
        other.execute(text("SELECT id FROM outbox_email WHERE id = :id FOR UPDATE"), {"id": ids[0]})
        results, errors = in_threads(app, worker.send_pending, 1, timeout=20)
        transaction.rollback()

    assert errors == []
    assert results[0].sent == 2
    locked = db.session.get(OutboxEmail, ids[0])
    assert (locked.status, locked.attempts) == (OutboxStatus.PENDING, 0)
    assert worker.send_pending().sent == 1
    assert len(smtp_server.messages) == 3


def test_concurrent_clicks_on_one_link_sign_in_once(app, make):
    world = make.world()
    quote, user = world["quote"], world["users"][ClientRole.GESTIONNAIRE]
    _, seed = auth.create_magic_link(user, quote)
    db.session.commit()
    raw, quote_id, user_id = auth.raw_token_from_seed(seed), quote.id, user.id

    def click():
        try:
            signed_in = auth.consume_magic_link(raw, quote_id=quote_id).id
            db.session.commit()
            return signed_in
        except MagicLinkUsed:
            db.session.rollback()
            return "used"

    results, errors = in_threads(app, click, 8)

    assert errors == []
    assert sorted(results, key=str) == sorted([user_id] + ["used"] * 7, key=str)
