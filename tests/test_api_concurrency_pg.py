"""The platform API's consumptions under real concurrency on PostgreSQL: many calls at once against
a short balance, and one Idempotency-Key sent many times at once.

Each thread has its own test client, so each request runs in its own app context, session and
pooled connection, as under gunicorn. The test does not hope the requests overlap: it holds the
organisation's row lock (what a consumption takes before reading the balance) from another
connection, releases every request together, waits until PostgreSQL reports all of them blocked on
a lock (`pg_stat_activity`), and only then lets them go on.
"""

from __future__ import annotations

import threading
import traceback
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from portal import api_keys, credits
from portal.extensions import db
from portal.models import ApiIdempotencyKey, CreditEntry, CreditEntryKind

from .test_concurrency_pg import row_lock, wait_for_lock_waiters

TIMEOUT = 30
REQUESTS = 20


@pytest.fixture
def funded(app, make):
    """An organisation with 10 credits and a key that may read and consume them; the key has
    been used once already, so that no request of the race rewrites its `last_used_at`."""
    organisation = make.organisation()
    credits.adjust_credits(organisation, 10, actor=make.staff(), reason="Solde initial")
    _, secret = api_keys.create_key("plateforme", ["credits:read", "credits:consume"], actor=None)
    db.session.commit()
    auth = {"Authorization": f"Bearer {secret}"}
    balance = app.test_client().get(f"/api/v1/organisations/{organisation.id}/credits", headers=auth)
    assert balance.get_json()["balance"] == 10
    return organisation.id, auth


def race_through_the_lock(organisation_id: int, send: Callable[[int], object]) -> list:
    """Run `send(index)` in REQUESTS threads at once while the organisation's row is locked; release
    the lock once every request waits on a lock in PostgreSQL; the results, in order."""
    barrier = threading.Barrier(REQUESTS, timeout=TIMEOUT)
    results: list = [None] * REQUESTS
    errors: list[str] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = send(index)
        except BaseException:  # noqa: BLE001 - reported below
            errors.append(traceback.format_exc())
            barrier.abort()

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(REQUESTS)]
    with row_lock("SELECT id FROM organisation WHERE id = :id FOR UPDATE", id=organisation_id):
        for thread in threads:
            thread.start()
        # A request that ended before the release never waited: fail at once, not at the timeout.
        wait_for_lock_waiters(REQUESTS, alive=lambda: all(thread.is_alive() for thread in threads))
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a request is stuck"
    assert not errors, "\n".join(errors)
    return results


def consume(wide_app, organisation_id: int, auth: dict, idempotency_key: str):
    return wide_app.test_client().post(
        f"/api/v1/organisations/{organisation_id}/credits/consumptions",
        headers={**auth, "Idempotency-Key": idempotency_key},
        json={"amount": 1, "reference": "analyse-concurrente"},
    )


def consumptions(organisation_id: int) -> list[CreditEntry]:
    db.session.rollback()  # read what is committed now
    return db.session.scalars(select(CreditEntry).where(
        CreditEntry.organisation_id == organisation_id,
        CreditEntry.kind == CreditEntryKind.CONSUMPTION)).all()


def idempotency_rows() -> int:
    return db.session.scalar(select(func.count()).select_from(ApiIdempotencyKey))


def test_twenty_concurrent_consumptions_of_one_credit_against_ten_consume_exactly_ten(wide_app, funded):
    organisation_id, auth = funded

    responses = race_through_the_lock(
        organisation_id, lambda index: consume(wide_app, organisation_id, auth, f"analyse-{index}"))

    assert Counter(response.status_code for response in responses) == {201: 10, 409: 10}
    created = [response.get_json() for response in responses if response.status_code == 201]
    assert sorted(body["balance_after"] for body in created) == list(range(10))  # one at a time
    refused = [response.get_json() for response in responses if response.status_code == 409]
    assert all(response.content_type == "application/problem+json"
               for response in responses if response.status_code == 409)
    assert {(body["code"], body["balance"]) for body in refused} == {("insufficient_credits", 0)}
    entries = consumptions(organisation_id)
    assert sorted(entry.id for entry in entries) == sorted(body["id"] for body in created)
    assert [entry.amount for entry in entries] == [-1] * 10
    assert credits.credit_balance(organisation_id) == 0
    assert idempotency_rows() == 10  # a refused call keeps no key: its retry runs afresh


def test_one_idempotency_key_sent_twenty_times_at_once_consumes_once_and_answers_alike(wide_app, funded):
    """The first request's key row holds the unique index; the 19 others wait on it, then replay
    the committed response: the same status and the same bytes, marked as replayed."""
    organisation_id, auth = funded

    responses = race_through_the_lock(
        organisation_id, lambda _: consume(wide_app, organisation_id, auth, "analyse-unique"))

    assert [response.status_code for response in responses] == [201] * REQUESTS
    assert len({response.get_data() for response in responses}) == 1
    assert {response.content_type for response in responses} == {"application/json"}
    replayed = [response.headers.get("Idempotent-Replayed") for response in responses]
    assert Counter(replayed) == {"true": REQUESTS - 1, None: 1}
    body = responses[0].get_json()
    assert (body["amount"], body["balance_after"]) == (-1, 9)
    assert [entry.id for entry in consumptions(organisation_id)] == [body["id"]]
    assert credits.credit_balance(organisation_id) == 9
    assert idempotency_rows() == 1
