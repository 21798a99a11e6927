"""Online payment of invoices: the card through Stripe (here a real localstripe, driven with
stripe-python), fulfilled exactly once from the return page, the webhook and `flask payments
reconcile`; and the bank transfer, the second method.

The browser half (Stripe.js mounting the card Element, confirmCardPayment / confirmCardSetup,
payment.js showing the messages) needs a browser, which this suite does not drive:
`LocalStripe.pay` and `LocalStripe.collect_card` make the API calls Stripe.js makes, and the
Playwright browser tests (a later issue) drive the real page.
"""

from __future__ import annotations

import json
import re
import time
from html import unescape

import pytest
import stripe
from sqlalchemy import func, select

from portal import billing, credits, quotes
from portal.delivery.emails import render
from portal.extensions import db
from portal.models import (
    AuditEvent,
    Channel,
    ClientRole,
    CreditEntry,
    Invoice,
    InvoiceStatus,
    OutboxEmail,
    Payment,
    PaymentAnomaly,
    PaymentAnomalyKind,
    PaymentProvider,
    ProcessedStripeEvent,
    StripePaymentIntent,
)
from portal.seller import current_terms

from .stripe_server import CARD_CHARGE_DECLINED, CARD_DECLINED
from .web import page_text, sign_in_client

P = "/espace-client"
SUCCEEDED, FAILED = "payment_intent.succeeded", "payment_intent.payment_failed"


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def accepted_invoice(world, quote) -> Invoice:
    """`quote` accepted on the portal by the payer: the invoice it issued (committed)."""
    quotes.accept(quote, actor=world["payer"], terms_version=world["terms"], channel=Channel.PORTAL)
    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))
    db.session.commit()
    return invoice


@pytest.fixture
def world(make):
    """A per-order quote accepted: invoice issued for 240,00 € TTC, 20 credits to grant on payment."""
    world = make.world()
    world["payer"] = world["users"][ClientRole.GESTIONNAIRE]
    world["invoice"] = accepted_invoice(world, world["quote"])
    return world


def another_invoice(make, world) -> Invoice:
    """A second quote of the same organisation, accepted: its invoice."""
    quote = make.sent_quote(world["org"], actor=world["admin"], recipient=world["payer"])
    return accepted_invoice(world, quote)


@pytest.fixture
def payer(client, world):
    sign_in_client(client, world["payer"])
    return client


def checkout(client, invoice) -> dict[str, str]:
    """Open the payment page; the data- attributes it hands to payment.js."""
    response = client.get(f"{P}/factures/{invoice.id}/payer")
    assert response.status_code == 200, response.headers.get("Location")
    form = re.search(r'<form id="card-payment"(.*?)>', response.get_data(as_text=True), re.S)
    assert form, "no card form on the payment page"
    data = {name: unescape(value) for name, value in re.findall(r'data-([a-z-]+)="([^"]*)"', form.group(1))}
    data["intent"] = data["client-secret"].split("_secret_")[0]
    return data


def deliver(client, delivery):
    return client.post("/webhooks/stripe", data=delivery.body, headers=delivery.headers)


def return_page(client, invoice, intent_id: str | None):
    query = f"?payment_intent={intent_id}" if intent_id else ""
    return client.get(f"{P}/factures/{invoice.id}/payer/retour{query}", follow_redirects=True)


def confirm_on_server(client, invoice, setup_intent: str, csrf: str, **extra):
    return client.post(f"{P}/factures/{invoice.id}/payer/carte", json={"setup_intent": setup_intent, **extra},
                       headers={"X-CSRFToken": csrf})


def paid_once(invoice, intent_id: str) -> None:
    """The invoice is paid by exactly one card payment, and its credits were granted once."""
    db.session.expire_all()
    assert db.session.get(Invoice, invoice.id).status == InvoiceStatus.PAID
    payments = db.session.scalars(select(Payment).where(Payment.invoice_id == invoice.id)).all()
    assert [(p.provider, p.provider_reference, p.amount_cents, p.currency) for p in payments] == [
        (PaymentProvider.STRIPE, intent_id, 24000, "EUR")]
    assert _count(CreditEntry) == 1
    assert credits.credit_balance(invoice.organisation_id) == 20


