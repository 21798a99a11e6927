"""Magic links under attack: wrong, expired, used, another user's or another quote's token is
refused; emails always carry the canonical PORTAL_BASE_URL, whatever Host a request came with; the
raw token never reaches a log, from the staff's click to the client's decision."""

from __future__ import annotations

import email
import email.policy
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from portal import auth, outbox
from portal.delivery import worker
from portal.delivery.emails import render
from portal.exceptions import MagicLinkInvalid, MagicLinkUsed
from portal.extensions import db
from portal.models import (
    Channel,
    ClientRole,
    Decision,
    LoginToken,
    OutboxEmail,
    OutboxStatus,
    User,
    utcnow,
)

from .test_security_world import build_world
from .web import csrf_from, page_text, sign_in_client

P = "/espace-client"
BASE = "https://portail.vendeur.example"
LINK_TEMPLATES = ("quote_sent", "quote_reminder", "login_link", "user_invited")
LINK = re.compile(r"(https?://[^/\s\"<>]+)(/espace-client/(?:lien|invitation)/)([A-Za-z0-9_-]+)")


@pytest.fixture
def world(app, make, monkeypatch, tmp_path):
    monkeypatch.setitem(app.config, "PORTAL_BASE_URL", BASE)
    monkeypatch.setitem(app.config, "MAIL_OUTBOX_DIR", str(tmp_path / "mail"))
    return build_world()


def _token(template: str, user: User) -> str:
    row = db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == template,
                                                       OutboxEmail.recipient == user.email)
                             .order_by(OutboxEmail.id.desc())).first()
    return LINK.search(render(row).text).group(3)


def _quote_token(quote) -> str:
    """The token of the link in the email that sent `quote`."""
    row = db.session.scalar(select(OutboxEmail).where(
        OutboxEmail.template == "quote_sent", OutboxEmail.context["quote_id"].as_integer() == quote.id))
    return LINK.search(render(row).text).group(3)


def _consume(client, token: str):
    landing = client.get(f"{P}/lien/{token}")
    return client.post(f"{P}/lien/{token}", data={"csrf_token": csrf_from(landing.get_data(as_text=True))})


