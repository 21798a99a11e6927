"""Staff sign-in (/admin/connexion): wrong passwords and client accounts refused, and `next` never
sends off the site. Which back-office route each kind of visitor reaches, and the CSRF token every
form needs, sign-in included: tests/test_security_access.py (generated from the URL map)."""

from __future__ import annotations

from portal.auth import hash_password
from portal.extensions import db
from portal.models import ClientRole

from .web import PASSWORD, csrf_from, sign_in


def test_staff_sign_in_refuses_wrong_passwords_and_clients(client, make):
    world = make.world()
    sign_in(client, world["admin"])
    home = client.get("/admin/").get_data(as_text=True)
    client.post("/admin/deconnexion", data={"csrf_token": csrf_from(home)})
    assert client.get("/admin/").status_code == 302
    token = csrf_from(client.get("/admin/connexion").get_data(as_text=True))
    wrong = client.post("/admin/connexion", data={"csrf_token": token, "email": world["admin"].email,
                                                 "password": "mauvais"})
    assert "incorrect" in wrong.get_data(as_text=True)
    client_user = world["users"][ClientRole.RESPONSABLE]
    client_user.password_hash = hash_password(PASSWORD)
    db.session.commit()
    refused = client.post("/admin/connexion", data={"csrf_token": token, "email": client_user.email,
                                                   "password": PASSWORD})
    assert "incorrect" in refused.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_sign_in_next_is_never_an_open_redirect(client, make):
    world = make.world()
    world["admin"].password_hash = hash_password("p" * 12)
    db.session.commit()
    token = csrf_from(client.get("/admin/connexion").get_data(as_text=True))
    response = client.post("/admin/connexion?next=https://evil.example/",
                           data={"csrf_token": token, "email": world["admin"].email, "password": "p" * 12})
    assert response.headers["Location"] == "/admin/"
