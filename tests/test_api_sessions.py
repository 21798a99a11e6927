"""API single sign-on: POST /api/v1/sessions gives a one-time URL that signs one client user in
afresh and lands on a portal page; used once, within 2 minutes, stored as a hash only."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from portal import auth, headers
from portal.exceptions import MagicLinkExpired, MagicLinkUsed
from portal.extensions import db, limiter
from portal.models import ClientRole, LoginToken, utcnow

from .api_helpers import API, api_headers, assert_problem
from .web import csrf_from, page_text, sign_in_client

BASE = "https://portail.vendeur.example"
P = "/espace-client"
SSO_URL = f"{BASE}{P}/sso/"


@pytest.fixture
def world(app, make, monkeypatch):
    monkeypatch.setitem(app.config, "PORTAL_BASE_URL", BASE)
    world = make.world()
    db.session.commit()
    return world


@pytest.fixture
def open_session(client):
    """POST /sessions with a key holding sessions:write; returns the response."""
    key = api_headers("sessions:write")

    def post(body: dict):
        return client.post(f"{API}/sessions", json=body, headers=key)

    return post


def _gestionnaire(world):
    return world["users"][ClientRole.GESTIONNAIRE]


def _path(url: str) -> str:
    assert url.startswith(SSO_URL)
    return urlsplit(url).path


def _raw_token(url: str) -> str:
    return _path(url).rsplit("/", 1)[1]


def _signed_in_user(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("_user_id")


def _session_links() -> int:
    """How many single sign-on links exist (the world's quote email has a link of its own)."""
    return db.session.scalar(select(func.count()).select_from(LoginToken)
                             .where(LoginToken.purpose == auth.MAGIC_LINK_API_SESSION))


def _token_row(raw: str) -> LoginToken:
    db.session.expire_all()
    return db.session.scalar(select(LoginToken).where(LoginToken.token_hash == auth.hash_token(raw)))


def test_a_session_is_a_one_time_url_valid_two_minutes(open_session, world):
    before = utcnow().replace(microsecond=0)
    response = open_session({"email": _gestionnaire(world).email})
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"object", "url", "expires_at"} and body["object"] == "portal_session"
    assert body["url"].startswith(SSO_URL) and len(_raw_token(body["url"])) == 43
    expires_at = datetime.fromisoformat(body["expires_at"].removesuffix("Z"))
    assert before + timedelta(minutes=2) <= expires_at <= utcnow() + timedelta(minutes=2)
    token = _token_row(_raw_token(body["url"]))
    assert (token.user_id, token.purpose, token.next_path, token.quote_id) == (
        _gestionnaire(world).id, "api_session", f"{P}/devis", None)
    assert token.expires_at - token.created_at == timedelta(minutes=2)
    assert token.used_at is None


def test_the_url_signs_the_user_in_and_lands_on_next(client, open_session, world):
    quote = world["quote"]
    body = open_session({"email": _gestionnaire(world).email, "next": f"{P}/devis/{quote.id}"}).get_json()

    landed = client.get(_path(body["url"]))
    assert landed.status_code == 303
    assert landed.headers["Location"] == f"{P}/devis/{quote.id}"
    assert landed.headers["Referrer-Policy"] == "no-referrer"
    assert landed.headers["Cache-Control"] == "no-store"
    assert _signed_in_user(client) == str(_gestionnaire(world).id)
    page = client.get(landed.headers["Location"])
    assert page.status_code == 200 and quote.reference in page_text(page)
    assert _token_row(_raw_token(body["url"])).used_at is not None


def test_without_next_the_user_lands_on_their_quotes(client, open_session, world):
    body = open_session({"email": _gestionnaire(world).email}).get_json()
    landed = client.get(_path(body["url"]))
    assert landed.headers["Location"] == f"{P}/devis"
    assert client.get(landed.headers["Location"]).status_code == 200


def test_next_may_carry_a_query_string(client, open_session, world):
    body = open_session({"email": _gestionnaire(world).email, "next": f"{P}/factures?avant=10"}).get_json()
    assert client.get(_path(body["url"])).headers["Location"] == f"{P}/factures?avant=10"


def test_the_url_serves_once(client, new_client, open_session, world):
    body = open_session({"email": _gestionnaire(world).email}).get_json()
    assert client.get(_path(body["url"])).status_code == 303

    other = new_client()
    again = other.get(_path(body["url"]))
    assert again.status_code == 303
    login = urlsplit(again.headers["Location"])
    assert login.path == f"{P}/connexion" and parse_qs(login.query)["next"] == [f"{P}/devis"]
    assert again.headers["Referrer-Policy"] == "no-referrer"
    assert _signed_in_user(other) is None
    assert "déjà été utilisé" in page_text(other.get(again.headers["Location"]))