def unpaid(invoice) -> None:
    db.session.expire_all()
    assert db.session.get(Invoice, invoice.id).status == InvoiceStatus.ISSUED
    assert _count(Payment) == 0 and _count(CreditEntry) == 0


# --- The payment page ---------------------------------------------------------------------------


def test_the_page_offers_card_and_transfer_with_one_intent_for_the_amount_due(payer, world, card_payments):
    invoice = world["invoice"]
    response = payer.get(f"{P}/factures/{invoice.id}/payer")
    html = response.get_data(as_text=True)
    text = page_text(response)
    assert "Carte bancaire" in text and "Payer 240,00\u00a0€ par carte" in text
    assert "Virement bancaire" in text and "FR7630006000011234567890189" in text and "AGRIFRPP" in text
    assert invoice.number in text
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts and all("src=" in attributes for attributes in scripts), "no inline script"
    assert f'src="{card_payments.js_url}"' in html and "/static/payment.js" in html
    first, again = checkout(payer, invoice), checkout(payer, invoice)
    assert first["client-secret"] == again["client-secret"], "the open intent is reused"
    assert first["publishable-key"] == card_payments.publishable_key
    intent = card_payments.client.v1.payment_intents.retrieve(first["intent"])
    assert (intent.amount, intent.currency, intent.metadata["invoice_id"]) == (24000, "eur", str(invoice.id))
    links = db.session.scalars(select(StripePaymentIntent)).all()
    assert [(link.invoice_id, link.attempt, link.intent_id) for link in links] == [
        (invoice.id, 1, first["intent"])]


def test_without_stripe_keys_the_page_offers_the_bank_transfer_only(payer, world):
    text = page_text(payer.get(f"{P}/factures/{world['invoice'].id}/payer"))
    assert "Virement bancaire" in text and "IBAN" in text and "BIC" in text
    assert 'id="card-payment"' not in text and _count(StripePaymentIntent) == 0


def test_stripe_unreachable_leaves_the_bank_transfer(payer, world, card_payments, app, monkeypatch):
    from portal.devserver import free_port

    monkeypatch.setitem(app.config, "STRIPE_API_BASE", f"http://127.0.0.1:{free_port()}")
    response = payer.get(f"{P}/factures/{world['invoice'].id}/payer")
    text = page_text(response)
    assert response.status_code == 200
    assert "momentanément indisponible" in text and "Virement bancaire" in text
    assert 'id="card-payment"' not in text and _count(StripePaymentIntent) == 0


# --- A successful card payment ------------------------------------------------------------------


def test_a_card_payment_marks_the_invoice_paid_and_grants_the_credits_once(payer, world, card_payments):
    invoice = world["invoice"]
    intent_id = checkout(payer, invoice)["intent"]
    assert card_payments.pay(intent_id)["status"] == "succeeded"
    response = deliver(payer, card_payments.inbox.wait_for(SUCCEEDED, intent_id))
    assert response.status_code == 200 and response.get_json()["outcome"] == "recorded"
    paid_once(invoice, intent_id)
    text = page_text(return_page(payer, invoice, intent_id))
    assert f"Paiement reçu, merci : la facture {invoice.number} est réglée." in text
    paid_once(invoice, intent_id)
    emails = db.session.scalars(select(OutboxEmail.template)).all()
    assert emails.count("payment_received") == 1
    # Paying again is refused: the invoice is paid.
    again = payer.get(f"{P}/factures/{invoice.id}/payer", follow_redirects=True)
    assert "n'est pas à régler" in page_text(again)


def test_the_return_page_before_the_webhook_records_one_payment(payer, world, card_payments):
    invoice = world["invoice"]
    intent_id = checkout(payer, invoice)["intent"]
    card_payments.pay(intent_id)
    text = page_text(return_page(payer, invoice, intent_id))
    assert "est réglée" in text
    paid_once(invoice, intent_id)
    response = deliver(payer, card_payments.inbox.wait_for(SUCCEEDED, intent_id))
    assert response.get_json()["outcome"] == "already_recorded"
    paid_once(invoice, intent_id)