def _signed_in_user(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("_user_id")


def _refused(client, token: str, message: str) -> None:
    response = _consume(client, token)
    assert response.status_code == 303 and f"{P}/connexion" in response.headers["Location"]
    assert _signed_in_user(client) is None
    assert message in page_text(client.get(response.headers["Location"]))


def test_a_wrong_token_is_refused(client, world):
    real = _token("quote_sent", world.mine.users[ClientRole.GESTIONNAIRE])
    for wrong in ("x" * 43, real[:-1] + ("A" if real[-1] != "A" else "B"), real[:20], real + "A",
                  "%00", "a" * 500):
        _refused(client, wrong, "pas valide")
    assert db.session.scalar(select(LoginToken.used_at).where(LoginToken.used_at.is_not(None))) is None


def test_an_expired_token_is_refused(client, world):
    token = _token("quote_sent", world.mine.users[ClientRole.GESTIONNAIRE])
    db.session.execute(LoginToken.__table__.update().where(LoginToken.token_hash == auth.hash_token(token))
                       .values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    _refused(client, token, "a expiré")


def test_a_used_token_is_refused(client, new_client, world):
    token = _token("quote_sent", world.mine.users[ClientRole.GESTIONNAIRE])
    assert _consume(client, token).status_code == 303 and _signed_in_user(client) is not None
    _refused(new_client(), token, "déjà été utilisé")


def test_another_users_token_signs_in_that_user_only_afresh(client, world):
    """Someone signed in who follows another user's link is not given that link's rights under
    their own name: the session becomes the link's user's, fresh (and only while the link is valid)."""
    ours, theirs = world.mine.users[ClientRole.MEMBRE], world.theirs.users[ClientRole.GESTIONNAIRE]
    sign_in_client(client, ours)
    response = _consume(client, _quote_token(world.theirs.pending))
    assert response.headers["Location"].endswith(f"{P}/devis/{world.theirs.pending.id}")
    assert _signed_in_user(client) == str(theirs.id)
    assert client.get(f"{P}/devis/{world.mine.pending.id}").status_code == 404


def test_a_token_of_a_deactivated_user_or_of_another_organisations_quote_is_refused(client, new_client,
                                                                                 world):
    gestionnaire = world.mine.users[ClientRole.GESTIONNAIRE]
    token = _token("quote_sent", gestionnaire)
    gestionnaire.active = False
    db.session.commit()
    _refused(client, token, "pas valide")
    # A link row tying a user to another organisation's quote (forged or stale) opens nothing.
    forged, seed = auth.create_link(world.mine.users[ClientRole.RESPONSABLE], purpose=auth.MAGIC_LINK_QUOTE,
                                    quote=world.theirs.pending)
    db.session.commit()
    _refused(new_client(), auth.raw_token_from_seed(seed), "pas valide")
    assert db.session.get(LoginToken, forged.id).used_at is None


def test_a_token_is_refused_for_another_quote(world):
    token = _token("quote_sent", world.mine.users[ClientRole.GESTIONNAIRE])
    link = auth.peek_link(token)
    for other in (world.mine.accepted.id, world.theirs.pending.id, link.quote_id + 10_000):
        with pytest.raises(MagicLinkInvalid):
            auth.consume_magic_link(token, quote_id=other)
    assert auth.consume_magic_link(token, quote_id=link.quote_id).id == link.user_id
    with pytest.raises(MagicLinkUsed):
        auth.consume_magic_link(token, quote_id=link.quote_id)


def test_a_link_marks_only_its_own_quote_as_decided_by_email_link(client, make, world):
    decider = world.mine.users[ClientRole.GESTIONNAIRE]
    make.sent_quote(world.mine.org, actor=world.admin, recipient=decider)
    db.session.commit()
    assert _consume(client, _token("quote_sent", decider)).status_code == 303  # the newest: `second`
    first = world.mine.pending
    page = client.get(f"{P}/devis/{first.id}").get_data(as_text=True)
    client.post(f"{P}/devis/{first.id}/decision", data={
        "csrf_token": csrf_from(page), "terms_version_id": str(world.terms.id), "action": "refuser"})
    decision = db.session.scalar(select(Decision).where(Decision.quote_id == first.id))
    assert decision.channel == Channel.PORTAL  # not the link's quote: an ordinary portal decision


def test_an_invitation_token_opens_only_its_invitation(client, world):
    token = _token("user_invited", world.mine.invited)
    _refused(client, token, "pas valide")  # not a sign-in link
    assert client.get(f"{P}/invitation/{token}").status_code == 200


# --- Host header ------------------------------------------------------------------------------

EVIL = {"base_url": "http://evil.example",  # the Host header, and what a proxy would forward
        "headers": {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}}


def _deliver_link_emails() -> None:
    """Send the pending emails that carry a link (the others are invoices: slow PDFs, no link)."""
    db.session.execute(update(OutboxEmail).where(OutboxEmail.template.not_in(LINK_TEMPLATES))
                       .values(status=OutboxStatus.SENT))
    db.session.commit()
    worker.send_pending(limit=1000)


def _links_of(text: str) -> list[str]:
    return [match.group(1) for match in LINK.finditer(text)]


def _sign_in_on_evil_host(client, user: User) -> None:
    with client.session_transaction(base_url=EVIL["base_url"]) as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True


def test_emails_carry_the_canonical_url_whatever_the_host(client, world, app):
    member = world.mine.users[ClientRole.MEMBRE]
    page = client.get(f"{P}/connexion", **EVIL).get_data(as_text=True)
    assert client.post(f"{P}/connexion/lien", data={"csrf_token": csrf_from(page), "email": member.email},
                       **EVIL).status_code == 302
    _sign_in_on_evil_host(client, world.admin)
    draft = world.mine.draft
    confirm = client.get(f"/admin/devis/{draft.id}/envoyer", **EVIL).get_data(as_text=True)
    assert client.post(f"/admin/devis/{draft.id}/envoyer", data={"csrf_token": csrf_from(confirm)},
                       **EVIL).status_code == 302
    rows = db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id.desc()).limit(2)).all()
    assert {row.template for row in rows} == {"login_link", "quote_sent"}
    with app.test_request_context("/admin/emails/", **EVIL):  # rendered during a request
        for row in rows:
            rendered = render(row)
            assert _links_of(rendered.text) and set(_links_of(rendered.text + rendered.html)) == {BASE}
            assert "evil.example" not in rendered.text + rendered.html
    _deliver_link_emails()
    files = list(Path(app.config["MAIL_OUTBOX_DIR"]).glob("*.eml"))
    assert files
    for path in files:
        assert "evil.example" not in path.read_text(errors="replace")


