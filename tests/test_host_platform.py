"""The example host platform (examples/host_platform) against the portal served over real HTTP: its
own sign-in, the organisation found by its account id (`external_id`), the balance, the single
sign-on URL it frames, « Utiliser 10 crédits » consuming once per form even when sent twice, and
the portal's French refusals shown as they come.

Its events: `verify_signature` (the code the README shows, kept equal here) against the portal's
own signer; POST /webhooks/portail refusing a missing, stale or wrong signature, accepting the two
signatures of a secret being rotated, keeping an event id once; and the portal's worker delivering
a quote accepted and paid to the platform served on 127.0.0.1. The browser journey:
tests/e2e/test_embedded_platform.py."""

from __future__ import annotations

import ast
import hashlib
import hmac
import html
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from examples.host_platform.app import create_app as create_platform
from examples.host_platform.webhook_signature import verify_signature
from portal import api_keys, billing, credits, quotes
from portal.delivery.webhooks import deliver_pending, signature_header
from portal.extensions import db
from portal.models import Channel, ClientRole, CreditEntry, Event, Invoice, PaymentProvider

SCOPES = ["organisations:read", "credits:read", "credits:consume", "sessions:write"]
PASSWORD = "mot-de-passe-plateforme"
FIELD = re.compile(r'name="(csrf_token|use_id)" value="([^"]+)"')
ROOT = Path(__file__).resolve().parent.parent
SHOWN_TYPES = ["quote.accepted", "invoice.paid", "credits.granted"]


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
    assert ("Crédits non utilisés : Solde de crédits insuffisant (solde disponible : 5)."
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


# --- The portal's events: the signature check integrators copy --------------------------------


def test_the_readme_shows_the_signature_check_of_the_example_platform_verbatim():
    """The root README's snippet is the code of webhook_signature.py after its docstring (imports
    and `verify_signature`), to the character."""
    source = (ROOT / "examples/host_platform/webhook_signature.py").read_text()
    docstring_end = ast.parse(source).body[0].end_lineno
    snippet = "\n".join(source.splitlines()[docstring_end:]).strip() + "\n"
    assert "def verify_signature(" in snippet and "import hmac" in snippet
    assert f"```python\n{snippet}```" in (ROOT / "README.md").read_text()


NOW = 1_800_000_000
BODY = b'{"id":"evt_1","type":"quote.accepted","created":1800000000}'


@pytest.mark.parametrize(("signed_at", "accepted"), [
    (NOW, True), (NOW - 300, True), (NOW + 300, True),  # within the 5 minutes, either side
    (NOW - 301, False), (NOW + 301, False),  # a replay, a clock far ahead
])
def test_verify_signature_accepts_the_portals_signature_within_the_tolerance(signed_at, accepted):
    header = signature_header(["whsec_a"], BODY, signed_at)
    assert verify_signature(BODY, header, "whsec_a", now=NOW) is accepted


def test_verify_signature_refuses_another_secret_another_body_and_malformed_headers():
    header = signature_header(["whsec_a"], BODY, NOW)
    assert not verify_signature(BODY, header, "whsec_b", now=NOW)
    assert not verify_signature(BODY + b" ", header, "whsec_a", now=NOW)
    assert not verify_signature(BODY, header, "", now=NOW)  # an unset secret never verifies
    empty_key = hmac.new(b"", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert not verify_signature(BODY, f"t={NOW},v1={empty_key}", [""], now=NOW)
    v1 = header.split(",v1=")[1]
    for malformed in ["", f"v1={v1}", f"t={NOW}", f"t=maintenant,v1={v1}", f"t=²,v1={v1}",
                      f"t={NOW},v1=²{v1}", f"t={NOW},v0={v1}", f"t={'9' * 5000},v1={v1}"]:
        assert not verify_signature(BODY, malformed, "whsec_a", now=NOW), malformed
    assert verify_signature(BODY, f" t={NOW} , v1={v1} ", "whsec_a", now=NOW)  # spaces tolerated


def test_verify_signature_accepts_either_secret_while_one_is_rotated():
    header = signature_header(["whsec_new", "whsec_old"], BODY, NOW)  # the portal's 24 hours
    assert header.count("v1=") == 2
    assert verify_signature(BODY, header, "whsec_old", now=NOW)  # the platform not updated yet
    assert verify_signature(BODY, header, "whsec_new", now=NOW)  # the platform updated
    assert verify_signature(BODY, header, ["whsec_other", "whsec_new"], now=NOW)
    assert not verify_signature(BODY, header, ["whsec_other"], now=NOW)


# --- The portal's events: POST /webhooks/portail ---------------------------------------------


@pytest.fixture
def subscribed(platform, make):
    """The platform's endpoint in the portal (the three types the dashboard shows), its secret
    given to the platform, and the organisation's quote accepted: a quote.accepted event waiting."""
    endpoint = make.webhook_endpoint(url="http://127.0.0.1:9/webhooks/portail", event_types=SHOWN_TYPES)
    platform.application.config["PORTAL_WEBHOOK_SECRET"] = endpoint.secret
    world = platform.world
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE], terms_version=world["terms"],
                  channel=Channel.PORTAL)
    db.session.commit()
    platform.endpoint = endpoint
    return platform


def _event(type_: str) -> Event:
    return db.session.scalars(select(Event).where(Event.type == type_)).one()


def _post_event(platform, body: bytes, header: str | None):
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Portail-Signature"] = header
    return platform.post("/webhooks/portail", data=body, headers=headers)


def _shown(platform) -> list[str]:
    return [event["text"] for event in platform.get("/evenements").get_json()["events"]]


