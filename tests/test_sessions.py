"""Sessions that end on the server: each session carries its user's session version, and logout, a
new password or « Se déconnecter partout » raise it, so a copied session cookie stops working.
« Mon compte » (portal and back office) changes the password and signs out everywhere else."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from portal import auth
from portal.extensions import db
from portal.models import AuditEvent, ClientRole, User

from .web import PASSWORD, csrf_from, page_text

NEW_PASSWORD = "un-nouveau-mot-de-passe"


@pytest.fixture(scope="module")
def hashed_password():
    """An Argon2id hash of PASSWORD with the cheapest parameters: these tests verify it many times."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)


# Each side: its sign-in page, a page only a signed-in user reaches, « Mon compte », the sign-out
# everywhere button's URL and the logout URL.
SIDES = {
    "client": {"sign_in": "/espace-client/connexion", "private": "/espace-client/devis",
               "account": "/espace-client/compte",
               "everywhere": "/espace-client/compte/deconnexion-partout",
               "logout": "/espace-client/deconnexion"},
    "staff": {"sign_in": "/admin/connexion", "private": "/admin/", "account": "/admin/compte/",
              "everywhere": "/admin/compte/deconnexion-partout", "logout": "/admin/deconnexion"},
}


@pytest.fixture(params=list(SIDES))
def side(request, make, hashed_password):
    """A user of the client portal or of the back office, with a password, and their side's URLs."""
    if request.param == "client":
        user = make.client_user(make.organisation(), ClientRole.RESPONSABLE, password_hash=hashed_password)
    else:
        user = make.staff(password_hash=hashed_password)
    db.session.commit()
    return {"name": request.param, "user": user, **SIDES[request.param]}


def _signed_in(new_client, side, password: str = PASSWORD):
    """A new browser signed in through the side's sign-in form."""
    client = new_client()
    token = csrf_from(client.get(side["sign_in"]).get_data(as_text=True))
    response = client.post(side["sign_in"], data={"csrf_token": token, "email": side["user"].email,
                                                  "password": password})
    assert response.status_code == 302, page_text(response)
    return client


def _copy(new_client, client):
    """Another browser holding a copy of `client`'s session cookie (stolen, or left behind)."""
    thief = new_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def _is_signed_in(client, side) -> bool:
    response = client.get(side["private"])
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def _post(client, url: str, **data):
    token = csrf_from(client.get(url).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **data})


def _change_password(client, side, current: str = PASSWORD, new: str = NEW_PASSWORD,
                     confirm: str | None = None):
    return _post(client, side["account"], current=current, password=new,
                 confirm=new if confirm is None else confirm)


def _stored(user: User) -> User:
    db.session.expire_all()
    return db.session.get(User, user.id)


def test_a_cookie_copied_before_logout_is_refused_after_it(new_client, side):
    browser = _signed_in(new_client, side)
    copy = _copy(new_client, browser)
    assert _is_signed_in(copy, side)  # the copy works while the session lasts
    token = csrf_from(browser.get(side["private"]).get_data(as_text=True))
    assert browser.post(side["logout"], data={"csrf_token": token}).status_code == 302
    assert not _is_signed_in(copy, side)
    assert not _is_signed_in(browser, side)
    assert _stored(side["user"]).session_version == 1


def test_logout_ends_the_users_other_sessions_too(new_client, side):
    elsewhere = _signed_in(new_client, side)
    browser = _signed_in(new_client, side)
    token = csrf_from(browser.get(side["private"]).get_data(as_text=True))
    browser.post(side["logout"], data={"csrf_token": token})
    assert not _is_signed_in(elsewhere, side)
    assert _is_signed_in(_signed_in(new_client, side), side)  # signing in again works


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(new_client, side):
    elsewhere = _signed_in(new_client, side)
    browser = _signed_in(new_client, side)
    copy = _copy(new_client, browser)
    response = _change_password(browser, side)
    assert response.status_code == 303
    assert "Votre mot de passe a été changé" in page_text(browser.get(side["account"]))
    assert _is_signed_in(browser, side)
    assert not _is_signed_in(elsewhere, side)
    assert not _is_signed_in(copy, side)  # the cookie as it was before the change
    user = _stored(side["user"])
    assert auth.check_password(user, NEW_PASSWORD) and not auth.check_password(user, PASSWORD)
    assert user.session_version == 1
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "user.password_changed",
                                    AuditEvent.object_id == user.id)) == 1
    _signed_in(new_client, side, NEW_PASSWORD)


def test_sign_out_everywhere_ends_every_other_session(new_client, side):
    elsewhere = _signed_in(new_client, side)
    browser = _signed_in(new_client, side)
    copy = _copy(new_client, browser)
    response = _post(browser, side["everywhere"])
    assert response.status_code == 303 and response.headers["Location"] == side["account"]
    assert "Toutes vos autres sessions ont été fermées" in page_text(browser.get(side["account"]))
    assert _is_signed_in(browser, side)
    assert not _is_signed_in(elsewhere, side)
    assert not _is_signed_in(copy, side)
    assert _stored(side["user"]).session_version == 1


@pytest.mark.parametrize(("current", "new", "confirm", "message"), [
    ("mauvais-mot-de-passe", NEW_PASSWORD, NEW_PASSWORD,
     "Le mot de passe actuel est incorrect : votre mot de passe n'a pas été changé."),
    ("", NEW_PASSWORD, NEW_PASSWORD,
     "Le mot de passe actuel est incorrect : votre mot de passe n'a pas été changé."),
    (PASSWORD, "court", "court", "Le mot de passe doit comporter au moins 10 caractères."),
    (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "Les deux mots de passe ne correspondent pas."),
], ids=["wrong current", "no current", "too short", "confirmation differs"])
def test_a_refused_password_change_says_why_in_french_and_changes_nothing(new_client, side, current, new,
                                                                          confirm, message):
    elsewhere = _signed_in(new_client, side)
    browser = _signed_in(new_client, side)
    before = _stored(side["user"]).password_hash
    response = _change_password(browser, side, current=current, new=new, confirm=confirm)
    assert response.status_code == 200
    assert message in page_text(response)
    user = _stored(side["user"])
    assert user.password_hash == before and user.session_version == 0
    assert _is_signed_in(browser, side) and _is_signed_in(elsewhere, side)
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_the_account_pages_are_linked_from_each_layout(new_client, side):
    browser = _signed_in(new_client, side)
    page = page_text(browser.get(side["private"]))
    assert f'href="{side["account"]}"' in page and "Mon compte" in page
    account = page_text(browser.get(side["account"]))
    assert "Changer de mot de passe" in account and "Se déconnecter partout" in account
    assert 'name="current"' in account and 'autocomplete="new-password"' in account


def test_a_session_from_before_session_versions_lasts_until_the_first_revocation(new_client, make):
    """Sessions signed in before the upgrade carry no version: they count as version 0."""
    user = make.client_user(make.organisation())
    db.session.commit()
    browser = new_client()
    with browser.session_transaction() as session:
        session["_user_id"] = str(user.id)
    assert browser.get("/espace-client/devis").status_code == 200
    auth.revoke_sessions(user)
    db.session.commit()
    assert browser.get("/espace-client/devis").status_code == 302


def test_the_loader_refuses_a_session_of_another_version(new_client, make):
    user = make.staff()
    db.session.commit()
    browser = new_client()
    with browser.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session[auth.SESSION_VERSION_KEY] = 1  # newer than the user's: forged or from another database
    assert browser.get("/admin/").status_code == 302