def test_the_url_expires_after_two_minutes(client, new_client, open_session, world, monkeypatch):
    late = open_session({"email": _gestionnaire(world).email}).get_json()
    on_time = open_session({"email": _gestionnaire(world).email}).get_json()
    created_at = _token_row(_raw_token(late["url"])).created_at

    monkeypatch.setattr(auth, "utcnow", lambda: created_at + timedelta(minutes=2))
    expired = client.get(_path(late["url"]))
    assert urlsplit(expired.headers["Location"]).path == f"{P}/connexion"
    assert _signed_in_user(client) is None
    assert "a expiré" in page_text(client.get(expired.headers["Location"]))
    assert _token_row(_raw_token(late["url"])).used_at is None

    monkeypatch.setattr(auth, "utcnow", lambda: created_at + timedelta(seconds=119))
    browser = new_client()
    assert browser.get(_path(on_time["url"])).headers["Location"] == f"{P}/devis"
    assert _signed_in_user(browser) == str(_gestionnaire(world).id)


def test_the_domain_keeps_the_two_minutes_and_the_single_use(make):
    user = make.client_user(make.organisation())
    now = datetime(2026, 3, 2, 9, 0)
    token, seed = auth.create_api_session_link(user, next_path=f"{P}/credits", now=now)
    raw = auth.raw_token_from_seed(seed)
    assert token.expires_at == now + timedelta(minutes=2)
    with pytest.raises(MagicLinkExpired):
        auth.consume_magic_link(raw, purpose=auth.MAGIC_LINK_API_SESSION, now=now + timedelta(minutes=2))
    assert auth.consume_magic_link(raw, purpose=auth.MAGIC_LINK_API_SESSION,
                                   now=now + timedelta(seconds=119)) == user
    with pytest.raises(MagicLinkUsed):
        auth.consume_magic_link(raw, purpose=auth.MAGIC_LINK_API_SESSION, now=now + timedelta(seconds=120))


def test_the_url_is_bound_to_its_user_and_replaces_another_session(client, open_session, world):
    member = world["users"][ClientRole.MEMBRE]
    sign_in_client(client, _gestionnaire(world))
    assert "Valider" in page_text(client.get(f"{P}/devis/{world['quote'].id}"))  # the gestionnaire decides
    body = open_session({"email": member.email}).get_json()
    with client.session_transaction() as session:
        session["left_from_before"] = "x"

    client.get(_path(body["url"]))
    with client.session_transaction() as session:
        assert session.get("_user_id") == str(member.id)
        assert "left_from_before" not in session  # a fresh session, not the previous one's
    # The member reads quotes, but deciding is not theirs: the link gave the member's rights only.
    page = page_text(client.get(f"{P}/devis/{world['quote'].id}"))
    assert world["quote"].reference in page and "Valider" not in page


def test_another_users_url_signs_in_that_user_only(client, open_session, world, make):
    theirs = make.client_user(make.organisation())
    db.session.commit()
    body = open_session({"email": theirs.email}).get_json()
    client.get(_path(body["url"]))
    assert _signed_in_user(client) == str(theirs.id)
    assert client.get(f"{P}/devis/{world['quote'].id}").status_code == 404


@pytest.mark.parametrize("next_path", [
    "/admin/", "https://evil.example/espace-client/devis", "//evil.example/espace-client/",
    "/espace-client/../admin/", "/espace-client/%2e%2e/admin/", "/espace-client/%2E%2E/admin/",
    "/espace-client/./../admin", "/espace-client%2f..%2fadmin", "/espace-clientx/devis",
    "espace-client/devis",
    "/espace-client\\devis", "/espace-client/devis\n", " /espace-client/devis", "/espace-client/\tdevis",
    "javascript:alert(1)", "", 12, ["/espace-client/"], "/espace-client/" + "x" * 500,
])
def test_next_outside_the_portal_is_refused(open_session, world, next_path):
    response = open_session({"email": _gestionnaire(world).email, "next": next_path})
    body = assert_problem(response, 422, "invalid_portal_path")
    assert "/espace-client/" in body["detail"] and body["prefix"] == "/espace-client/"
    assert _session_links() == 0


@pytest.mark.parametrize("who", ["inactive", "staff", "unknown"])
def test_an_inactive_unknown_or_staff_user_gets_no_session(open_session, world, make, who):
    email = {"inactive": lambda: make.client_user(world["org"], active=False).email,
             "staff": lambda: world["admin"].email,
             "unknown": lambda: "personne@example.test"}[who]()
    db.session.commit()
    body = assert_problem(open_session({"email": email}), 404, "client_user_not_found")
    assert body["email"] == email
    assert _session_links() == 0


