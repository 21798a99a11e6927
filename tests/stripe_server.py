"""localstripe for the tests: a real server on 127.0.0.1 (a subprocess, started once per session),
whose signed webhooks land in an inbox in this process, so that each test decides when, how often
and in which order the app receives them.

`LocalStripe.pay` and `LocalStripe.collect_card` do with stripe-python what Stripe.js does in a
browser (a later issue drives the real page with Playwright).
"""

from __future__ import annotations

import http.server
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import stripe

from portal.devserver import free_port, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"  # localstripe declines it when the card is collected (attached)
CARD_CHARGE_DECLINED = "4000000000000341"  # localstripe declines it when the payment is confirmed


@dataclass(frozen=True)
class Delivery:
    """One webhook request exactly as localstripe sent it."""

    body: bytes
    signature: str

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def headers(self) -> dict[str, str]:
        return {"Stripe-Signature": self.signature, "Content-Type": "application/json"}


class WebhookInbox:
    """An HTTP server on 127.0.0.1 keeping every webhook localstripe delivers."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._changed = threading.Condition()
        inbox = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with inbox._changed:
                    inbox.deliveries.append(Delivery(body, self.headers.get("Stripe-Signature", "")))
                    inbox._changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/webhooks/stripe"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, event_type: str, intent_id: str, timeout: float = 15.0) -> Delivery:
        """The delivery of `event_type` about PaymentIntent `intent_id` (localstripe waits 1 s)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for delivery in self.deliveries:
                    event = delivery.event
                    if event["type"] == event_type and event["data"]["object"]["id"] == intent_id:
                        return delivery
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {event_type} webhook for {intent_id}")
                self._changed.wait(remaining)


class LocalStripe:
    """localstripe on 127.0.0.1 with its webhooks going to a `WebhookInbox`."""

    secret_key = "sk_test_portail_devis"
    publishable_key = "pk_test_portail_devis"

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.api_base = f"http://127.0.0.1:{self.port}"
        self.js_url = f"{self.api_base}/js.stripe.com/v3/"
        self.webhook_secret = f"whsec_{secrets.token_hex(24)}"
        self.inbox = WebhookInbox()
        self._log_path = log_path
        self._process: subprocess.Popen | None = None
        self.client = stripe.StripeClient(self.secret_key, base_addresses={"api": self.api_base})

    def start(self) -> None:
        self.inbox.start()
        env = {**os.environ, "STRIPE_WEBHOOK_SECRET": self.webhook_secret}
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "portal.devserver", "localstripe", "--port", str(self.port),
                 "--webhook-url", self.inbox.url],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        if not wait_until_up(self.js_url, timeout=30):
            self.stop()
            raise RuntimeError(f"localstripe did not start: {self._log_path.read_text()}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self.inbox.stop()

    def config(self) -> dict[str, Any]:
        """The app settings pointing at this localstripe."""
        return {"STRIPE_API_BASE": self.api_base, "STRIPE_JS_URL": self.js_url,
                "STRIPE_SECRET_KEY": self.secret_key, "STRIPE_PUBLISHABLE_KEY": self.publishable_key,
                "STRIPE_WEBHOOK_SECRET": self.webhook_secret}

    # --- What Stripe.js does in the browser ---------------------------------------------------

    def pay(self, intent_id: str, number: str = CARD_OK) -> dict[str, Any]:
        """Confirm a PaymentIntent with a card, as Stripe.js's confirmCardPayment does on Stripe
        (raises stripe.CardError for a declined card)."""
        method = self.client.v1.payment_methods.create(params={"type": "card", "card": _card(number)})
        self.client.v1.payment_intents.update(intent_id, params={"payment_method": method.id})
        return self.client.v1.payment_intents.confirm(intent_id).to_dict()

    def collect_card(self, setup_secret: str, number: str = CARD_OK) -> str:
        """Collect a card on the page's SetupIntent, as confirmCardSetup does (localstripe's
        Stripe.js); returns the SetupIntent id the page then posts (stripe.CardError if declined)."""
        setup_id = setup_secret.split("_secret_")[0]
        self.client.v1.setup_intents.confirm(
            setup_id, params={"payment_method_data": {"type": "card", "card": _card(number)}})
        return setup_id

    def signature(self, body: bytes, *, timestamp: int | None = None, secret: str | None = None) -> str:
        """A Stripe-Signature header for `body`, as Stripe computes it."""
        return stripe.WebhookSignature.generate_signature_header(
            body.decode(), secret or self.webhook_secret, timestamp)


def _card(number: str) -> dict[str, Any]:
    return {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory):
    """The session's localstripe server."""
    server = LocalStripe(tmp_path_factory.mktemp("localstripe") / "localstripe.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def card_payments(app, localstripe, monkeypatch):
    """Card payments on: the app's Stripe settings point at the session's localstripe."""
    for key, value in localstripe.config().items():
        monkeypatch.setitem(app.config, key, value)
    return localstripe
