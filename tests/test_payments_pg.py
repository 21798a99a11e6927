"""Card payments under real concurrency on PostgreSQL: several connections delivering the same
webhook at once, the return page, the webhook and reconcile racing for the same payment, and
several tabs confirming the same card payment.

Each thread has its own test client, so each request runs in its own app context, session and
connection, as under gunicorn; a barrier releases them together.
"""

from __future__ import annotations

import threading
import traceback
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace

from sqlalchemy import func, select

from portal import payments
from portal.extensions import db
from portal.models import ProcessedStripeEvent, StripePaymentIntent

from . import test_payments
from .test_payments import SUCCEEDED, checkout, confirm_on_server, paid_once
from .web import page_text, sign_in_client

P = "/espace-client"
TIMEOUT = 30


world = test_payments.world  # the same accepted per-order invoice (a fixture)


def race(count: int, action: Callable[[int], object]) -> list[object]:
    """Run `action(index)` in `count` threads released together; their results, in order."""
    barrier = threading.Barrier(count, timeout=TIMEOUT)
    results: list[object] = [None] * count
    errors: list[str] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = action(index)
        except BaseException:  # noqa: BLE001 - reported below
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    assert not errors, "\n".join(errors)
    return results


def signed_in(app, user):
    client = app.test_client()
    sign_in_client(client, user)
    return client


def test_the_same_webhook_delivered_concurrently_records_one_payment(app, client, world, card_payments):
    invoice = world["invoice"]
    sign_in_client(client, world["payer"])
    intent_id = checkout(client, invoice)["intent"]
    card_payments.pay(intent_id)
    delivery = card_payments.inbox.wait_for(SUCCEEDED, intent_id)
    responses = race(8, lambda _: app.test_client().post("/webhooks/stripe", data=delivery.body,
                                                         headers=delivery.headers))
    assert [response.status_code for response in responses] == [200] * 8
    outcomes = Counter(response.get_json()["outcome"] for response in responses)
    assert outcomes == {"recorded": 1, "duplicate": 7}
    paid_once(invoice, intent_id)
    assert db.session.scalar(select(func.count()).select_from(ProcessedStripeEvent)) == 1


def test_return_page_webhook_and_reconcile_racing_record_one_payment(app, client, world, card_payments):
    invoice = world["invoice"]
    sign_in_client(client, world["payer"])
    intent_id = checkout(client, invoice)["intent"]
    card_payments.pay(intent_id)
    delivery = card_payments.inbox.wait_for(SUCCEEDED, intent_id)
    payers = [signed_in(app, world["payer"]) for _ in range(3)]

    def act(index: int) -> object:
        if index < 3:
            return payers[index].get(f"{P}/factures/{invoice.id}/payer/retour?payment_intent={intent_id}")
        if index < 6:
            return app.test_client().post("/webhooks/stripe", data=delivery.body, headers=delivery.headers)
        with app.app_context():  # what `flask payments reconcile` does (CliRunner is not thread-safe)
            outcomes = []
            for link_id, _ in payments.reconcile_candidates():
                outcomes.append(payments.reconcile_intent(link_id))
                db.session.commit()
            return outcomes

    results = race(9, act)
    assert all(response.status_code == 302 for response in results[:3])
    assert all(response.status_code == 200 for response in results[3:6])
    assert all(set(outcomes) <= {"recorded", "already_recorded"} for outcomes in results[6:]), results[6:]
    paid_once(invoice, intent_id)


def test_concurrent_page_views_share_one_intent(app, world, card_payments):
    invoice = SimpleNamespace(id=world["invoice"].id)  # plain data: the threads have no session
    payers = [signed_in(app, world["payer"]) for _ in range(6)]
    pages = race(6, lambda index: checkout(payers[index], invoice))
    assert len({page["client-secret"] for page in pages}) == 1
    assert db.session.scalar(select(func.count()).select_from(StripePaymentIntent)) == 1


def test_three_tabs_confirming_the_card_at_once_all_end_on_the_paid_invoice(app, client, world,
                                                                            card_payments):
    """Three tabs of the payment page confirm their card together (localstripe: on the server).
    Stripe refuses to confirm an intent a sibling already confirmed: each tab is still told the
    invoice is paid, and one payment is recorded."""
    invoice = SimpleNamespace(id=world["invoice"].id)
    payers = [signed_in(app, world["payer"]) for _ in range(3)]
    pages = [checkout(payer, invoice) for payer in payers]
    assert len({page["intent"] for page in pages}) == 1
    setups = [card_payments.collect_card(page["setup-secret"]) for page in pages]
    responses = race(3, lambda index: confirm_on_server(payers[index], invoice, setups[index],
                                                        pages[index]["csrf-token"]))
    bodies = [response.get_json() for response in responses]
    assert [response.status_code for response in responses] == [200] * 3, bodies
    assert [body["status"] for body in bodies] == ["succeeded"] * 3, bodies
    assert {body["outcome"] for body in bodies} <= {"recorded", "already_recorded", "already_paid"}, bodies
    assert {body["payment_intent"] for body in bodies} == {pages[0]["intent"]}
    for payer, body in zip(payers, bodies, strict=True):
        assert "est réglée" in page_text(payer.get(body["return_url"], follow_redirects=True))
    paid_once(world["invoice"], pages[0]["intent"])