def test_the_admin_email_preview_masks_links_whatever_the_host(client, world):
    _sign_in_on_evil_host(client, world.admin)
    row = db.session.scalar(select(OutboxEmail).where(OutboxEmail.template == "login_link"))
    page = client.get(f"/admin/emails/details/?id={row.id}", **EVIL)
    preview = client.get(f"/admin/emails/{row.id}/apercu", **EVIL)
    assert page.status_code == 200 and preview.status_code == 200
    text = page.get_data(as_text=True) + preview.get_data(as_text=True)
    assert auth.raw_token_from_seed(row.context[outbox.LINK_SEED]) not in text
    assert "evil.example" not in text


# --- Logs -------------------------------------------------------------------------------------


def _delivered_tokens(directory: str) -> list[tuple[str, str, str]]:
    """The links as the recipients read them in the delivered .eml files, oldest first:
    (recipient, path, token)."""
    tokens = []
    for path in sorted(Path(directory).glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = message.get_body(("plain",)).get_content()
        tokens += [(message["To"], match.group(2), match.group(3)) for match in LINK.finditer(body)]
    return tokens


def _last(tokens, recipient: str, path: str) -> str:
    return [token for to, where, token in tokens if to == recipient and where == path][-1]


def test_the_raw_token_never_reaches_a_log(app, client, new_client, world, caplog):
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # every statement and its parameters
    caplog.set_level(logging.DEBUG)
    decider = world.mine.users[ClientRole.GESTIONNAIRE]
    # Staff send a quote from the back office; the worker delivers the outbox.
    sign_in_client(client, world.admin)
    draft = world.mine.draft
    confirm = client.get(f"/admin/devis/{draft.id}/envoyer").get_data(as_text=True)
    client.post(f"/admin/devis/{draft.id}/envoyer", data={"csrf_token": csrf_from(confirm)})
    # A client asks for a sign-in link; staff look at the emails page.
    visitor = new_client()
    page = visitor.get(f"{P}/connexion").get_data(as_text=True)
    visitor.post(f"{P}/connexion/lien", data={"csrf_token": csrf_from(page),
                                              "email": world.mine.users[ClientRole.MEMBRE].email})
    client.get("/admin/emails/")
    for row in db.session.scalars(select(OutboxEmail)).all():
        client.get(f"/admin/emails/details/?id={row.id}")
    _deliver_link_emails()
    tokens = _delivered_tokens(app.config["MAIL_OUTBOX_DIR"])
    assert len(tokens) >= 8
    # The recipients click: the quote link, the sign-in link, the invitation.
    quote_token = _last(tokens, decider.email, "/espace-client/lien/")  # the quote just sent
    clicker = new_client()
    quote_url = _consume(clicker, quote_token).headers["Location"]
    page = clicker.get(quote_url).get_data(as_text=True)
    clicker.post(f"{quote_url}/decision", data={"csrf_token": csrf_from(page),
                                                "terms_version_id": str(world.terms.id),
                                                "accept_terms": "y", "action": "valider"})
    _consume(new_client(), _last(tokens, world.mine.users[ClientRole.MEMBRE].email, "/espace-client/lien/"))
    _consume(new_client(), quote_token)  # a second click: refused
    invited = new_client()
    invitation = _last(tokens, world.mine.invited.email, "/espace-client/invitation/")
    form = invited.get(f"{P}/invitation/{invitation}").get_data(as_text=True)
    invited.post(f"{P}/invitation/{invitation}", data={"csrf_token": csrf_from(form),
                                                       "password": "un-mot-de-passe-neuf",
                                                       "confirm": "un-mot-de-passe-neuf"})
    assert db.session.scalar(select(Decision).where(Decision.quote_id == world.mine.draft.id)) is not None
    records = caplog.records
    assert any(record.name == "portal.delivery.worker" for record in records)
    assert any(record.name.startswith("sqlalchemy.engine") for record in records)
    formatter = logging.Formatter()
    for record in records:
        text = formatter.format(record)
        for _recipient, _path, token in tokens:
            assert token not in text, (record.name, text[:300])
