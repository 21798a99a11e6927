"""Sign-in security: a fresh session at every sign-in (no fixation), rate limits with a French 429
(memory and Redis storage; in memory while Redis is unreachable, never refused for it), production
refusing per-process limits, Argon2id password hashes, and a `next` that never leaves the site."""

from __future__ import annotations

import logging
import os
import re
import time

import pytest
import redis
from sqlalchemy import func, select

import portal
from portal import accounts, auth, create_app, outbox
from portal.delivery.emails import render
from portal.extensions import db, limiter
from portal.headers import HEADER_BREAKING
from portal.models import ClientRole, OutboxEmail, User
from portal.security import safe_next_url

from .test_security_world import build_world
from .web import PASSWORD, csrf_from, page_text

P = "/espace-client"
LINK = re.compile(r"/espace-client/(lien|invitation)/([A-Za-z0-9_-]+)")


@pytest.fixture(scope="module")
def hashed_password():
    return auth.hash_password(PASSWORD)  # once: Argon2id is slow on purpose


@pytest.fixture
def world(make, hashed_password):
    world = build_world()
    for user in [world.admin, *world.mine.users.values()]:
        user.password_hash = hashed_password
    db.session.commit()
    return world


def _token_in(template: str, user: User) -> str:
    row = db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == template,
                                                       OutboxEmail.recipient == user.email)
                             .order_by(OutboxEmail.id.desc())).first()
    return LINK.search(render(row).text).group(2)


def _sign_in_ways(world):
    """Each way of signing in: (name, form page, POST url, form data, user signed in)."""
    gestionnaire = world.mine.users[ClientRole.GESTIONNAIRE]
    outbox.enqueue_login_link(gestionnaire)
    db.session.commit()
    quote_link = _token_in("quote_sent", gestionnaire)
    login_link = _token_in("login_link", gestionnaire)
    invitation = _token_in("user_invited", world.mine.invited)
    return [
        ("staff", "/admin/connexion", "/admin/connexion",
         {"email": world.admin.email, "password": PASSWORD}, world.admin),
        ("client password", f"{P}/connexion", f"{P}/connexion",
         {"email": gestionnaire.email, "password": PASSWORD}, gestionnaire),
        ("quote magic link", f"{P}/lien/{quote_link}", f"{P}/lien/{quote_link}", {}, gestionnaire),
        ("login link", f"{P}/lien/{login_link}", f"{P}/lien/{login_link}", {}, gestionnaire),
        ("invitation", f"{P}/invitation/{invitation}", f"{P}/invitation/{invitation}",
         {"password": "un-mot-de-passe-neuf", "confirm": "un-mot-de-passe-neuf"}, world.mine.invited),
    ]


def test_every_sign_in_starts_a_fresh_session(new_client, world):
    for name, page, url, data, user in _sign_in_ways(world):
        client = new_client()
        old_token = csrf_from(client.get(page).get_data(as_text=True))
        with client.session_transaction() as session:
            session["planted"] = "by an attacker"  # e.g. a session fixed through a shared computer
            session["_user_id"] = str(world.theirs.users[ClientRole.RESPONSABLE].id)
            before = dict(session)
        old_cookie = client.get_cookie("session").value
        response = client.post(url, data={"csrf_token": old_token, **data})
        assert response.status_code in (302, 303), (name, response.status_code)
        with client.session_transaction() as session:
            assert "planted" not in session, name
            assert session["_user_id"] == str(user.id), name
            assert session.get("csrf_token") != before["csrf_token"], name
        assert client.get_cookie("session").value != old_cookie, name
        # The form token of the session before sign-in is worthless now.
        assert client.post(f"{P}/deconnexion", data={"csrf_token": old_token}).status_code == 400, name


# --- Rate limits ------------------------------------------------------------------------------

LIMITED = [  # (setting, form page, POST url, form data)
    ("RATELIMIT_SIGNIN", "/admin/connexion", "/admin/connexion", {"email": "a@b.fr", "password": "x"}),
    ("RATELIMIT_SIGNIN", f"{P}/connexion", f"{P}/connexion", {"email": "a@b.fr", "password": "x"}),
    ("RATELIMIT_LINK_REQUEST", f"{P}/connexion", f"{P}/connexion/lien", {"email": "a@b.fr"}),
    ("RATELIMIT_LINK", f"{P}/lien/{'x' * 43}", f"{P}/lien/{'x' * 43}", {}),
    ("RATELIMIT_LINK", f"{P}/invitation/{'x' * 43}", f"{P}/invitation/{'x' * 43}",
     {"password": "a" * 12, "confirm": "a" * 12}),
]


