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
from .errors import log_refusal
from .exceptions import WebhookRejected
from .extensions import csrf, db

blueprint = Blueprint("webhooks", __name__, url_prefix="/webhooks")

MAX_PAYLOAD_BYTES = 512 * 1024  # Stripe's events are a few kilobytes


@blueprint.post("/stripe")
@csrf.exempt
def stripe_events():
    """Receive one Stripe event: `payment_intent.succeeded` records the payment (once)."""
    if (request.content_length or 0) > MAX_PAYLOAD_BYTES:
        return jsonify(error=str(WebhookRejected())), 413
    payload = request.get_data(cache=False)
    try:
        event = payments.verify_event(payload, request.headers.get("Stripe-Signature"))
        outcome = payments.handle_event(event)
    except WebhookRejected as error:
        db.session.rollback()
        log_refusal(error, 400)
        return jsonify(error=str(error)), 400
    db.session.commit()
    return jsonify(received=True, outcome=outcome.value)