def test_localstripe_page_flow_confirms_on_the_server(payer, world, card_payments):
    """What payment.js does against localstripe: confirmCardSetup, then POST the SetupIntent."""
    invoice = world["invoice"]
    page = checkout(payer, invoice)
    assert page["setup-secret"].startswith("seti_") and page["confirm-url"].endswith("/payer/carte")
    setup_id = card_payments.collect_card(page["setup-secret"])
    response = confirm_on_server(payer, invoice, setup_id, page["csrf-token"], amount=1)
    body = response.get_json()
    assert response.status_code == 200, body
    assert (body["status"], body["outcome"]) == ("succeeded", "recorded"), body
    assert body["payment_intent"] == page["intent"]
    paid_once(invoice, page["intent"])  # 240,00 €: the forged `amount` was ignored
    assert "est réglée" in page_text(payer.get(body["return_url"], follow_redirects=True))
    deliver(payer, card_payments.inbox.wait_for(SUCCEEDED, page["intent"]))
    paid_once(invoice, page["intent"])


def _paying_tab(client, invoice, card_payments) -> tuple[dict[str, str], str]:
    """A tab of the payment page with a card collected: its page data and SetupIntent id."""
    page = checkout(client, invoice)
    return page, card_payments.collect_card(page["setup-secret"])


def _ends_on_the_paid_invoice(client, response, intent_id: str) -> None:
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "succeeded", body
    assert body["payment_intent"] == intent_id
    text = page_text(client.get(body["return_url"], follow_redirects=True))
    assert "est réglée" in text, text


def test_a_second_tab_confirming_after_the_first_paid_is_told_the_invoice_is_paid(payer, world,
                                                                                    card_payments):
    invoice = world["invoice"]
    first, first_setup = _paying_tab(payer, invoice, card_payments)
    second, second_setup = _paying_tab(payer, invoice, card_payments)  # same intent, its own card
    assert second["intent"] == first["intent"]
    _ends_on_the_paid_invoice(payer, confirm_on_server(payer, invoice, first_setup, first["csrf-token"]),
                              first["intent"])
    again = confirm_on_server(payer, invoice, second_setup, second["csrf-token"])
    _ends_on_the_paid_invoice(payer, again, first["intent"])
    assert again.get_json()["outcome"] == "already_paid"
    paid_once(invoice, first["intent"])


def test_a_tab_confirming_an_intent_another_tab_just_paid_is_told_the_invoice_is_paid(
        payer, world, card_payments, monkeypatch):
    """The race of two tabs: the intent is paid between this request's look at it and its own
    confirmation, which Stripe then refuses (an intent confirms once)."""
    from portal import payments

    invoice = world["invoice"]
    page, setup = _paying_tab(payer, invoice, card_payments)
    open_intent = payments._open_intent

    def sibling_pays_meanwhile(invoice):
        intent = open_intent(invoice)
        card_payments.pay(intent.id)  # the other tab's confirmation lands now
        return intent

    with monkeypatch.context() as patch:
        patch.setattr(payments, "_open_intent", sibling_pays_meanwhile)
        response = confirm_on_server(payer, invoice, setup, page["csrf-token"])
    _ends_on_the_paid_invoice(payer, response, page["intent"])
    paid_once(invoice, page["intent"])


def test_confirming_an_intent_that_already_succeeded_settles_it_as_a_success(payer, world, card_payments):
    invoice = world["invoice"]
    page, setup = _paying_tab(payer, invoice, card_payments)
    card_payments.pay(page["intent"])  # paid from another tab; no webhook arrived yet
    unpaid(invoice)
    response = confirm_on_server(payer, invoice, setup, page["csrf-token"])
    _ends_on_the_paid_invoice(payer, response, page["intent"])
    paid_once(invoice, page["intent"])


