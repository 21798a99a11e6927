"""The portal framed by the example host platform (examples/host_platform), in a real browser.

Two servers: the portal (the `live` fixture: the demo world, SMTP, localstripe) and the example
platform, configured with an API key of the portal. The platform's user signs in to the platform
only; the platform's server asks the portal for a single sign-on URL (POST /api/v1/sessions) and
frames it. Inside the iframe the client accepts a monthly-billing quote (its credits are granted at
once); the platform learns it from the portal's events (« Événements reçus »: quote.accepted, then
credits.granted), then consumes credits through the API (« Utiliser 10 crédits »), and the
portal's Crédits page, reloaded inside the iframe, shows the balance 10 lower; a second use, beyond
the balance, shows the portal's French refusal. A per-order client accepts and pays by card inside
the iframe, and the platform shows the quote accepted, the invoice paid and the credits granted.

Events: the platform's webhook endpoint in the portal subscribes to those three types, its secret
given to the platform; a worker thread delivers them as `flask outbox work` does (local addresses
and plain http allowed, as in development). The test waits for each event on the platform's page,
which shows them as they arrive; it never asks the portal.

Cookies: both servers listen on 127.0.0.1, on different ports. Browsers count the site without the
port, so the iframe is same-site and the portal's `SameSite=Lax` session cookie is sent to it; a
platform on another domain needs COOKIE_SAMESITE=None and COOKIE_SECURE=1 (HTTPS), which
tests/test_framing.py checks. Framing itself is allowed by PORTAL_FRAME_ANCESTORS, set here to the
platform's origin (the portal's default, 'self', would have the browser refuse the frame).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect
from werkzeug.serving import make_server

from examples.host_platform.app import create_app as create_platform
from portal import api_keys
from portal.delivery.webhooks import deliver_pending
from portal.extensions import db
from portal.models import BillingMode, ClientRole
from portal.quotes import LineInput

from .. import factories
from .conftest import QuietHandler, screenshot
from .test_journeys import _pay_by_card

CGV = "J'ai lu et j'accepte les Conditions Générales de Vente"
PLATFORM_EMAIL = "gestionnaire@plateforme-e2e.example"
PLATFORM_PASSWORD = "mot-de-passe-plateforme"
ACCOUNT_ID = "compte-e2e-42"
SCOPES = ["organisations:read", "credits:read", "credits:consume", "sessions:write"]
EVENT_TYPES = ["quote.accepted", "invoice.paid", "credits.granted"]
NUMBER = re.compile(r"FA-\d{4}-\d{5}")


def _quote_for_the_platform(live, billing_mode: BillingMode) -> str:
    """An organisation known to the platform by ACCOUNT_ID, its client user (the platform's user),
    and a quote sent to them granting 15 credits; returns its reference."""
    with live.app.app_context():
        organisation = factories.organisation(name="Laboratoire Plateforme SAS", billing_mode=billing_mode,
                                              external_id=ACCOUNT_ID)
        user = factories.client_user(organisation, ClientRole.GESTIONNAIRE, email=PLATFORM_EMAIL)
        product = factories.product(name="Pack 15 analyses", credits_per_unit=15)
        quote = factories.sent_quote(organisation, recipient=user,
                                     lines=[LineInput(product_id=product.id, quantity=1)])
        reference = quote.reference
        db.session.commit()
        db.session.remove()
    return reference


@pytest.fixture
def monthly_quote(live) -> str:
    return _quote_for_the_platform(live, BillingMode.MONTHLY)


@pytest.fixture
def per_order_quote(live) -> str:
    return _quote_for_the_platform(live, BillingMode.PER_ORDER)


@pytest.fixture
def platform(live) -> Iterator[str]:
    """The example platform on a free port of 127.0.0.1, with a key of the portal and its webhook
    endpoint's secret; the portal lets the platform's origin frame it, and sends it EVENT_TYPES (to
    a local address over http, as in development). Returns the platform's URL."""
    app = create_platform({"PORTAL_URL": live.url, "SECRET_KEY": "plateforme-e2e",
                           "PLATFORM_USERS": f"{PLATFORM_EMAIL}:{PLATFORM_PASSWORD}:{ACCOUNT_ID}"})
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    url = f"http://127.0.0.1:{server.server_port}"
    with live.app.app_context():
        _key, app.config["PORTAL_API_KEY"] = api_keys.create_key("Plateforme d'exemple (e2e)", SCOPES,
                                                                 actor=None)
        endpoint = factories.webhook_endpoint(url=f"{url}/webhooks/portail", event_types=EVENT_TYPES)
        app.config["PORTAL_WEBHOOK_SECRET"] = endpoint.secret
        db.session.commit()
        db.session.remove()
    # Read at each request, or at each delivery.
    live.app.config.update(PORTAL_FRAME_ANCESTORS=url, WEBHOOKS_ALLOW_LOCAL=True, WEBHOOKS_HTTPS_ONLY=False)
    thread = threading.Thread(target=server.serve_forever, name="e2e-platform", daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def webhook_worker(live, platform) -> Iterator[None]:
    """The portal's webhook deliveries made in the background, as `flask outbox work` makes them."""
    stop = threading.Event()

    def work() -> None:
        with live.app.app_context():
            while not stop.is_set():
                deliver_pending(stop=stop)
                db.session.remove()
                stop.wait(0.2)

    thread = threading.Thread(target=work, name="e2e-webhooks", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=15)


def _sign_in_to_the_platform(page: Page, platform: str) -> None:
    page.goto(f"{platform}/connexion")
    page.get_by_label("Adresse email").fill(PLATFORM_EMAIL)
    page.get_by_label("Mot de passe").fill(PLATFORM_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Tableau de bord")).to_be_visible()


def _received(page: Page) -> Locator:
    """The platform's « Événements reçus », as the portal's webhooks fill it."""
    return page.get_by_role("region", name="Événements reçus").get_by_role("list")


def test_the_platform_frames_the_portal_and_consumes_its_credits(live, platform, webhook_worker,
                                                                 monthly_quote, new_context):
    page = new_context().new_page()
    _sign_in_to_the_platform(page, platform)
    portal = page.frame_locator("iframe[title='Espace client']")
    # Single sign-on: the iframe opens the portal signed in, on its Crédits page, with nothing yet.
    expect(portal.get_by_role("heading", name="Mon Organisation › Crédits")).to_be_visible()
    expect(portal.get_by_text(re.compile(r"^Solde : 0 crédits?$"))).to_be_visible()
    expect(page.locator("#balance")).to_have_text("Solde : 0 crédit")

    page.get_by_role("link", name="Devis", exact=True).click()  # the platform opens the portal's quotes
    expect(portal.get_by_role("heading", name="Mon Organisation › Devis")).to_be_visible()
    portal.get_by_role("link", name=monthly_quote).first.click()
    expect(portal.get_by_text("Facturation consolidée mensuelle").first).to_be_visible()
    portal.get_by_label(CGV).check()
    portal.get_by_role("button", name="Valider", exact=True).click()
    expect(portal.get_by_text("15 crédits ont été ajoutés à votre solde.")).to_be_visible()
    # The platform learns it from the portal's events, without asking: the quote, then the credits.
    expect(_received(page)).to_contain_text(f"Devis accepté : {monthly_quote}")
    expect(_received(page)).to_contain_text(f"Crédits accordés : 15 crédits, devis {monthly_quote}")
    portal.get_by_role("link", name="Voir mes crédits").click()
    expect(portal.get_by_text("Solde : 15 crédits")).to_be_visible()

    page.get_by_role("button", name="Utiliser 10 crédits").click()  # through the API, server side
    expect(page.get_by_role("status")).to_contain_text("10 crédits utilisés")
    expect(page.get_by_role("status")).to_contain_text("solde restant 5 crédits.")
    expect(page.locator("#balance")).to_have_text("Solde : 5 crédits")
    portal.get_by_role("link", name="Crédits", exact=True).click()  # the portal's own page, reloaded
    expect(portal.get_by_text("Solde : 5 crédits")).to_be_visible()
    expect(portal.get_by_role("listitem").filter(has_text="-10")).to_contain_text(
        "Analyse lancée depuis la plateforme d'exemple")

    page.get_by_role("button", name="Utiliser 10 crédits").click()  # beyond the balance: the 409
    expect(page.get_by_role("alert")).to_have_text(
        "Crédits non utilisés : Solde de crédits insuffisant (solde disponible : 5).")
    expect(page.locator("#balance")).to_have_text("Solde : 5 crédits")
    screenshot(page, "plateforme-iframe-credits")


def test_the_platform_is_told_of_a_quote_accepted_and_paid_by_card_in_the_frame(
        live, platform, webhook_worker, per_order_quote, new_context):
    page = new_context().new_page()
    _sign_in_to_the_platform(page, platform)
    expect(_received(page)).to_have_text("Aucun événement reçu pour l'instant.")
    portal = page.frame_locator("iframe[title='Espace client']")
    page.get_by_role("link", name="Devis", exact=True).click()
    portal.get_by_role("link", name=per_order_quote).first.click()
    portal.get_by_label(CGV).check()
    portal.get_by_role("button", name="Valider", exact=True).click()
    heading = portal.get_by_role("heading", name=re.compile(r"^Règlement de la facture FA-"))
    number = NUMBER.search(heading.inner_text()).group(0)
    expect(_received(page)).to_contain_text(f"Devis accepté : {per_order_quote}")

    _pay_by_card(portal)  # per order: the credits come with the payment
    expect(portal.get_by_text(f"Paiement reçu, merci : la facture {number} est réglée.")).to_be_visible()
    expect(_received(page)).to_contain_text(f"Facture payée : {number}")
    expect(_received(page)).to_contain_text(f"Crédits accordés : 15 crédits, devis {per_order_quote}")
    expect(_received(page).get_by_role("listitem")).to_have_count(3)  # each event once
    screenshot(page, "plateforme-evenements-recus")
