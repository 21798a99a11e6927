"""POST /webhooks/stripe: Stripe's events, verified on the raw body, processed once, answered in JSON.

The only route exempt from CSRF: the `Stripe-Signature` header, an HMAC of the raw body with the
webhook secret, is what authenticates the caller; its timestamp must be within
STRIPE_WEBHOOK_TOLERANCE of now, before (a replay) or after (see `payments.verify_event`).
A verified event is always acknowledged (2xx), even when the portal refuses or flags it, so that
Stripe does not retry what cannot change; an unverified one gets 400 and changes nothing.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from . import payments
from .exceptions import WebhookRejected
from .extensions import csrf
from .transaction import transactional

blueprint = Blueprint("webhooks", __name__, url_prefix="/webhooks")

MAX_PAYLOAD_BYTES = 512 * 1024  # Stripe's events are a few kilobytes


@blueprint.post("/stripe")
@csrf.exempt
@transactional
def stripe_events():
    """Receive one Stripe event: `payment_intent.succeeded` records the payment (once)."""
    if (request.content_length or 0) > MAX_PAYLOAD_BYTES:
        return jsonify(error=str(WebhookRejected())), 413
    payload = request.get_data(cache=False)
    # A refusal (WebhookRejected, 400) is answered in JSON by the error handler, rolled back.
    event = payments.verify_event(payload, request.headers.get("Stripe-Signature"))
    outcome = payments.handle_event(event)
    return jsonify(received=True, outcome=outcome.value)