NOT_A_CONFIRMATION = [
    [], ["seti_123"], [{"setup_intent": "seti_123"}], "seti_123", 42, 4.2, True, None,
    {"setup_intent": 42}, {"setup_intent": ["seti_123"]}, {"setup_intent": {"id": "seti_123"}},
    {"setup_intent": None}, {"setup_intent": True}, {},
]


def test_a_card_confirmation_whose_json_is_not_an_object_with_a_setup_intent_gets_400(payer, world,
                                                                                       card_payments):
    """A JSON array, string, number, boolean or null, or a `setup_intent` that is no string."""
    invoice = world["invoice"]
    page = checkout(payer, invoice)
    for body in NOT_A_CONFIRMATION:
        response = payer.post(f"{P}/factures/{invoice.id}/payer/carte", data=json.dumps(body),
                              content_type="application/json", headers={"X-CSRFToken": page["csrf-token"]})
        assert response.status_code == 400 and response.is_json, (body, response.status_code)
        assert response.get_json()["error"] == "Carte non reconnue : rechargez la page et recommencez."
    unpaid(invoice)


# --- Declined cards -----------------------------------------------------------------------------


def test_a_declined_card_leaves_the_invoice_unpaid_with_a_french_message(payer, world, card_payments):
    """4000 0000 0000 0002: localstripe declines it when the page collects the card."""
    invoice = world["invoice"]
    page = checkout(payer, invoice)
    with pytest.raises(stripe.CardError) as declined:
        card_payments.collect_card(page["setup-secret"], CARD_DECLINED)
    assert declined.value.code == "card_declined"  # payment.js shows data-msg-declined for it:
    assert page["msg-declined"].startswith("Votre carte a été refusée : aucun montant n'a été débité.")
    setup_id = page["setup-secret"].split("_secret_")[0]
    response = confirm_on_server(payer, invoice, setup_id, page["csrf-token"])
    assert response.status_code == 402
    message = response.get_json()["error"]
    assert message.startswith("Votre carte a été refusée : aucun montant n'a été débité.")
    unpaid(invoice)
    text = page_text(return_page(payer, invoice, page["intent"]))
    assert "n'a pas été finalisé : aucun montant n'a été débité" in text and "Virement bancaire" in text
    unpaid(invoice)


def test_a_card_declined_at_payment_is_reported_and_a_new_attempt_can_pay(payer, world, card_payments):
    """4000 0000 0000 0341: localstripe declines it when the PaymentIntent is confirmed."""
    invoice = world["invoice"]
    page = checkout(payer, invoice)
    setup_id = card_payments.collect_card(page["setup-secret"], CARD_CHARGE_DECLINED)
    response = confirm_on_server(payer, invoice, setup_id, page["csrf-token"])
    assert response.status_code == 402 and "Votre carte a été refusée" in response.get_json()["error"]
    failed = deliver(payer, card_payments.inbox.wait_for(FAILED, page["intent"]))
    assert failed.status_code == 200 and failed.get_json()["outcome"] == "declined"
    assert _count(AuditEvent, AuditEvent.action == "payment.failed") == 1
    text = page_text(return_page(payer, invoice, page["intent"]))
    assert "Votre carte a été refusée : aucun montant n'a été débité." in text
    unpaid(invoice)
    # The next attempt gets a new intent (localstripe cannot confirm a failed one again).
    retry = checkout(payer, invoice)
    assert retry["intent"] != page["intent"]
    card_payments.pay(retry["intent"])
    assert "est réglée" in page_text(return_page(payer, invoice, retry["intent"]))
    paid_once(invoice, retry["intent"])
    assert [link.status for link in db.session.scalars(select(StripePaymentIntent)
                                                       .order_by(StripePaymentIntent.attempt))] == [
        "canceled", "succeeded"]


# --- Webhooks: signatures, duplicates, order ----------------------------------------------------


