"""Magic links: 256-bit single-use tokens bound to a user and a quote revision, stored as hashes only."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from portal import auth, quotes
from portal.delivery import worker
from portal.exceptions import MagicLinkExpired, MagicLinkInvalid, MagicLinkSuperseded, MagicLinkUsed
from portal.extensions import db
from portal.models import ClientRole, LoginToken, OutboxEmail

LINK = re.compile(r"https?://[^\s\"<>]+/lien/([A-Za-z0-9_-]+)")
NOW = datetime(2026, 3, 2, 9, 0)


def _recipient(world):
    return world["users"][ClientRole.GESTIONNAIRE]


def _raw_token_of(email: OutboxEmail) -> str:
    return auth.raw_token_from_seed(email.context["token_seed"])


def _quote_email(quote_id: int) -> OutboxEmail:
    return db.session.scalar(select(OutboxEmail).where(OutboxEmail.template == "quote_sent",
                                                       OutboxEmail.context["quote_id"].as_integer()
                                                       == quote_id))


def test_the_emailed_token_is_256_random_bits_bound_to_user_quote_and_revision(app, make, smtp_server):
    world = make.world()
    db.session.commit()
    worker.send_pending()

    [received] = smtp_server.messages
    raw = LINK.search(received.part("text/plain")).group(1)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", raw)
    assert len(base64.urlsafe_b64decode(raw + "=")) == 32
    [token] = db.session.scalars(select(LoginToken)).all()
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    quote = world["quote"]
    assert (token.user_id, token.quote_id, token.quote_revision, token.purpose) == (
        _recipient(world).id, quote.id, quote.revision, "quote")
    assert token.used_at is None
    assert token.expires_at - token.created_at == timedelta(hours=app.config["PORTAL_LINK_TTL_HOURS"])


def test_the_raw_token_is_in_the_email_but_never_in_the_database_nor_the_logs(make, smtp_server, caplog):
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # every statement and its parameters
    caplog.set_level(logging.DEBUG)  # last: it also sets the capture handler's level
    make.world()
    db.session.commit()
    worker.send_pending()

    [received] = smtp_server.messages
    raw = LINK.search(received.part("text/plain")).group(1)
    assert raw in received.part("text/html")
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)).all():
            for value in row:
                assert raw not in _as_text(value), table.name
    # The aiosmtpd server ("mail.*" loggers) stands for the recipient's mail server, not the app.
    records = [record for record in caplog.records if not record.name.startswith("mail.")]
    assert any(record.name == "portal.delivery.worker" for record in records)
    assert any(record.name.startswith("sqlalchemy.engine") for record in records)
    formatter = logging.Formatter()
    for record in records:
        assert raw not in formatter.format(record)


def _as_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def test_the_database_alone_does_not_give_the_token(app, make, monkeypatch):
    world = make.world()
    email = _quote_email(world["quote"].id)
    seed, raw = email.context["token_seed"], _raw_token_of(email)
    assert seed != raw
    monkeypatch.setitem(app.config, "SECRET_KEY", "another-secret")
    assert auth.raw_token_from_seed(seed) != raw


def test_tokens_are_unique(make):
    world = make.world()
    raws = {auth.raw_token_from_seed(auth.create_magic_link(_recipient(world), world["quote"])[1])
            for _ in range(50)}
    assert len(raws) == 50


def test_a_link_signs_in_once(make):
    world = make.world()
    user, quote = _recipient(world), world["quote"]
    token, seed = auth.create_magic_link(user, quote, now=NOW)
    raw = auth.raw_token_from_seed(seed)
    assert auth.find_valid_token(raw, now=NOW) == token

    assert auth.consume_magic_link(raw, quote_id=quote.id, now=NOW + timedelta(hours=1)) == user

    assert token.used_at == NOW + timedelta(hours=1)
    assert auth.find_valid_token(raw, now=NOW) is None
    with pytest.raises(MagicLinkUsed):
        auth.consume_magic_link(raw, quote_id=quote.id, now=NOW + timedelta(hours=2))


def test_a_link_expires_after_the_configured_time(app, make, monkeypatch):
    monkeypatch.setitem(app.config, "PORTAL_LINK_TTL_HOURS", 2)
    world = make.world()
    user, quote = _recipient(world), world["quote"]
    late, late_seed = auth.create_magic_link(user, quote, now=NOW)
    on_time, on_time_seed = auth.create_magic_link(user, quote, now=NOW)
    assert late.expires_at == NOW + timedelta(hours=2)

    with pytest.raises(MagicLinkExpired):
        auth.consume_magic_link(auth.raw_token_from_seed(late_seed), quote_id=quote.id,
                                now=NOW + timedelta(hours=2))
    assert late.used_at is None
    assert auth.find_valid_token(auth.raw_token_from_seed(on_time_seed),
                                 now=NOW + timedelta(hours=2)) is None
    assert auth.consume_magic_link(auth.raw_token_from_seed(on_time_seed), quote_id=quote.id,
                                   now=NOW + timedelta(minutes=119)) == user


def test_a_link_opens_only_its_quote_revision_for_its_active_user(make):
    world = make.world()
    user, quote, admin = _recipient(world), world["quote"], world["admin"]
    token, seed = auth.create_magic_link(user, quote, now=NOW)
    raw = auth.raw_token_from_seed(seed)
    other = make.sent_quote(world["org"], actor=admin, recipient=user)
    with pytest.raises(MagicLinkInvalid):
        auth.consume_magic_link(raw, quote_id=other.id, now=NOW)

    revision = quotes.send(quotes.revise(quote, actor=admin), actor=admin, now=NOW)
    revision_token = db.session.get(LoginToken, _quote_email(revision.id).context["login_token_id"])
    assert (revision_token.quote_id, revision_token.quote_revision) == (revision.id, 2)
    assert revision_token.user_id == user.id
    with pytest.raises(MagicLinkInvalid):
        auth.consume_magic_link(raw, quote_id=revision.id, now=NOW)

    with pytest.raises(MagicLinkSuperseded):  # the newer revision's email carries the valid link
        auth.consume_magic_link(raw, quote_id=quote.id, now=NOW)

    user.active = False
    db.session.flush()
    with pytest.raises(MagicLinkInvalid):
        auth.consume_magic_link(raw, quote_id=quote.id, now=NOW)
    assert token.used_at is None  # refused attempts burn nothing


def test_only_sign_in_links_sign_in_unless_another_purpose_is_asked_for(make):
    world = make.world()
    user = _recipient(world)
    seed = "graine-de-test"
    db.session.add(LoginToken(token_hash=auth.hash_token(auth.raw_token_from_seed(seed)),
                              user_id=user.id, purpose="invite", created_at=NOW,
                              expires_at=NOW + timedelta(days=7)))
    db.session.flush()
    raw = auth.raw_token_from_seed(seed)

    assert auth.find_valid_token(raw, now=NOW) is None
    with pytest.raises(MagicLinkInvalid):
        auth.consume_magic_link(raw, now=NOW)
    assert auth.find_valid_token(raw, now=NOW, purpose="invite") is not None
    assert auth.consume_magic_link(raw, purpose="invite", now=NOW) == user


@pytest.mark.parametrize("raw", ["", "inconnu", "A" * 43, "x" * 10_000])
def test_unknown_or_malformed_tokens_are_refused(make, raw):
    make.world()
    assert auth.find_valid_token(raw) is None
    with pytest.raises(MagicLinkInvalid) as refused:
        auth.consume_magic_link(raw)
    assert str(refused.value).startswith("Ce lien de connexion n'est pas valide")


def test_send_creates_the_token_in_the_same_transaction_as_the_email(make):
    world = make.world()
    email = _quote_email(world["quote"].id)
    token = db.session.get(LoginToken, email.context["login_token_id"])
    assert token.token_hash == auth.hash_token(_raw_token_of(email))
    db.session.rollback()
    assert db.session.scalar(select(LoginToken.id)) is None