def test_an_event_signed_by_the_portal_is_received_and_shown_to_its_account(subscribed):
    event = _event("quote.accepted")
    header = signature_header([subscribed.endpoint.secret], event.body.encode(), int(time.time()))
    answer = _post_event(subscribed, event.body.encode(), header)
    assert answer.status_code == 200
    assert answer.get_json() == {"received": event.public_id, "duplicate": False}
    reference = subscribed.world["quote"].reference
    assert _shown(subscribed) == [f"Devis accepté : {reference}, 240,00\u00a0€ TTC"]
    assert f"Devis accepté : {reference}" in _text(subscribed.get("/"))  # the dashboard, first shown


@pytest.mark.parametrize("case", ["stale", "other secret", "other body", "no header", "no secret set"])
def test_a_missing_stale_or_wrong_signature_is_refused_and_nothing_is_kept(subscribed, case):
    body = _event("quote.accepted").body.encode()
    secret, signed_at = subscribed.endpoint.secret, int(time.time())
    header = {
        "stale": signature_header([secret], body, signed_at - 301),
        "other secret": signature_header(["whsec_someone_else"], body, signed_at),
        "other body": signature_header([secret], body.replace(b"accepted", b"refused"), signed_at),
        "no header": None,
        "no secret set": signature_header([secret], body, signed_at),
    }[case]
    if case == "no secret set":
        subscribed.application.config["PORTAL_WEBHOOK_SECRET"] = ""
    answer = _post_event(subscribed, body, header)
    assert answer.status_code == 400
    assert answer.get_json() == {"error": "Signature absente, périmée ou incorrecte."}
    assert _shown(subscribed) == []


def test_during_a_rotation_the_two_signatures_are_accepted_whichever_secret_the_platform_has(subscribed):
    body, old = _event("quote.accepted").body.encode(), subscribed.endpoint.secret
    header = signature_header(["whsec_rotated_new", old], body, int(time.time()))
    assert _post_event(subscribed, body, header).status_code == 200  # the platform still has the old one
    subscribed.application.config["PORTAL_WEBHOOK_SECRET"] = "whsec_rotated_new"
    assert _post_event(subscribed, body, header).status_code == 200  # updated within the 24 hours


def test_an_event_received_twice_is_kept_and_shown_once(subscribed):
    event = _event("quote.accepted")
    body, secret = event.body.encode(), subscribed.endpoint.secret
    first = _post_event(subscribed, body, signature_header([secret], body, int(time.time()) - 60))
    again = _post_event(subscribed, body, signature_header([secret], body, int(time.time())))  # a resend
    assert first.get_json()["duplicate"] is False
    assert again.status_code == 200 and again.get_json() == {"received": event.public_id, "duplicate": True}
    assert len(_shown(subscribed)) == 1


def test_a_signed_body_that_is_not_an_event_is_refused(subscribed):
    body = b'["not", "an", "event"]'
    header = signature_header([subscribed.endpoint.secret], body, int(time.time()))
    answer = _post_event(subscribed, body, header)
    assert answer.status_code == 400
    assert _shown(subscribed) == []


def test_an_account_sees_its_own_events_only(subscribed, make):
    other = make.organisation(external_id="compte-autre")
    body = json.dumps({"id": "evt_other", "object": "event", "type": "quote.accepted",
                       "created": int(time.time()), "sequence": 1,
                       "organisation": {"id": other.id, "external_id": "compte-autre"},
                       "data": {"reference": "DV-2026-99999", "totals": {"total_ttc_cents": 100}}}).encode()
    header = signature_header([subscribed.endpoint.secret], body, int(time.time()))
    assert _post_event(subscribed, body, header).status_code == 200
    assert _shown(subscribed) == []
    assert subscribed.application.extensions["portal_events"].shown_for("compte-autre")[0].id == "evt_other"


def test_the_events_page_needs_the_platforms_sign_in(subscribed):
    anonymous = subscribed.application.test_client()
    assert anonymous.get("/evenements").status_code == 401


# --- The portal's worker delivering to the platform on 127.0.0.1 ------------------------------


@pytest.fixture
def platform_url(subscribed, app, monkeypatch) -> Iterator[str]:
    """The platform served on a free port of 127.0.0.1, where the portal's endpoint now points
    (local addresses allowed, as in development)."""
    monkeypatch.setitem(app.config, "WEBHOOKS_ALLOW_LOCAL", True)
    monkeypatch.setitem(app.config, "WEBHOOKS_HTTPS_ONLY", False)
    server = make_server("127.0.0.1", 0, subscribed.application, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    subscribed.endpoint.url = f"{url}/webhooks/portail"
    db.session.commit()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_a_quote_accepted_then_paid_reaches_the_platform_through_the_worker(subscribed, platform_url):
    world = subscribed.world
    invoice = db.session.scalars(select(Invoice)).one()
    billing.record_payment(invoice, provider=PaymentProvider.BANK_TRANSFER, provider_reference="VIR-PF-1",
                           amount_cents=invoice.total_ttc_cents, currency="EUR")
    db.session.commit()
    result = deliver_pending()
    assert result.delivered == 3 and result.failed == 0
    reference, number = world["quote"].reference, invoice.number
    assert _shown(subscribed) == [  # the latest first, by the organisation's sequence
        f"Crédits accordés : 20 crédits, devis {reference}",
        f"Facture payée : {number}, 240,00\u00a0€ TTC",
        f"Devis accepté : {reference}, 240,00\u00a0€ TTC",
    ]
    assert deliver_pending().delivered == 0  # delivered once