def test_the_same_webhook_twice_records_one_payment(payer, world, card_payments):
    invoice = world["invoice"]
    intent_id = checkout(payer, invoice)["intent"]
    card_payments.pay(intent_id)
    delivery = card_payments.inbox.wait_for(SUCCEEDED, intent_id)
    outcomes = [deliver(payer, delivery).get_json()["outcome"] for _ in range(3)]
    assert outcomes == ["recorded", "duplicate", "duplicate"]
    paid_once(invoice, intent_id)
    assert _count(ProcessedStripeEvent) == 1


def test_bad_missing_or_stale_signatures_get_400_and_change_nothing(payer, world, card_payments):
    invoice = world["invoice"]
    intent_id = checkout(payer, invoice)["intent"]
    card_payments.pay(intent_id)
    delivery = card_payments.inbox.wait_for(SUCCEEDED, intent_id)
    body, stripe_time = delivery.body, delivery.event["created"]
    attempts = {
        "missing": {},
        "garbage": {"Stripe-Signature": "n'importe quoi"},
        "wrong secret": {"Stripe-Signature": card_payments.signature(body, secret="whsec_autre")},
        "another body": {"Stripe-Signature": card_payments.signature(b'{"id": "evt_x"}')},
        "stale": {"Stripe-Signature": card_payments.signature(body, timestamp=int(time.time()) - 301)},
    }
    for name, headers in attempts.items():
        response = payer.post("/webhooks/stripe", data=body,
                              headers={"Content-Type": "application/json", **headers})
        assert response.status_code == 400, name
        assert response.is_json and "signature Stripe" in response.get_json()["error"], name
    tampered = body.replace(b'"amount": 24000', b'"amount": 1')
    assert tampered != body
    forged = payer.post("/webhooks/stripe", data=tampered, headers=delivery.headers)
    assert forged.status_code == 400
    assert _count(ProcessedStripeEvent) == 0 and _count(Payment) == 0
    assert int(time.time()) - stripe_time < 300  # the genuine delivery is still within the tolerance
    assert deliver(payer, delivery).status_code == 200
    paid_once(invoice, intent_id)


def test_a_signature_dated_more_than_five_minutes_ahead_is_refused_a_minute_ahead_accepted(
        payer, world, card_payments):
    """Stripe's library checks only the age of a signature: one from the future (a replay
    prepared in advance, a wrong clock) is refused past the tolerance; a little clock skew is not."""
    invoice = world["invoice"]
    intent_id = checkout(payer, invoice)["intent"]
    card_payments.pay(intent_id)
    body = card_payments.inbox.wait_for(SUCCEEDED, intent_id).body

    def post(ahead: int):
        signature = card_payments.signature(body, timestamp=int(time.time()) + ahead)
        return payer.post("/webhooks/stripe", data=body,
                          headers={"Content-Type": "application/json", "Stripe-Signature": signature})

    future = post(301)
    assert future.status_code == 400 and "signature Stripe" in future.get_json()["error"]
    assert _count(ProcessedStripeEvent) == 0
    unpaid(invoice)
    skewed = post(60)
    assert skewed.status_code == 200 and skewed.get_json()["outcome"] == "recorded"
    paid_once(invoice, intent_id)


def test_other_events_are_acknowledged_and_malformed_ones_refused(client, card_payments):
    def post(event: dict):
        body = json.dumps(event).encode()
        return client.post("/webhooks/stripe", data=body, headers={
            "Content-Type": "application/json", "Stripe-Signature": card_payments.signature(body)})

    other = post({"id": "evt_other", "type": "customer.created", "data": {"object": {"id": "cus_1"}}})
    assert other.status_code == 200 and other.get_json()["outcome"] == "ignored"
    for malformed in ({"id": "evt_bad", "type": SUCCEEDED, "data": {"object": {"id": "cus_1"}}},
                      {"id": "evt_bad", "type": SUCCEEDED, "data": []},
                      {"type": SUCCEEDED}, ["evt_bad"]):
        response = post(malformed)
        assert response.status_code == 400 and response.is_json, malformed
    assert client.get("/webhooks/stripe").status_code == 405
    assert db.session.scalars(select(ProcessedStripeEvent.event_id)).all() == ["evt_other"]


