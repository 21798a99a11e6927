"""Throttling per account and per email address, whatever the client's IP: sign-in attempts per
address, the account lock after repeated wrong passwords (its owner emailed once per lock), link
requests per address, and at most MAX_VALID_LINKS_PER_USER valid sign-in links per user. Counted in
the rate limiter's storage: memory here, Redis (shared by every worker) in the last tests."""

from __future__ import annotations

import re
import uuid

import pytest
import redis
from argon2 import PasswordHasher
from sqlalchemy import func, select

from portal import auth, outbox
from portal.delivery.emails import render
from portal.exceptions import MagicLinkExpired
from portal.extensions import db, limiter
from portal.models import ClientRole, LoginToken, OutboxEmail, QuoteStatus, User, utcnow

from .test_security_signin import REDIS_URL
from .web import PASSWORD, csrf_from, page_text

P = "/espace-client"
WRONG = "Adresse email ou mot de passe incorrect."
LOCKED = "Ce compte est temporairement verrouillé après trop de tentatives de connexion"
LINK_SENT = "Si un compte existe pour cette adresse, un lien de connexion vient de lui être envoyé."
LINK = re.compile(r"/espace-client/lien/([A-Za-z0-9_-]+)")


@pytest.fixture(scope="module")
def hashed_password():
    """An Argon2id hash of PASSWORD with the cheapest parameters: these tests verify it many times."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)


@pytest.fixture
def limits_on(app, monkeypatch):
    """Rate limits on, the per-IP ones out of the way, the per-account ones at their defaults
    (10 attempts and a 15-minute lock after 10 wrong passwords), with empty counters."""
    monkeypatch.setitem(app.config, "RATE_LIMITS_ENABLED", True)
    for setting in ("RATELIMIT_SIGNIN", "RATELIMIT_LINK_REQUEST", "RATELIMIT_LINK"):
        monkeypatch.setitem(app.config, setting, "1000 per minute")
    assert app.config["ACCOUNT_LOCK_FAILURES"] == 10 and app.config["ACCOUNT_LOCK_MINUTES"] == 15
    assert app.config["RATELIMIT_SIGNIN_ACCOUNT"] == "10 per 15 minutes"
    limiter.reset()
    yield app.config
    limiter.reset()


SIGN_INS = {"client": f"{P}/connexion", "staff": "/admin/connexion"}


@pytest.fixture(params=list(SIGN_INS))
def account(request, make, hashed_password):
    """A client or a staff user with a password, and their sign-in page."""
    if request.param == "client":
        user = make.client_user(make.organisation(), password_hash=hashed_password)
    else:
        user = make.staff(password_hash=hashed_password)
    db.session.commit()
    return {"user": user, "url": SIGN_INS[request.param], "kind": request.param}


def _from(new_client, n: int):
    """A browser at its own address: 198.51.100.<n>."""
    client = new_client()
    client.environ_base["REMOTE_ADDR"] = f"198.51.100.{n}"
    return client


def _sign_in(client, url: str, email: str, password: str):
    token = csrf_from(client.get(url).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, "email": email, "password": password})


def _emails(template: str) -> list[OutboxEmail]:
    db.session.expire_all()
    return db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == template)).all()


def test_forty_wrong_passwords_from_forty_addresses_lock_the_account(new_client, limits_on, account):
    user, url = account["user"], account["url"]
    answers = [_sign_in(_from(new_client, n), url, user.email, f"essai-{n}") for n in range(40)]
    assert [a.status_code for a in answers] == [200] * 9 + [429] * 31
    assert all(WRONG in page_text(a) for a in answers[:9])
    assert all(LOCKED in page_text(a) and "réessayez dans 15 min" in page_text(a) for a in answers[9:])
    assert int(answers[-1].headers["Retry-After"]) > 14 * 60
    with_link = "connectez-vous avec un lien reçu par email"
    assert (with_link in page_text(answers[-1])) == (account["kind"] == "client")  # staff have no link
    owner = _from(new_client, 200)
    right = _sign_in(owner, url, user.email, PASSWORD)
    assert right.status_code == 429 and LOCKED in page_text(right)  # even the right password
    with owner.session_transaction() as session:
        assert "_user_id" not in session
    [email] = _emails("account_locked")  # one email per lock
    assert email.recipient == user.email
    rendered = render(email)
    assert rendered.subject == "Votre compte est temporairement verrouillé"
    assert "votre compte est verrouillé jusqu’au" in rendered.text
    assert ("Recevoir un lien de connexion" in rendered.text) == (account["kind"] == "client")


def test_an_address_without_an_account_gets_the_same_answers_and_nobody_is_emailed(
        new_client, limits_on, account):
    user, url = account["user"], account["url"]
    unknown = f"personne-{uuid.uuid4().hex[:8]}@example.test"
    for email in (user.email, unknown):
        answers = [_sign_in(_from(new_client, n), url, email, "mauvais") for n in range(12)]
        assert [a.status_code for a in answers] == [200] * 9 + [429] * 3, email
        assert LOCKED in page_text(answers[-1])
    assert [email.recipient for email in _emails("account_locked")] == [user.email]


def test_a_right_password_resets_the_count_of_wrong_ones(new_client, limits_on, monkeypatch, account):
    monkeypatch.setitem(limits_on, "RATELIMIT_SIGNIN_ACCOUNT", "100 per 15 minutes")
    user, url = account["user"], account["url"]
    for n in range(9):
        assert _sign_in(_from(new_client, n), url, user.email, "mauvais").status_code == 200
    assert _sign_in(_from(new_client, 50), url, user.email, PASSWORD).status_code == 302
    for n in range(9):
        assert _sign_in(_from(new_client, n), url, user.email, "mauvais").status_code == 200
    assert _emails("account_locked") == []
    assert _sign_in(_from(new_client, 9), url, user.email, "mauvais").status_code == 429  # the 10th


def test_sign_in_attempts_per_account_are_limited_whatever_the_address(new_client, limits_on,
                                                                        monkeypatch, account):
    monkeypatch.setitem(limits_on, "RATELIMIT_SIGNIN_ACCOUNT", "3 per 15 minutes")
    user, url = account["user"], account["url"]
    assert _sign_in(_from(new_client, 1), url, user.email, PASSWORD).status_code == 302
    assert _sign_in(_from(new_client, 2), url, user.email, "mauvais").status_code == 200
    assert _sign_in(_from(new_client, 3), url, user.email, PASSWORD).status_code == 302
    refused = _sign_in(_from(new_client, 4), url, user.email, PASSWORD)
    assert refused.status_code == 429 and LOCKED in page_text(refused)
    other = _sign_in(_from(new_client, 4), url, f"autre-{uuid.uuid4().hex[:6]}@example.test", "x")
    assert other.status_code == 200  # another address from the same IP is counted apart
    assert _emails("account_locked") == []  # a limit, not a lock: no email


# --- Link requests and valid links per user ---------------------------------------------------


def _request_link(client, email: str):
    token = csrf_from(client.get(f"{P}/connexion").get_data(as_text=True))
    response = client.post(f"{P}/connexion/lien", data={"csrf_token": token, "email": email})
    assert response.status_code == 302
    return page_text(client.get(response.headers["Location"]))


def _valid_links(user: User) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(LoginToken).where(
        LoginToken.user_id == user.id, LoginToken.purpose == auth.MAGIC_LINK_LOGIN,
        LoginToken.used_at.is_(None), LoginToken.expires_at > utcnow()))


def test_thirty_link_requests_for_one_address_from_thirty_addresses(new_client, limits_on, make):
    user = make.client_user(make.organisation())
    db.session.commit()
    pages = [_request_link(_from(new_client, n), user.email) for n in range(30)]
    assert all(LINK_SENT in page for page in pages)  # the same neutral answer, beyond the limit too
    assert len(_emails("login_link")) == 3  # RATELIMIT_LINK_REQUEST_ACCOUNT: 3 per 15 minutes
    assert _valid_links(user) <= limits_on["MAX_VALID_LINKS_PER_USER"]


def test_each_address_has_its_own_link_request_count(new_client, limits_on, make):
    first, second = (make.client_user(make.organisation()) for _user in range(2))
    db.session.commit()
    for _request in range(4):
        _request_link(_from(new_client, 1), first.email)  # one IP, far below its own limit
    _request_link(_from(new_client, 1), second.email)
    assert sorted(email.recipient for email in _emails("login_link")) == sorted(
        [first.email] * 3 + [second.email])


def test_a_user_holds_at_most_three_valid_sign_in_links(new_client, limits_on, monkeypatch, make):
    monkeypatch.setitem(limits_on, "RATELIMIT_LINK_REQUEST_ACCOUNT", "100 per 15 minutes")
    user = make.client_user(make.organisation())
    db.session.commit()
    for n in range(30):
        _request_link(_from(new_client, n), user.email)
    emails = _emails("login_link")
    assert len(emails) == 30
    assert _valid_links(user) == limits_on["MAX_VALID_LINKS_PER_USER"] == 3
    oldest, newest = (LINK.search(render(email).text).group(1) for email in (emails[0], emails[-1]))
    with pytest.raises(MagicLinkExpired):
        auth.consume_magic_link(oldest)
    db.session.rollback()
    assert auth.consume_magic_link(newest).id == user.id


def test_quote_links_do_not_count_against_the_sign_in_links(make, limits_on):
    world = make.world()
    manager = world["users"][ClientRole.GESTIONNAIRE]
    for _n in range(5):
        outbox.enqueue_login_link(manager)
    quote_links = db.session.scalars(select(LoginToken).where(
        LoginToken.user_id == manager.id, LoginToken.purpose == auth.MAGIC_LINK_QUOTE)).all()
    assert quote_links and all(token.expires_at > utcnow() for token in quote_links)
    assert world["quote"].status == QuoteStatus.SENT
    assert _valid_links(manager) == 3


# --- Shared by every worker: Redis --------------------------------------------------------------


@pytest.fixture
def redis_app(other_app):
    """An app counting in Redis, under a key prefix of its own (deleted after)."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    other = other_app(RATE_LIMITS_ENABLED=True, RATELIMIT_STORAGE_URI=REDIS_URL, RATELIMIT_KEY_PREFIX=prefix,
                      RATELIMIT_SIGNIN="1000 per minute")
    server = redis.Redis.from_url(REDIS_URL)
    yield other, server, prefix
    for key in server.scan_iter(f"*{prefix}*"):
        server.delete(key)
    server.close()


def test_the_account_lock_is_counted_in_redis(redis_app, make, hashed_password):
    other, server, prefix = redis_app
    user = make.staff(password_hash=hashed_password)
    db.session.commit()
    statuses = []
    for n in range(11):
        client = other.test_client()
        client.environ_base["REMOTE_ADDR"] = f"203.0.113.{n}"
        statuses.append(_sign_in(client, "/admin/connexion", user.email, "mauvais").status_code)
    assert statuses == [200] * 9 + [429] * 2
    keys = [key.decode() for key in server.scan_iter(f"*{prefix}*")]
    assert any("signin-lock" in key and user.email in key for key in keys), keys
    assert len(_emails("account_locked")) == 1