@pytest.fixture
def limits_on(app, monkeypatch):
    """Rate limits switched on, at 3 a minute, with empty counters (and emptied after)."""
    monkeypatch.setitem(app.config, "RATE_LIMITS_ENABLED", True)
    for setting in ("RATELIMIT_SIGNIN", "RATELIMIT_LINK_REQUEST", "RATELIMIT_LINK"):
        monkeypatch.setitem(app.config, setting, "3 per minute")
    limiter.reset()
    yield
    limiter.reset()


@pytest.mark.parametrize(("setting", "page", "url", "data"), LIMITED, ids=lambda value: str(value)[:30])
def test_the_fourth_attempt_in_a_minute_gets_a_french_429(new_client, limits_on, setting, page, url, data):
    client = new_client()
    token = csrf_from(client.get(page).get_data(as_text=True))
    for _attempt in range(3):
        assert client.post(url, data={"csrf_token": token, **data}).status_code != 429
    refused = client.post(url, data={"csrf_token": token, **data})
    assert refused.status_code == 429
    assert "Trop de tentatives : patientez quelques minutes avant de réessayer." in page_text(refused)
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(page).status_code == 200  # reading the page is not limited
    elsewhere = new_client()
    other_token = csrf_from(elsewhere.get(page, environ_base={"REMOTE_ADDR": "198.51.100.9"})
                            .get_data(as_text=True))
    other_ip = elsewhere.post(url, data={"csrf_token": other_token, **data},
                              environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert other_ip.status_code != 429  # the limit is per client address


def test_limits_are_read_from_the_settings(app, new_client, limits_on, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_SIGNIN", "1 per minute")
    client = new_client()
    token = csrf_from(client.get("/admin/connexion").get_data(as_text=True))
    data = {"csrf_token": token, "email": "a@b.fr", "password": "x"}
    assert client.post("/admin/connexion", data=data).status_code == 200
    assert client.post("/admin/connexion", data=data).status_code == 429


def test_a_rate_limited_sign_in_does_not_even_check_the_password(new_client, world, limits_on):
    client = new_client()
    token = csrf_from(client.get("/admin/connexion").get_data(as_text=True))
    wrong = {"csrf_token": token, "email": world.admin.email, "password": "mauvais"}
    for _attempt in range(3):
        client.post("/admin/connexion", data=wrong)
    right = client.post("/admin/connexion", data={**wrong, "password": PASSWORD})
    assert right.status_code == 429
    assert client.get("/admin/").status_code == 302  # still signed out


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def test_limits_shared_through_redis(other_app):
    """RATELIMIT_STORAGE_URI=redis://…: the counts live in Redis, where every worker sees them."""
    server = redis.Redis.from_url(REDIS_URL)
    server.flushdb()
    other = other_app(RATE_LIMITS_ENABLED=True, RATELIMIT_STORAGE_URI=REDIS_URL,
                      RATELIMIT_SIGNIN="2 per minute")
    try:
        client = other.test_client()
        token = csrf_from(client.get("/admin/connexion").get_data(as_text=True))
        data = {"csrf_token": token, "email": "a@b.fr", "password": "x"}
        assert [client.post("/admin/connexion", data=data).status_code for _ in range(3)] == [200, 200, 429]
        keys = [key.decode() for key in server.keys("*")]
        assert any("staff_auth.login" in key or "login" in key for key in keys), keys
        assert sum(int(server.get(key) or 0) for key in server.keys("*")) >= 2
    finally:
        limiter.reset()
        server.flushdb()
        server.close()


# Nothing listens on port 1: connections are refused at once.
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def _limiter_warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "portal.ratelimit" and record.levelno == logging.WARNING]


def test_every_sign_in_works_while_redis_is_unreachable(other_app, world, caplog):
    """Redis down: each way of signing in still signs in, and the app's log says the limiter counts
    in memory meanwhile."""
    caplog.set_level(logging.WARNING)
    other = other_app(RATE_LIMITS_ENABLED=True, RATELIMIT_STORAGE_URI=UNREACHABLE_REDIS)
    started = time.monotonic()
    for name, page, url, data, user in _sign_in_ways(world):
        client = other.test_client()
        token = csrf_from(client.get(page).get_data(as_text=True))
        response = client.post(url, data={"csrf_token": token, **data})
        assert response.status_code in (302, 303), (name, response.status_code)
        with client.session_transaction() as session:
            assert session["_user_id"] == str(user.id), name
    client = other.test_client()
    token = csrf_from(client.get(f"{P}/connexion").get_data(as_text=True))
    gestionnaire = world.mine.users[ClientRole.GESTIONNAIRE]
    links_before = _count_emails("login_link")
    response = client.post(f"{P}/connexion/lien", data={"csrf_token": token, "email": gestionnaire.email})
    assert response.status_code == 302
    assert _count_emails("login_link") == links_before + 1
    assert time.monotonic() - started < 15  # short Redis timeouts: no minute-long wait per request
    assert any("unreachable" in message for message in _limiter_warnings(caplog)), caplog.text


def _count_emails(template: str, recipient: str | None = None) -> int:
    db.session.expire_all()
    query = select(func.count()).select_from(OutboxEmail).where(OutboxEmail.template == template)
    if recipient is not None:
        query = query.where(OutboxEmail.recipient == recipient)
    return db.session.scalar(query)


def test_limits_count_in_memory_while_redis_is_unreachable(other_app, world):
    """The fallback still limits: per IP, and per account (the lock)."""
    other = other_app(RATE_LIMITS_ENABLED=True, RATELIMIT_STORAGE_URI=UNREACHABLE_REDIS,
                      RATELIMIT_SIGNIN="3 per minute", ACCOUNT_LOCK_FAILURES=2)
    client = other.test_client()
    token = csrf_from(client.get("/admin/connexion").get_data(as_text=True))
    statuses = [client.post("/admin/connexion", data={"csrf_token": token, "email": f"{n}@b.fr",
                                                      "password": "x"}).status_code for n in range(4)]
    assert statuses == [200, 200, 200, 429]  # per IP
    client.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    wrong = {"csrf_token": token, "email": world.admin.email, "password": "mauvais"}
    assert [client.post("/admin/connexion", data=wrong).status_code for _attempt in range(2)] == [200, 429]
    right = client.post("/admin/connexion", data={**wrong, "password": PASSWORD})
    assert right.status_code == 429 and "temporairement verrouillé" in page_text(right)
    assert _count_emails("account_locked", world.admin.email) == 1


def test_production_refuses_rate_limits_counted_per_process(monkeypatch, other_app):
    """PORTAL_ENV=production with RATELIMIT_STORAGE_URI=memory://: each worker would count its own
    attempts; start-up refuses it unless PORTAL_SINGLE_WORKER=1 says there is only one."""
    monkeypatch.setattr(portal, "PORTAL_ENV", "production")
    settings = {"TESTING": False, "SECRET_KEY": "a-long-random-production-secret",
                "SQLALCHEMY_DATABASE_URI": "sqlite://", "RATELIMIT_STORAGE_URI": "memory://",
                "SINGLE_WORKER": False, "PORTAL_BASE_URL": "https://portail.example.fr"}
    with pytest.raises(RuntimeError, match=r"RATELIMIT_STORAGE_URI=memory://.*PORTAL_SINGLE_WORKER=1"):
        create_app(settings)
    assert create_app({**settings, "SINGLE_WORKER": True}).config["RATELIMIT_STORAGE_URI"] == "memory://"
    assert create_app({**settings, "RATELIMIT_STORAGE_URI": REDIS_URL})
    monkeypatch.setattr(portal, "PORTAL_ENV", "development")
    assert create_app({**settings, "SINGLE_WORKER": False})  # `make run`: one process, memory is fine


# --- Passwords --------------------------------------------------------------------------------


def test_passwords_are_hashed_with_argon2id(make):
    hashed = auth.hash_password("un-mot-de-passe-solide")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert hashed != auth.hash_password("un-mot-de-passe-solide")  # salted
    user = make.client_user(make.organisation(), password_hash=hashed)
    assert auth.check_password(user, "un-mot-de-passe-solide")
    assert not auth.check_password(user, "un-mot-de-passe-solidE")
    assert not auth.check_password(make.client_user(make.organisation()), "")  # no password yet
    user.password_hash = "not-a-hash"
    assert not auth.check_password(user, "un-mot-de-passe-solide")


def test_an_invited_user_chooses_a_password_stored_as_argon2id(client, world):
    invited = world.mine.invited
    token = _token_in("user_invited", invited)
    page = client.get(f"{P}/invitation/{token}").get_data(as_text=True)
    client.post(f"{P}/invitation/{token}", data={"csrf_token": csrf_from(page),
                                                  "password": "un-mot-de-passe-neuf",
                                                  "confirm": "un-mot-de-passe-neuf"})
    db.session.expire_all()
    stored = db.session.get(User, invited.id).password_hash
    assert stored.startswith("$argon2id$") and "un-mot-de-passe-neuf" not in stored
    assert accounts  # the invitation comes from accounts.invite_client_user (see build_world)


# --- `next` -----------------------------------------------------------------------------------

OFF_SITE = [
    "//evil.example", "//evil.example/espace-client/devis", "///evil.example", "////evil.example",
    "https://evil.example", "http://evil.example/", "HTTPS://evil.example", "https:evil.example",
    "https:/evil.example", "/\\evil.example", "\\\\evil.example", "\\/evil.example", "/\\/evil.example",
    "javascript:alert(1)", "JavaScript:alert(document.cookie)", " javascript:alert(1)",
    "java\tscript:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)",
    " //evil.example", "\t//evil.example", "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example",
    "/\x00/evil.example", "/\x0b/evil.example", "/\x1f/evil.example", "/\x7f/evil.example",
    "evil.example", "evil.example/espace-client", "@evil.example", "ftp://evil.example",
    "//evil.example@portail.example", "https://portail.example@evil.example",
]
# Line breaks would split the Location header: the request is refused before any view runs.
HEADER_SPLITTING = ["/espace-client/devis\r\nSet-Cookie: session=fixed", "/\nLocation: //evil.example",
                    "\r\n"]
ON_SITE = ["/espace-client/factures", "/espace-client/devis/12?avant=3", "/admin/organisation/4/devis",
           "/espace-client/devis#haut"]


@pytest.mark.parametrize("candidate", OFF_SITE)
def test_safe_next_url_refuses_off_site_targets(candidate):
    assert safe_next_url(candidate, "/fallback") == "/fallback"


@pytest.mark.parametrize("candidate", ON_SITE)
def test_safe_next_url_keeps_paths_of_this_site(candidate):
    assert safe_next_url(candidate, "/fallback") == candidate


@pytest.mark.parametrize("fallback", ["", None])
def test_safe_next_url_without_a_candidate(fallback):
    assert safe_next_url(fallback, "/fallback") == "/fallback"


@pytest.mark.parametrize("candidate", OFF_SITE + HEADER_SPLITTING)
def test_both_sign_ins_never_redirect_off_site(new_client, make, hashed_password, candidate):
    staff = make.staff(password_hash=hashed_password)
    member = make.client_user(make.organisation(), ClientRole.MEMBRE, password_hash=hashed_password)
    db.session.commit()
    sign_ins = (("/admin/connexion", "/admin/", staff), (f"{P}/connexion", f"{P}/devis", member))
    for page, default, user in sign_ins:
        client = new_client()
        token = csrf_from(client.get(page).get_data(as_text=True))
        response = client.post(page, query_string={"next": candidate},
                               data={"csrf_token": token, "email": user.email, "password": PASSWORD})
        if HEADER_BREAKING.search(candidate):
            assert response.status_code == 400, (page, candidate)  # it could never be a Location
            continue
        assert response.status_code == 302, (page, candidate)
        assert response.headers["Location"] == default, (page, candidate, response.headers["Location"])


def test_the_sign_ins_keep_a_path_of_this_site(new_client, world):
    client = new_client()
    token = csrf_from(client.get("/admin/connexion").get_data(as_text=True))
    response = client.post("/admin/connexion", query_string={"next": "/admin/factures/"},
                           data={"csrf_token": token, "email": world.admin.email, "password": PASSWORD})
    assert response.headers["Location"] == "/admin/factures/"


@pytest.mark.parametrize("candidate", ["//evil.example", "https://evil.example/", "/\\evil.example",
                                       "javascript:alert(1)", "/admin/\r\nSet-Cookie: x=1", "\n"])
def test_flask_admin_return_urls_never_leave_the_site(client, world, candidate):
    """Flask-Admin's own `url=` (where to go after saving) is checked the same way."""
    from .web import sign_in_client

    sign_in_client(client, world.admin)
    query = {"id": world.product.id, "url": candidate}
    page = client.get("/admin/produits/edit/", query_string={"id": world.product.id}).get_data(as_text=True)
    response = client.post("/admin/produits/edit/", query_string=query,
                           data={"csrf_token": csrf_from(page), "sku": "SKU-SAFE", "name": "Produit",
                                 "unit_price_cents": "10,00", "vat_rate_bp": "2000",
                                 "credits_per_unit": "0", "published": "y"})
    if "\n" in candidate:
        assert response.status_code == 400  # no header splitting, and no 500 either
        return
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/admin/") and "evil" not in location, location