def test_webhooks_need_no_csrf_token_but_the_portal_forms_do(payer, world, card_payments):
    page = checkout(payer, world["invoice"])
    setup_id = card_payments.collect_card(page["setup-secret"])
    without_token = payer.post(f"{P}/factures/{world['invoice'].id}/payer/carte",
                               json={"setup_intent": setup_id})
    assert without_token.status_code == 400 and without_token.is_json
    unpaid(world["invoice"])


def test_events_out_of_order_never_undo_a_payment(payer, world, card_payments):
    invoice = world["invoice"]
    first = checkout(payer, invoice)
    with pytest.raises(stripe.CardError):
        card_payments.pay(first["intent"], CARD_CHARGE_DECLINED)
    second = checkout(payer, invoice)["intent"]
    card_payments.pay(second)
    # Stripe does not guarantee the order: the success arrives first, the older failure after it.
    assert deliver(payer, card_payments.inbox.wait_for(SUCCEEDED, second)).get_json()["outcome"] == "recorded"
    late = deliver(payer, card_payments.inbox.wait_for(FAILED, first["intent"]))
    assert late.status_code == 200 and late.get_json()["outcome"] == "declined"
    # Even a failure reported for the very intent that paid (crafted, signed) changes nothing.
    event = card_payments.inbox.wait_for(SUCCEEDED, second).event
    event.update(id="evt_late_failure", type=FAILED)
    body = json.dumps(event).encode()
    response = payer.post("/webhooks/stripe", data=body, headers={
        "Content-Type": "application/json", "Stripe-Signature": card_payments.signature(body)})
    assert response.status_code == 200
    paid_once(invoice, second)


# --- Reconciliation -----------------------------------------------------------------------------


def test_a_suppressed_webhook_is_settled_by_reconcile_once(payer, world, card_payments, runner):
    invoice = world["invoice"]
    intent_id = checkout(payer, invoice)["intent"]
    card_payments.pay(intent_id)  # the webhook never reaches the app; the client closed the tab
    unpaid(invoice)
    result = runner.invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    assert "1 paiement enregistré" in result.output
    paid_once(invoice, intent_id)
    again = runner.invoke(args=["payments", "reconcile"])
    assert again.exit_code == 0 and "0 paiement enregistré" in again.output
    late = deliver(payer, card_payments.inbox.wait_for(SUCCEEDED, intent_id))
    assert late.get_json()["outcome"] == "already_recorded"
    paid_once(invoice, intent_id)


def test_reconcile_leaves_unpaid_intents_alone(payer, world, card_payments, runner):
    checkout(payer, world["invoice"])
    result = runner.invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0 and "0 paiement enregistré" in result.output
    unpaid(world["invoice"])


def test_reconcile_without_stripe_keys_says_so(runner):
    result = runner.invoke(args=["payments", "reconcile"])
    assert result.exit_code != 0 and "STRIPE_SECRET_KEY" in result.output


# --- Bad input: refused, nothing recorded -------------------------------------------------------


def test_an_intent_of_another_invoice_is_refused_on_the_return_page(payer, world, card_payments, make):
    invoice = world["invoice"]
    other_invoice = another_invoice(make, world)
    intent_id = checkout(payer, other_invoice)["intent"]
    card_payments.pay(intent_id)
    text = page_text(return_page(payer, invoice, intent_id))  # forged: another invoice's intent
    assert "Ce paiement ne correspond pas à cette facture : rien n'a été enregistré." in text
    assert _count(Payment) == 0
    forged = page_text(return_page(payer, invoice, "pi_inexistant"))
    assert "ne correspond pas à cette facture" in forged and _count(Payment) == 0


