"""Portal sign-in: password, "Recevoir un lien de connexion", the quote email's magic link, the
invitation link, sign-out; and the whole journey from the email to the decision."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import auth, outbox
from portal.delivery import emails
from portal.extensions import db
from portal.models import (
    BillingMode,
    Channel,
    ClientRole,
    CreditEntry,
    Decision,
    Invoice,
    LoginToken,
    OutboxEmail,
    utcnow,
)

from .web import PASSWORD, csrf_from

P = "/espace-client"
LINK = re.compile(r"/espace-client/lien/([A-Za-z0-9_-]+)")


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _link_from_outbox(template: str = "quote_sent") -> str:
    """The magic link as the recipient reads it in the rendered email."""
    row = db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == template)
                             .order_by(OutboxEmail.id.desc())).first()
    return LINK.search(emails.render(row).text).group(1)


@pytest.fixture
def world(make):
    world = make.world()
    for user in world["users"].values():
        user.password_hash = auth.hash_password(PASSWORD)
    db.session.commit()
    return world


def _post_login(client, email, password, next_url=None):
    page = client.get(f"{P}/connexion").get_data(as_text=True)
    url = f"{P}/connexion" + (f"?next={next_url}" if next_url else "")
    return client.post(url, data={"csrf_token": csrf_from(page), "email": email, "password": password})


def test_password_sign_in_and_sign_out(client, world):
    user = world["users"][ClientRole.GESTIONNAIRE]
    response = _post_login(client, user.email.upper(), PASSWORD, next_url=f"{P}/factures")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"{P}/factures")
    page = client.get(f"{P}/devis").get_data(as_text=True)
    assert "Mon Organisation" in page
    client.post(f"{P}/deconnexion", data={"csrf_token": csrf_from(page)})
    assert client.get(f"{P}/devis").status_code == 302


def test_wrong_password_and_unknown_address_get_the_same_answer(client, world):
    wrong = _post_login(client, world["users"][ClientRole.GESTIONNAIRE].email, "mauvais")
    unknown = _post_login(client, "personne@example.test", PASSWORD)
    assert "incorrect" in wrong.get_data(as_text=True)
    assert "incorrect" in unknown.get_data(as_text=True)
    assert _post_login(client, world["admin"].email, PASSWORD).status_code == 200  # staff: not here


def test_sign_in_never_redirects_off_site(client, world):
    user = world["users"][ClientRole.GESTIONNAIRE]
    response = _post_login(client, user.email, PASSWORD, next_url="https://evil.example/")
    assert response.headers["Location"] == f"{P}/devis"


@pytest.mark.parametrize("known", [True, False])
def test_login_link_request_answers_the_same_either_way(client, world, known):
    email = world["users"][ClientRole.MEMBRE].email if known else "inconnu@example.test"
    page = client.get(f"{P}/connexion").get_data(as_text=True)
    response = client.post(f"{P}/connexion/lien", data={"csrf_token": csrf_from(page), "email": email},
                           follow_redirects=True)
    assert "Si un compte existe pour cette adresse" in response.get_data(as_text=True)
    assert _count(OutboxEmail, OutboxEmail.template == "login_link") == (1 if known else 0)


def test_login_link_signs_in_once(client, world):
    member = world["users"][ClientRole.MEMBRE]
    outbox.enqueue_login_link(member)
    db.session.commit()
    token = _link_from_outbox("login_link")
    landing = client.get(f"{P}/lien/{token}").get_data(as_text=True)
    response = client.post(f"{P}/lien/{token}", data={"csrf_token": csrf_from(landing)})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"{P}/devis")
    assert client.get(f"{P}/devis").status_code == 200


def test_magic_link_get_consumes_nothing(client, world):
    token = _link_from_outbox()
    for _ in range(3):
        landing = client.get(f"{P}/lien/{token}")
        assert landing.status_code == 200
        assert "Continuer vers le devis" in landing.get_data(as_text=True)
        assert landing.headers["Referrer-Policy"] == "no-referrer"
        assert "no-store" in landing.headers["Cache-Control"]
    assert db.session.scalar(select(LoginToken.used_at)) is None
    assert client.get(f"{P}/devis").status_code == 302  # not signed in by a GET


def test_magic_link_post_signs_in_freshly_and_lands_on_the_quote(client, world):
    token = _link_from_outbox()
    landing = client.get(f"{P}/lien/{token}").get_data(as_text=True)
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    response = client.post(f"{P}/lien/{token}", data={"csrf_token": csrf_from(landing)})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{P}/devis/{world['quote'].id}")
    with client.session_transaction() as session:
        assert "planted" not in session  # a fresh session
        assert session["_user_id"] == str(world["users"][ClientRole.GESTIONNAIRE].id)


def test_a_used_link_leads_to_sign_in_with_the_quote_as_destination(client, world):
    token = _link_from_outbox()
    landing = client.get(f"{P}/lien/{token}").get_data(as_text=True)
    client.post(f"{P}/lien/{token}", data={"csrf_token": csrf_from(landing)})
    other = client.application.test_client()
    landing = other.get(f"{P}/lien/{token}").get_data(as_text=True)
    second = other.post(f"{P}/lien/{token}", data={"csrf_token": csrf_from(landing)})
    assert second.status_code == 303
    assert f"{P}/connexion" in second.headers["Location"]
    assert f"devis%2F{world['quote'].id}" in second.headers["Location"] or \
        f"devis/{world['quote'].id}" in second.headers["Location"]
    page = other.get(second.headers["Location"]).get_data(as_text=True)
    assert "déjà été utilisé" in page


def test_an_expired_link_says_so(client, world):
    token = _link_from_outbox()
    db.session.execute(LoginToken.__table__.update().values(expires_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    landing = client.get(f"{P}/lien/{token}").get_data(as_text=True)
    response = client.post(f"{P}/lien/{token}", data={"csrf_token": csrf_from(landing)},
                           follow_redirects=True)
    assert "a expiré" in response.get_data(as_text=True)
    assert client.get(f"{P}/devis").status_code == 302


def test_an_unknown_link_says_so(client, world):
    landing = client.get(f"{P}/lien/{'x' * 43}").get_data(as_text=True)
    response = client.post(f"{P}/lien/{'x' * 43}", data={"csrf_token": csrf_from(landing)},
                           follow_redirects=True)
    assert "pas valide" in response.get_data(as_text=True)


def test_a_link_for_a_superseded_revision_is_refused(client, world):
    from portal import quotes

    token = _link_from_outbox()
    revision = quotes.revise(world["quote"], actor=world["admin"])
    quotes.send(revision, actor=world["admin"])
    db.session.commit()
    landing = client.get(f"{P}/lien/{token}").get_data(as_text=True)
    response = client.post(f"{P}/lien/{token}", data={"csrf_token": csrf_from(landing)})
    assert f"{P}/connexion" in response.headers["Location"]


def test_invitation_lets_a_new_user_choose_a_password(client, world, make):
    from portal import accounts

    user = accounts.invite_client_user(organisation=world["org"], email="nouveau@example.test",
                                       full_name="Nouvel Utilisateur", role=ClientRole.GESTIONNAIRE,
                                       actor=world["admin"])
    db.session.commit()
    row = db.session.scalar(select(OutboxEmail).where(OutboxEmail.template == "user_invited"))
    token = re.search(r"/espace-client/invitation/([A-Za-z0-9_-]+)", emails.render(row).text).group(1)
    page = client.get(f"{P}/invitation/{token}").get_data(as_text=True)
    short = client.post(f"{P}/invitation/{token}", data={"csrf_token": csrf_from(page),
                                                          "password": "court", "confirm": "court"})
    assert "au moins 10" in short.get_data(as_text=True)
    mismatch = client.post(f"{P}/invitation/{token}", data={"csrf_token": csrf_from(page),
                                                             "password": "a" * 12, "confirm": "b" * 12})
    assert "ne correspondent pas" in mismatch.get_data(as_text=True)
    done = client.post(f"{P}/invitation/{token}", data={"csrf_token": csrf_from(page),
                                                         "password": "un-bon-mot-de-passe",
                                                         "confirm": "un-bon-mot-de-passe"})
    assert done.status_code == 303
    db.session.expire_all()
    assert auth.check_password(db.session.get(type(user), user.id), "un-bon-mot-de-passe")
    again = client.application.test_client()
    page = again.get(f"{P}/invitation/{token}").get_data(as_text=True)
    reused = again.post(f"{P}/invitation/{token}", data={"csrf_token": csrf_from(page),
                                                          "password": "x" * 12, "confirm": "x" * 12})
    assert reused.status_code == 303 and f"{P}/connexion" in reused.headers["Location"]


def test_an_invitation_token_is_not_a_login_link(client, world):
    from portal import accounts

    accounts.invite_client_user(organisation=world["org"], email="autre@example.test",
                                full_name="Autre", role=ClientRole.MEMBRE, actor=world["admin"])
    db.session.commit()
    row = db.session.scalar(select(OutboxEmail).where(OutboxEmail.template == "user_invited"))
    token = re.search(r"/espace-client/invitation/([A-Za-z0-9_-]+)", emails.render(row).text).group(1)
    landing = client.get(f"{P}/lien/{token}").get_data(as_text=True)
    response = client.post(f"{P}/lien/{token}", data={"csrf_token": csrf_from(landing)})
    assert f"{P}/connexion" in response.headers["Location"]
    assert client.get(f"{P}/devis").status_code == 302


@pytest.mark.parametrize("mode", [BillingMode.PER_ORDER, BillingMode.MONTHLY])
def test_journey_from_the_email_link_to_the_decision(client, make, mode):
    world = make.world(billing_mode=mode)
    db.session.commit()
    token = _link_from_outbox()
    landing = client.get(f"{P}/lien/{token}").get_data(as_text=True)
    quote_url = client.post(f"{P}/lien/{token}", data={"csrf_token": csrf_from(landing)}).headers["Location"]
    page = client.get(quote_url).get_data(as_text=True)
    assert "Conditions Générales de Vente" in page and "Valider" in page
    response = client.post(f"{P}/devis/{world['quote'].id}/decision", data={
        "csrf_token": csrf_from(page), "terms_version_id": str(world["terms"].id),
        "accept_terms": "y", "action": "valider"})
    decision = db.session.scalar(select(Decision))
    assert decision.channel == Channel.EMAIL_LINK
    if mode == BillingMode.PER_ORDER:
        invoice = db.session.scalar(select(Invoice))
        assert response.headers["Location"].endswith(f"{P}/factures/{invoice.id}/payer")
    else:
        assert response.headers["Location"].endswith("/confirmation")
        assert _count(CreditEntry) == 1
