"""The example host platform (examples/host_platform) against the portal served over real HTTP: its
own sign-in, the organisation found by its account id (`external_id`), the balance, the single
sign-on URL it frames, « Utiliser 10 crédits » consuming once per form even when sent twice, and
the portal's French refusals shown as they come. The browser journey:
tests/e2e/test_embedded_platform.py."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from examples.host_platform.app import create_app as create_platform
from portal import api_keys, credits
from portal.extensions import db
from portal.models import ClientRole, CreditEntry

SCOPES = ["organisations:read", "credits:read", "credits:consume", "sessions:write"]
PASSWORD = "mot-de-passe-plateforme"
FIELD = re.compile(r'name="(csrf_token|use_id)" value="([^"]+)"')


@pytest.fixture
def portal_url(app, monkeypatch) -> Iterator[str]:
    """The suite's app on a free port of 127.0.0.1 (the platform calls it over HTTP)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setitem(app.config, "PORTAL_BASE_URL", url)  # the single sign-on URL is absolute
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def platform(portal_url, make):
    """The platform with a key of the portal; its one user is the client user of an organisation
    known to the platform as account "compte-7" and holding 15 credits."""
    world = make.world()
    world["org"].external_id = "compte-7"
    user = world["users"][ClientRole.GESTIONNAIRE]
    credits.adjust_credits(world["org"], 15, actor=world["admin"], reason="Crédits d'essai")
    _key, secret = api_keys.create_key("Plateforme d'exemple", SCOPES, actor=None)
    db.session.commit()
    app = create_platform({"PORTAL_URL": portal_url, "PORTAL_API_KEY": secret, "SECRET_KEY": "test",
                           "PLATFORM_USERS": f"{user.email}:{PASSWORD}:compte-7"})
    browser = app.test_client()
    form = _fields(browser.get("/connexion"))
    browser.post("/connexion", data={**form, "email": user.email, "password": PASSWORD})
    browser.world = world
    return browser


def _fields(response) -> dict[str, str]:
    return dict(FIELD.findall(response.get_data(as_text=True)))


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_the_home_page_shows_the_balance_and_frames_the_portal_signed_in(platform, portal_url):
    home = platform.get("/")
    assert home.status_code == 200
    assert "Solde : 15 crédits" in _text(home) and platform.world["org"].name in _text(home)
    frame_url = re.search(r'<iframe src="([^"]+)"', _text(home)).group(1)
    assert frame_url.startswith(f"{portal_url}/espace-client/sso/")
    assert "Solde : 15 crédits" in _text(platform.get("/?page=devis"))


def test_a_use_of_credits_is_consumed_once_even_when_the_form_is_sent_twice(platform):
    form = _fields(platform.get("/"))
    first = platform.post("/credits/utiliser", data=form, follow_redirects=True)
    assert "10 crédits utilisés (référence analyse-" in _text(first)
    assert "solde restant 5 crédits." in _text(first) and "Solde : 5 crédits" in _text(first)
    again = platform.post("/credits/utiliser", data=form, follow_redirects=True)  # the same page's form
    assert "solde restant 5 crédits." in _text(again)
    consumptions = db.session.scalars(select(CreditEntry).where(CreditEntry.amount == -10)).all()
    assert [entry.external_reference for entry in consumptions] == [f"analyse-{form['use_id'][:8]}"]

    beyond = platform.post("/credits/utiliser", data=_fields(platform.get("/")), follow_redirects=True)
    assert ("Crédits non utilisés : Solde de crédits insuffisant : 5 crédit(s) disponible(s)."
            in _text(beyond))
    assert credits.credit_balance(platform.world["org"].id) == 5


def test_an_account_the_portal_does_not_know_is_said_in_french(platform):
    platform.world["org"].external_id = "compte-autre"
    db.session.commit()
    home = platform.get("/")
    assert home.status_code == 502
    assert "Le portail client n'est pas disponible : Organisation introuvable." in _text(home)


def test_the_platforms_forms_need_its_csrf_token(platform):
    assert platform.post("/credits/utiliser", data={}).status_code == 400