def test_a_setup_intent_of_another_invoice_is_refused(payer, world, card_payments, make):
    other_invoice = another_invoice(make, world)
    page = checkout(payer, other_invoice)
    setup_id = card_payments.collect_card(page["setup-secret"])
    response = confirm_on_server(payer, world["invoice"], setup_id, page["csrf-token"])
    assert response.status_code == 409 and "ne correspond pas à cette facture" in response.get_json()["error"]
    garbage = confirm_on_server(payer, world["invoice"], "pas-un-identifiant", page["csrf-token"])
    assert garbage.status_code == 400 and garbage.get_json()["error"]
    assert _count(Payment) == 0


def test_a_webhook_naming_another_invoice_is_refused_and_flagged(payer, world, card_payments, make):
    invoice = world["invoice"]
    other_invoice = another_invoice(make, world)
    intent_id = checkout(payer, invoice)["intent"]
    # Someone with access to the Stripe account points the intent at another invoice.
    card_payments.client.v1.payment_intents.update(
        intent_id, params={"metadata": {"invoice_id": str(other_invoice.id)}})
    card_payments.pay(intent_id)
    response = deliver(payer, card_payments.inbox.wait_for(SUCCEEDED, intent_id))
    assert response.status_code == 200 and response.get_json()["outcome"] == "refused"
    unpaid(invoice)
    unpaid(other_invoice)
    anomaly = db.session.scalar(select(PaymentAnomaly))
    assert (anomaly.kind, anomaly.intent_id, anomaly.invoice_id) == (
        PaymentAnomalyKind.WRONG_INVOICE, intent_id, invoice.id)
    assert _count(AuditEvent, AuditEvent.action == "payment.flagged") == 1
    assert "notre équipe doit le vérifier" not in page_text(return_page(payer, invoice, intent_id))
    unpaid(invoice)


def test_a_webhook_for_an_intent_the_portal_did_not_create_is_refused(payer, world, card_payments):
    invoice = world["invoice"]
    client = card_payments.client
    outcomes = {}
    for name, metadata in {"unknown intent": {"invoice_id": str(invoice.id)},
                           "unknown invoice": {"invoice_id": "999999"},
                           "not ours": {"order": "42"}}.items():
        foreign = client.v1.payment_intents.create(params={
            "amount": 24000, "currency": "eur", "payment_method_types": ["card"], "metadata": metadata})
        card_payments.pay(foreign.id)
        response = deliver(payer, card_payments.inbox.wait_for(SUCCEEDED, foreign.id))
        assert response.status_code == 200
        outcomes[name] = response.get_json()["outcome"]
        assert "ne correspond pas à cette facture" in page_text(return_page(payer, invoice, foreign.id))
    assert outcomes == {"unknown intent": "refused", "unknown invoice": "refused", "not ours": "ignored"}
    unpaid(invoice)
    assert set(db.session.scalars(select(PaymentAnomaly.kind))) == {
        PaymentAnomalyKind.UNKNOWN_INTENT, PaymentAnomalyKind.UNKNOWN_INVOICE}


@pytest.mark.parametrize(("change", "amount", "currency"), [
    ({"amount": 100}, 100, "EUR"),
    ({"currency": "usd"}, 24000, "USD"),
])
def test_an_amount_or_currency_that_does_not_match_is_flagged_never_recorded(
        payer, world, card_payments, change, amount, currency):
    invoice = world["invoice"]
    intent_id = checkout(payer, invoice)["intent"]
    card_payments.client.v1.payment_intents.update(intent_id, params=change)
    card_payments.pay(intent_id)
    response = deliver(payer, card_payments.inbox.wait_for(SUCCEEDED, intent_id))
    assert response.status_code == 200 and response.get_json()["outcome"] == "flagged"
    unpaid(invoice)
    anomaly = db.session.scalar(select(PaymentAnomaly))
    assert (anomaly.kind, anomaly.amount_cents, anomaly.currency, anomaly.invoice_id) == (
        PaymentAnomalyKind.AMOUNT_MISMATCH, amount, currency, invoice.id)
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "payment.flagged"))
    assert (audit.details["amount_cents"], audit.details["currency"]) == (amount, currency)
    assert audit.details["invoice"] == invoice.number
    alert = db.session.scalar(select(OutboxEmail).where(OutboxEmail.template == "payment_flagged"))
    assert alert.recipient == "commercial@portail-devis.fr"
    rendered = render(alert)
    assert rendered.subject == f"Paiement par carte à vérifier (facture {invoice.number})"
    assert "le montant ou la devise diffère de la facture" in rendered.text and intent_id in rendered.html
    text = page_text(return_page(payer, invoice, intent_id))
    assert "notre équipe doit le vérifier" in text
    unpaid(invoice)
    assert _count(PaymentAnomaly) == 1, "flagged once, however often it is reported"


