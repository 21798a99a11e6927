"""The portal framed by the example host platform (examples/host_platform), in a real browser.

Two servers: the portal (the `live` fixture: the demo world, SMTP, localstripe) and the example
platform, configured with an API key of the portal. The platform's user signs in to the platform
only; the platform's server asks the portal for a single sign-on URL (POST /api/v1/sessions) and
frames it. Inside the iframe the client accepts a monthly-billing quote (its credits are granted at
once); the platform then consumes credits through the API (« Utiliser 10 crédits »), and the
portal's Crédits page, reloaded inside the iframe, shows the balance 10 lower; a second use, beyond
the balance, shows the portal's French refusal.

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
from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from examples.host_platform.app import create_app as create_platform
from portal import api_keys
from portal.extensions import db
from portal.models import BillingMode, ClientRole
from portal.quotes import LineInput

from .. import factories
from .conftest import QuietHandler, screenshot

CGV = "J'ai lu et j'accepte les Conditions Générales de Vente"
PLATFORM_EMAIL = "gestionnaire@plateforme-e2e.example"
PLATFORM_PASSWORD = "mot-de-passe-plateforme"
ACCOUNT_ID = "compte-e2e-42"
SCOPES = ["organisations:read", "credits:read", "credits:consume", "sessions:write"]


@pytest.fixture
def monthly_quote(live) -> str:
    """A monthly-billing organisation known to the platform by ACCOUNT_ID, its client user (the
    platform's user), and a quote sent to them granting 15 credits; returns its reference."""
    with live.app.app_context():
        organisation = factories.organisation(name="Laboratoire Plateforme SAS",
                                              billing_mode=BillingMode.MONTHLY, external_id=ACCOUNT_ID)
        user = factories.client_user(organisation, ClientRole.GESTIONNAIRE, email=PLATFORM_EMAIL)
        product = factories.product(name="Pack 15 analyses", credits_per_unit=15)
        quote = factories.sent_quote(organisation, recipient=user,
                                     lines=[LineInput(product_id=product.id, quantity=1)])
        reference = quote.reference
        db.session.commit()
        db.session.remove()
    return reference


@pytest.fixture
def platform(live) -> Iterator[str]:
    """The example platform on a free port of 127.0.0.1, with a key of the portal; the portal lets
    the platform's origin frame it. Returns the platform's URL."""
    with live.app.app_context():
        _key, secret = api_keys.create_key("Plateforme d'exemple (e2e)", SCOPES, actor=None)
        db.session.commit()
        db.session.remove()
    app = create_platform({"PORTAL_URL": live.url, "PORTAL_API_KEY": secret, "SECRET_KEY": "plateforme-e2e",
                           "PLATFORM_USERS": f"{PLATFORM_EMAIL}:{PLATFORM_PASSWORD}:{ACCOUNT_ID}"})
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    url = f"http://127.0.0.1:{server.server_port}"
    live.app.config["PORTAL_FRAME_ANCESTORS"] = url  # read at each request
    thread = threading.Thread(target=server.serve_forever, name="e2e-platform", daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _sign_in_to_the_platform(page: Page, platform: str) -> None:
    page.goto(f"{platform}/connexion")
    page.get_by_label("Adresse email").fill(PLATFORM_EMAIL)
    page.get_by_label("Mot de passe").fill(PLATFORM_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Tableau de bord")).to_be_visible()


def test_the_platform_frames_the_portal_and_consumes_its_credits(live, platform, monthly_quote, new_context):
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
        "Crédits non utilisés : Solde de crédits insuffisant : 5 crédit(s) disponible(s).")
    expect(page.locator("#balance")).to_have_text("Solde : 5 crédits")
    screenshot(page, "plateforme-iframe-credits")
