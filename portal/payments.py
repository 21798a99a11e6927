"""Card payments through Stripe: the only module that imports `stripe`.

The payment page, its return page, the webhook and `flask payments reconcile` all end in `settle`,
which records a succeeded PaymentIntent through `billing.record_payment` (once: the intent id is
the payment's provider reference) or, when it cannot be recorded, flags it for staff. Functions
take plain data (no request), flush only, and leave the commit to their caller.

`STRIPE_API_BASE` and `STRIPE_JS_URL` are settings, so the same code talks to Stripe or to
localstripe (`make run`, the tests).

One module on purpose, longer than 450 lines: it is the only one that imports `stripe`, so every
Stripe call, its errors and the webhook's signature check stay together, and the payment page, the
webhook and reconciliation all end in `settle`, which a split would have to make public.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import stripe
from flask import current_app
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from . import audit, billing, outbox
from .exceptions import (
    CardPaymentUnavailable,
    InvoiceNotPayable,
    PaymentIntentRefused,
    PaymentMismatch,
    WebhookRejected,
)
from .extensions import db
from .models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Payment,
    PaymentAnomaly,
    PaymentAnomalyKind,
    PaymentProvider,
    ProcessedStripeEvent,
    StripePaymentIntent,
)

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.stripe.com"
SUCCEEDED = "payment_intent.succeeded"
FAILED = "payment_intent.payment_failed"
# An intent the page may still confirm. One with a failed attempt is replaced rather than reused:
# localstripe cannot confirm it again, and a fresh intent is as good on Stripe.
REUSABLE = {"requires_payment_method", "requires_confirmation"}
CANCELLABLE = {"requires_payment_method", "requires_confirmation", "requires_action"}
MISSING = "missing"  # our status for an intent Stripe does not know


class Outcome(enum.StrEnum):
    """What became of a PaymentIntent presented to the portal."""

    RECORDED = "recorded"
    ALREADY_RECORDED = "already_recorded"
    FLAGGED = "flagged"  # money taken but not recorded: staff check it
    REFUSED = "refused"  # not an intent of this invoice: nothing recorded
    DECLINED = "declined"
    PROCESSING = "processing"
    INCOMPLETE = "incomplete"
    IGNORED = "ignored"
    DUPLICATE = "duplicate"
    ALREADY_PAID = "already_paid"  # the invoice was paid meanwhile: nothing left to confirm


# The outcomes after which the invoice is paid by the card (or was already paid): the page says so.
PAID_OUTCOMES = {Outcome.RECORDED, Outcome.ALREADY_RECORDED, Outcome.ALREADY_PAID}


# Anomalies where the intent does not designate a payable invoice of ours: the payment is refused.
REFUSALS = {PaymentAnomalyKind.UNKNOWN_INVOICE, PaymentAnomalyKind.WRONG_INVOICE,
            PaymentAnomalyKind.UNKNOWN_INTENT}


# --- Configuration and the Stripe client ------------------------------------------------------


def enabled() -> bool:
    """Card payments are offered when a Stripe secret key is configured."""
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))


def confirms_on_server() -> bool:
    """Whether the server, not Stripe.js, confirms the card payment.

    localstripe's Stripe.js ignores the card passed to `confirmCardPayment` and only runs the 3-D
    Secure step of an intent already confirmed (adrienverge/localstripe#253). Against anything but
    api.stripe.com the page therefore collects the card with `confirmCardSetup` and the server
    confirms the PaymentIntent with it; `confirmCardPayment` then handles 3-D Secure, as on Stripe.
    """
    return current_app.config["STRIPE_API_BASE"].rstrip("/") != DEFAULT_API_BASE


def browser_settings() -> dict[str, str]:
    """What the payment page hands to Stripe.js: the publishable key and the script's URL."""
    config = current_app.config
    return {"publishable_key": config.get("STRIPE_PUBLISHABLE_KEY") or "", "js_url": config["STRIPE_JS_URL"]}


_clients: dict[tuple[str, str, int], stripe.StripeClient] = {}


def _client() -> stripe.StripeClient:
    config = current_app.config
    if not config.get("STRIPE_SECRET_KEY"):
        raise CardPaymentUnavailable()
    key = (config["STRIPE_SECRET_KEY"], config["STRIPE_API_BASE"].rstrip("/"), int(config["STRIPE_TIMEOUT"]))
    client = _clients.get(key)
    if client is None:
        client = stripe.StripeClient(key[0], base_addresses={"api": key[1]}, max_network_retries=1,
                                     http_client=stripe.RequestsClient(timeout=key[2]))
        _clients[key] = client
    return client


def _call(method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """One Stripe API call, as a plain dict; Stripe unreachable or refusing → CardPaymentUnavailable."""
    try:
        return method(*args, **kwargs).to_dict()
    except stripe.StripeError as error:
        log.warning("Stripe API call failed: %s", error)
        raise CardPaymentUnavailable() from error


@dataclass(frozen=True)
class Intent:
    """The fields of a PaymentIntent the portal uses, as plain data."""

    id: str
    status: str
    amount_cents: int
    currency: str
    metadata: dict[str, str]
    client_secret: str | None = None
    error_code: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Intent:
        """From the API's or an event's PaymentIntent object; ValueError if it is not one."""
        if not isinstance(data, dict) or data.get("object") != "payment_intent":
            raise ValueError("not a PaymentIntent")
        # What was actually received, once there is something (Stripe; localstripe has only `amount`).
        received = data.get("amount_received")
        succeeded = data.get("status") == "succeeded" and received is not None
        amount = received if succeeded else data.get("amount")
        if isinstance(amount, str) and amount.isdecimal():  # localstripe keeps an updated amount as text
            amount = int(amount)
        error = data.get("last_payment_error")
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        if not isinstance(data.get("id"), str) or not isinstance(amount, int):
            raise ValueError("PaymentIntent without id or amount")
        return cls(id=data["id"], status=str(data.get("status") or ""), amount_cents=amount,
                   currency=str(data.get("currency") or "").upper(),
                   metadata={str(key): str(value) for key, value in metadata.items()},
                   client_secret=data.get("client_secret"),
                   error_code=(error.get("code") or "error") if isinstance(error, dict) else None)


# --- The payment page: one PaymentIntent per attempt ------------------------------------------


@dataclass(frozen=True)
class Checkout:
    """An intent for the page to confirm, or the outcome of one that no longer needs the page."""

    outcome: Outcome | None = None
    intent_id: str | None = None
    client_secret: str | None = None
    amount_cents: int = 0
    currency: str = "EUR"
    setup_secret: str | None = None
    declined: bool = False


def amount_due(invoice: Invoice) -> int:
    """What remains to pay on an invoice: its total less the payments recorded."""
    paid = db.session.scalar(
        select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(Payment.invoice_id == invoice.id)
    )
    return invoice.total_ttc_cents - int(paid)  # PostgreSQL sums a BIGINT as NUMERIC


def card_checkout(invoice: Invoice) -> Checkout:
    """The intent the payment page confirms: the invoice's open one, else a new one for the amount
    due (computed here, never taken from the browser). An intent that already succeeded (paid in
    another tab, webhook not arrived yet) is settled instead."""
    result = _open_intent(invoice)
    if isinstance(result, Outcome):
        return Checkout(outcome=result)
    setup_secret = None
    if confirms_on_server():
        setup = _call(_client().v1.setup_intents.create,
                      params={"usage": "on_session", "metadata": {"invoice_id": str(invoice.id)}})
        setup_secret = setup["client_secret"]
    return Checkout(intent_id=result.id, client_secret=result.client_secret, amount_cents=result.amount_cents,
                    currency=result.currency, setup_secret=setup_secret)


def _open_intent(invoice: Invoice) -> Intent | Outcome:
    if not invoice.is_payable:
        raise InvoiceNotPayable()
    link = _latest_link(invoice)
    intent = _retrieve(link) if link is not None else None
    if intent is not None:
        if intent.status in ("succeeded", "processing"):
            return settle(intent, source="page", invoice=invoice)
        if (intent.status in REUSABLE and intent.error_code is None
                and (intent.amount_cents, intent.currency) == (amount_due(invoice), invoice.currency)):
            return intent
        if intent.status in CANCELLABLE:
            _call(_client().v1.payment_intents.cancel, intent.id)
            link.status = "canceled"
    return _create_intent(invoice, attempt=link.attempt + 1 if link else 1)


def _latest_link(invoice: Invoice) -> StripePaymentIntent | None:
    return db.session.scalar(select(StripePaymentIntent).where(StripePaymentIntent.invoice_id == invoice.id)
                             .order_by(StripePaymentIntent.attempt.desc()).limit(1))


def _link(intent_id: str) -> StripePaymentIntent | None:
    return db.session.scalar(select(StripePaymentIntent).where(StripePaymentIntent.intent_id == intent_id))


def _retrieve(link: StripePaymentIntent) -> Intent | None:
    """The intent as Stripe knows it now (its status is remembered for reconcile); None if Stripe
    does not know it (another account's keys, localstripe restarted without its state)."""
    try:
        intent = Intent.from_dict(_client().v1.payment_intents.retrieve(link.intent_id).to_dict())
    except stripe.InvalidRequestError as error:
        if error.http_status != 404:
            log.warning("Stripe API call failed: %s", error)
            raise CardPaymentUnavailable() from error
        log.warning("PaymentIntent %s unknown to Stripe: set aside", link.intent_id)
        link.status = MISSING
        return None
    except stripe.StripeError as error:
        log.warning("Stripe API call failed: %s", error)
        raise CardPaymentUnavailable() from error
    link.status = intent.status
    return intent


def _create_intent(invoice: Invoice, *, attempt: int) -> Intent:
    params = {
        "amount": amount_due(invoice),
        "currency": invoice.currency.lower(),
        "payment_method_types": ["card"],
        "metadata": {"invoice_id": str(invoice.id), "invoice_number": invoice.number,
                     "organisation_id": str(invoice.organisation_id)},
    }
    # Deterministic: two page views racing for the same attempt get the same intent from Stripe.
    key = f"portail-devis:{invoice.number}:{invoice.id}:intent:{attempt}"
    intent = Intent.from_dict(_call(_client().v1.payment_intents.create, params=params,
                                    options={"idempotency_key": key}))
    link = StripePaymentIntent(invoice_id=invoice.id, attempt=attempt, intent_id=intent.id,
                               amount_cents=intent.amount_cents, currency=intent.currency,
                               status=intent.status)
    try:
        with db.session.begin_nested():
            db.session.add(link)
    except IntegrityError:
        # A concurrent page view stored this attempt first: use its intent (ours is never shown).
        existing = db.session.scalar(select(StripePaymentIntent).where(
            StripePaymentIntent.invoice_id == invoice.id, StripePaymentIntent.attempt == attempt))
        if existing is None:
            raise
        intent = _retrieve(existing)
        if intent is None:
            raise CardPaymentUnavailable() from None
    return intent


def confirm_on_server(invoice: Invoice, setup_intent_id: str) -> Checkout:
    """Confirm the invoice's intent with the card the page collected through a SetupIntent
    (see `confirms_on_server`); a declined card leaves the invoice unpaid (`declined`).

    Several tabs of the page confirm the same intent: the first one's payment is every tab's
    outcome (`ALREADY_PAID`, or the intent settled), never a refusal of the others."""
    client = _client()
    setup = _call(client.v1.setup_intents.retrieve, setup_intent_id)
    if (setup.get("metadata") or {}).get("invoice_id") != str(invoice.id):
        raise PaymentIntentRefused()
    if invoice.kind == InvoiceKind.INVOICE and invoice.status == InvoiceStatus.PAID:
        return _already_paid(invoice)  # by another tab, the webhook or a transfer: no second charge
    result = _open_intent(invoice)
    if isinstance(result, Outcome):  # the intent already succeeded: another tab paid it
        return _settled(result, _latest_link(invoice).intent_id)
    if setup.get("status") != "succeeded" or not setup.get("payment_method"):
        return Checkout(intent_id=result.id, client_secret=result.client_secret, declined=True)
    link = _link(result.id)
    try:
        client.v1.payment_intents.update(result.id, params={"payment_method": setup["payment_method"]})
        intent = Intent.from_dict(client.v1.payment_intents.confirm(result.id).to_dict())
    except stripe.CardError as error:
        log.info("Card declined for PaymentIntent %s: %s", result.id, error.code)
        link.status = "requires_payment_method"
        return Checkout(intent_id=result.id, client_secret=result.client_secret, declined=True)
    except stripe.StripeError as error:
        # Stripe refuses to update or confirm an intent another tab confirmed since we looked:
        # what that tab did is this one's outcome too.
        intent = _retrieve(link)
        if intent is None or intent.status not in ("succeeded", "processing"):
            log.warning("Stripe API call failed: %s", error)
            raise CardPaymentUnavailable() from error
        log.info("PaymentIntent %s confirmed by another request: settled", intent.id)
        return _settled(settle(intent, source="page", invoice=invoice), intent.id)
    link.status = intent.status
    outcome = settle(intent, source="page", invoice=invoice) if intent.status != "requires_action" else None
    return Checkout(outcome=outcome, intent_id=intent.id, client_secret=intent.client_secret,
                    amount_cents=intent.amount_cents, currency=intent.currency,
                    declined=outcome == Outcome.DECLINED)


def _already_paid(invoice: Invoice) -> Checkout:
    link = _latest_link(invoice)
    return Checkout(outcome=Outcome.ALREADY_PAID, intent_id=link.intent_id if link else None)


def _settled(outcome: Outcome, intent_id: str) -> Checkout:
    """The outcome of an intent settled without this request confirming it (another tab did)."""
    return Checkout(outcome=outcome, intent_id=intent_id, declined=outcome == Outcome.DECLINED)


def settle_return(invoice: Invoice, intent_id: str | None) -> Outcome:
    """The return to the payment page: ask Stripe about the invoice's intent and settle it."""
    link = _link(intent_id) if intent_id else _latest_link(invoice)
    if link is None or link.invoice_id != invoice.id:
        log.warning("PaymentIntent %r presented on the return page of invoice %s: refused",
                    intent_id, invoice.id)
        return Outcome.REFUSED if intent_id else Outcome.INCOMPLETE
    intent = _retrieve(link)
    return settle(intent, source="return", invoice=invoice) if intent else Outcome.INCOMPLETE


# --- Settling: the one path to a recorded card payment ----------------------------------------


def settle(intent: Intent, *, source: str, invoice: Invoice | None = None,
           event_id: str | None = None) -> Outcome:
    """Record a succeeded intent once through `billing.record_payment`, or flag it for staff when
    it cannot be recorded; any other status changes nothing. `invoice`: the one the caller expects."""
    link = _link(intent.id)
    if invoice is not None and (link is None or link.invoice_id != invoice.id):
        return Outcome.REFUSED
    if intent.status != "succeeded":
        if intent.status == "processing":
            return Outcome.PROCESSING
        return Outcome.DECLINED if intent.error_code else Outcome.INCOMPLETE
    if link is None and "invoice_id" not in intent.metadata:
        log.info("PaymentIntent %s was not created by the portal: ignored", intent.id)
        return Outcome.IGNORED
    target, problem = _target(intent, link)
    if problem is None:
        if _recorded(intent):
            return Outcome.ALREADY_RECORDED
        if target.status != InvoiceStatus.ISSUED:
            problem = PaymentAnomalyKind.NOT_PAYABLE
        elif (intent.amount_cents, intent.currency) != (amount_due(target), target.currency):
            problem = PaymentAnomalyKind.AMOUNT_MISMATCH
    if problem is None:
        try:
            with db.session.begin_nested():
                billing.record_payment(target, provider=PaymentProvider.STRIPE, provider_reference=intent.id,
                                       amount_cents=intent.amount_cents, currency=intent.currency)
            return Outcome.RECORDED
        except InvoiceNotPayable:  # paid or cancelled meanwhile by someone else
            problem = PaymentAnomalyKind.NOT_PAYABLE
        except PaymentMismatch:
            problem = PaymentAnomalyKind.AMOUNT_MISMATCH
    if problem not in REFUSALS and _recorded(intent):
        return Outcome.ALREADY_RECORDED  # recorded by a concurrent delivery since we looked
    flag(problem, intent, invoice=target, source=source, event_id=event_id)
    return Outcome.REFUSED if problem in REFUSALS else Outcome.FLAGGED


def _recorded(intent: Intent) -> bool:
    return db.session.scalar(select(Payment.id).where(Payment.provider_reference == intent.id)) is not None


def _target(intent: Intent, link: StripePaymentIntent | None) -> tuple[Any, PaymentAnomalyKind | None]:
    """The invoice a succeeded intent pays, or the reason it designates none of ours."""
    raw = intent.metadata.get("invoice_id", "")
    named = db.session.get(Invoice, int(raw)) if raw.isdecimal() else None
    if named is not None and named.kind != InvoiceKind.INVOICE:
        named = None
    if named is None:
        return (link.invoice if link else None), PaymentAnomalyKind.UNKNOWN_INVOICE
    if link is None:
        return named, PaymentAnomalyKind.UNKNOWN_INTENT
    if link.invoice_id != named.id:
        return link.invoice, PaymentAnomalyKind.WRONG_INVOICE
    return named, None


def flag(kind: PaymentAnomalyKind, intent: Intent, *, invoice: Invoice | None, source: str,
         event_id: str | None = None) -> PaymentAnomaly:
    """Record, once per intent and kind, a card payment staff must check: audit event + email."""
    log.warning("Stripe PaymentIntent %s not recorded: %s (%s)", intent.id, kind.value, source)
    query = select(PaymentAnomaly).where(PaymentAnomaly.intent_id == intent.id, PaymentAnomaly.kind == kind)
    existing = db.session.scalar(query)
    if existing is not None:
        return existing
    anomaly = PaymentAnomaly(
        kind=kind, intent_id=intent.id, invoice_id=invoice.id if invoice else None,
        organisation_id=invoice.organisation_id if invoice else None, amount_cents=intent.amount_cents,
        currency=intent.currency, event_id=event_id,
        details={"source": source, "metadata": intent.metadata,
                 "invoice_due_cents": amount_due(invoice) if invoice else None},
    )
    try:
        with db.session.begin_nested():
            db.session.add(anomaly)
    except IntegrityError:  # flagged concurrently by another delivery
        return db.session.scalar(query)
    audit.record("payment.flagged", anomaly, actor=None, organisation_id=anomaly.organisation_id,
                 kind=kind, intent=intent.id, invoice=invoice.number if invoice else None,
                 amount_cents=intent.amount_cents, currency=intent.currency, source=source)
    outbox.enqueue(recipient=current_app.config["STAFF_NOTIFICATION_EMAIL"], template="payment_flagged",
                   context={"anomaly_id": anomaly.id}, dedupe_key=f"payment_flagged:{anomaly.id}")
    return anomaly


# --- Webhooks ---------------------------------------------------------------------------------


def verify_event(payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event of a delivery whose `Stripe-Signature` matches the raw body within the tolerance."""
    config = current_app.config
    secret = config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        log.error("Stripe webhook received but STRIPE_WEBHOOK_SECRET is not set: refused")
        raise WebhookRejected()
    tolerance = max(1, int(config["STRIPE_WEBHOOK_TOLERANCE"]))
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance)
        # The library refuses only old signatures; one dated ahead of the tolerance is as suspect
        # (prepared in advance to be replayed later, or a clock far off): refused too.
        if _signed_at(signature) > time.time() + tolerance:
            raise ValueError("Stripe-Signature timestamp too far in the future")
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError, RecursionError) as error:
        # ValueError covers UnicodeDecodeError; RecursionError is "[[[[…" nested past Python's
        # limit. The view logs the refusal as one warning line; the reason is detail.
        log.info("Stripe webhook refused: %s", type(error).__name__)
        raise WebhookRejected() from error
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event["id"] \
            or not isinstance(event.get("type"), str):
        raise WebhookRejected()
    return event


def _signed_at(signature: str) -> int:
    """The `t=` timestamp of a `Stripe-Signature` header the library has just verified."""
    pairs = (item.partition("=") for item in signature.split(","))
    return int(next((value for key, _, value in pairs if key == "t"), ""))  # else ValueError: refused


def handle_event(event: dict[str, Any]) -> Outcome:
    """Process a verified event once: a new delivery of an event id already processed changes nothing.
    Either order of `succeeded` and `payment_failed` is fine: a failure never undoes a payment."""
    intent = None
    if event["type"] in (SUCCEEDED, FAILED):
        data = event.get("data")
        try:
            intent = Intent.from_dict(data.get("object") if isinstance(data, dict) else None)
        except ValueError as error:
            raise WebhookRejected() from error
    marker = ProcessedStripeEvent(event_id=event["id"][:255], event_type=event["type"][:100])
    try:
        with db.session.begin_nested():
            db.session.add(marker)
    except IntegrityError:
        return Outcome.DUPLICATE
    if intent is None:
        outcome = Outcome.IGNORED
    elif event["type"] == SUCCEEDED:
        outcome = settle(intent, source="webhook", event_id=event["id"])
    else:
        outcome = _payment_failed(intent)
    marker.outcome = outcome.value
    return outcome


def _payment_failed(intent: Intent) -> Outcome:
    link = _link(intent.id)
    if link is None:
        return Outcome.IGNORED
    audit.record("payment.failed", link.invoice, actor=None, organisation_id=link.invoice.organisation_id,
                 intent=intent.id, code=intent.error_code)
    return Outcome.DECLINED


# --- Reconciliation ---------------------------------------------------------------------------


def reconcile_candidates() -> list[tuple[int, str]]:
    """(row id, intent id) of the intents of issued invoices not known to be cancelled: those whose
    webhook may never have come."""
    rows = db.session.execute(
        select(StripePaymentIntent.id, StripePaymentIntent.intent_id)
        .join(Invoice, Invoice.id == StripePaymentIntent.invoice_id)
        .where(Invoice.is_payable,
               or_(StripePaymentIntent.status.is_(None),
                   StripePaymentIntent.status.not_in(("canceled", MISSING))))
        .order_by(StripePaymentIntent.id)
    )
    return [(row.id, row.intent_id) for row in rows]


def reconcile_intent(link_id: int) -> Outcome:
    """Ask Stripe about one intent and settle it; CardPaymentUnavailable if Stripe cannot answer."""
    intent = _retrieve(db.session.get(StripePaymentIntent, link_id))
    return settle(intent, source="reconcile") if intent else Outcome.IGNORED