def test_a_card_payment_of_a_cancelled_invoice_is_flagged(payer, world, card_payments):
    invoice = world["invoice"]
    intent_id = checkout(payer, invoice)["intent"]  # a tab left open…
    billing.issue_credit_note(invoice, actor=world["admin"], reason="Commande annulée")
    db.session.commit()
    card_payments.pay(intent_id)  # …pays after the credit note
    response = deliver(payer, card_payments.inbox.wait_for(SUCCEEDED, intent_id))
    assert response.get_json()["outcome"] == "flagged"
    db.session.expire_all()
    assert db.session.get(Invoice, invoice.id).status == InvoiceStatus.CANCELLED
    assert _count(Payment) == 0
    assert db.session.scalar(select(PaymentAnomaly.kind)) == PaymentAnomalyKind.NOT_PAYABLE


# --- Who may pay what ---------------------------------------------------------------------------


def test_paying_is_refused_for_paid_cancelled_foreign_invoices_and_membres(client, world, card_payments,
                                                                           make):
    invoice = world["invoice"]
    sign_in_client(client, world["users"][ClientRole.MEMBRE])
    for url in (f"{P}/factures/{invoice.id}/payer", f"{P}/factures/{invoice.id}/payer/retour"):
        response = client.get(url, follow_redirects=True)
        assert "Seuls le responsable et les gestionnaires" in page_text(response)
    membre = client.post(f"{P}/factures/{invoice.id}/payer/carte", json={"setup_intent": "seti_x"},
                         headers={"X-CSRFToken": _csrf(client, invoice)})
    assert membre.status_code == 403 and membre.is_json

    other_world = make.world()
    quotes.accept(other_world["quote"], actor=other_world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=other_world["terms"], channel=Channel.PORTAL)
    foreign = db.session.scalar(select(Invoice).where(Invoice.quote_id == other_world["quote"].id))
    db.session.commit()
    sign_in_client(client, world["payer"])
    for url in ("payer", "payer/retour"):
        assert client.get(f"{P}/factures/{foreign.id}/{url}").status_code == 404
    assert client.post(f"{P}/factures/{foreign.id}/payer/carte", json={"setup_intent": "seti_x"},
                       headers={"X-CSRFToken": _csrf(client, invoice)}).status_code == 404

    billing.record_payment(invoice, provider=PaymentProvider.BANK_TRANSFER, provider_reference="VIR-1",
                           amount_cents=invoice.total_ttc_cents, currency="EUR", actor=world["admin"])
    db.session.commit()
    assert "n'est pas à régler" in page_text(client.get(f"{P}/factures/{invoice.id}/payer",
                                                        follow_redirects=True))
    third = make.sent_quote(world["org"], actor=world["admin"], recipient=world["payer"])
    quotes.accept(third, actor=world["payer"], terms_version=current_terms(), channel=Channel.PORTAL)
    cancelled = db.session.scalar(select(Invoice).where(Invoice.quote_id == third.id))
    billing.issue_credit_note(cancelled, actor=world["admin"], reason="Erreur de commande")
    db.session.commit()
    assert "n'est pas à régler" in page_text(client.get(f"{P}/factures/{cancelled.id}/payer",
                                                        follow_redirects=True))
    assert _count(StripePaymentIntent) == 0, "no intent for what cannot be paid"


def _csrf(client, invoice) -> str:
    html = client.get(f"{P}/factures/{invoice.id}").get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', html)
    assert match
    return unescape(match.group(1))