def test_a_user_deactivated_after_the_url_was_made_is_not_signed_in(client, open_session, world):
    body = open_session({"email": _gestionnaire(world).email}).get_json()
    _gestionnaire(world).active = False
    db.session.commit()
    refused = client.get(_path(body["url"]))
    assert urlsplit(refused.headers["Location"]).path == f"{P}/connexion"
    assert _signed_in_user(client) is None


def test_the_token_is_stored_as_its_hash_only(open_session, world):
    body = open_session({"email": _gestionnaire(world).email}).get_json()
    raw = _raw_token(body["url"])
    token = _token_row(raw)
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    db.session.expire_all()
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)).all():
            assert not any(raw in str(value) for value in row), table.name


def test_each_call_makes_a_new_link_without_an_idempotency_key(open_session, world):
    first = open_session({"email": _gestionnaire(world).email}).get_json()
    second = open_session({"email": _gestionnaire(world).email}).get_json()
    assert first["url"] != second["url"]
    assert _session_links() == 2


def test_a_session_needs_the_sessions_write_scope(client, world):
    response = client.post(f"{API}/sessions", json={"email": _gestionnaire(world).email},
                           headers=api_headers("quotes:read", "requests:write"))
    assert assert_problem(response, 403, "api_scope_missing")["scope"] == "sessions:write"


@pytest.mark.parametrize("body", [{}, {"email": 12}, {"email": ""}, {"email": "x" * 300}])
def test_a_missing_email_is_a_422(open_session, world, body):
    assert assert_problem(open_session(body), 422, "invalid_api_field")["field"] == "email"


def test_emailed_links_and_sso_links_do_not_open_each_others_door(client, new_client, open_session, world):
    """/sso/ uses its link on a GET: an emailed link (which mail scanners open) is never used
    there; and a single sign-on link is not a sign-in link for /lien/."""
    emailed, seed = auth.create_link(_gestionnaire(world), purpose=auth.MAGIC_LINK_LOGIN)
    db.session.commit()
    refused = client.get(f"{P}/sso/{auth.raw_token_from_seed(seed)}")
    assert urlsplit(refused.headers["Location"]).path == f"{P}/connexion"
    assert _signed_in_user(client) is None
    assert _token_row(auth.raw_token_from_seed(seed)).used_at is None

    raw = _raw_token(open_session({"email": _gestionnaire(world).email}).get_json()["url"])
    browser = new_client()
    landing = browser.get(f"{P}/lien/{raw}")
    browser.post(f"{P}/lien/{raw}", data={"csrf_token": csrf_from(landing.get_data(as_text=True))})
    assert _signed_in_user(browser) is None
    assert _token_row(raw).used_at is None


@pytest.mark.parametrize("token", ["x" * 43, "a" * 500, "%00"])
def test_an_unknown_token_leads_to_the_sign_in_page_with_a_french_message(client, world, token):
    refused = client.get(f"{P}/sso/{token}")
    assert refused.status_code == 303 and refused.headers["Location"] == f"{P}/connexion"
    assert refused.headers["Referrer-Policy"] == "no-referrer"
    assert "Ce lien de connexion n'est pas valide" in page_text(client.get(refused.headers["Location"]))


def test_the_landing_is_rate_limited_like_the_other_links(app, client, world, monkeypatch):
    monkeypatch.setitem(app.config, "RATE_LIMITS_ENABLED", True)
    monkeypatch.setitem(app.config, "RATELIMIT_LINK", "3 per minute")
    limiter.reset()
    try:
        answers = [client.get(f"{P}/sso/{'x' * 43}").status_code for _ in range(4)]
    finally:
        limiter.reset()
    assert answers == [303, 303, 303, 429]


def test_the_token_is_masked_in_access_logs(client, open_session, world, caplog):
    raw = _raw_token(open_session({"email": _gestionnaire(world).email}).get_json()["url"])
    line = f'127.0.0.1 - - "GET {P}/sso/{raw} HTTP/1.1" 303 -'
    assert raw not in headers.redact(line) and f"{P}/sso/[masqué]" in headers.redact(line)
    caplog.set_level(logging.INFO, logger="werkzeug")
    logging.getLogger("werkzeug").info('"%s" %s', f"GET {P}/sso/{raw} HTTP/1.1", 303)
    assert caplog.records and all(raw not in record.getMessage() for record in caplog.records)
