"""Administration › « Clés d'API »: administrators list, create and revoke the platform's keys; the
secret is shown once, on the page answering the creation, and nowhere else; the sales role has no
menu entry and gets 403."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from portal import api_keys
from portal.extensions import db
from portal.models import ApiKey, AuditEvent, StaffRole

from .web import csrf_token, page_text, post_form, sign_in

URL = "/admin/cles-api/"


@pytest.fixture
def admin_client(client, make):
    admin = make.staff(StaffRole.ADMIN, full_name="Alice Admin")
    sign_in(client, admin)
    client.admin = admin
    return client


def _keys() -> list[ApiKey]:
    db.session.expire_all()
    return db.session.scalars(select(ApiKey).order_by(ApiKey.id)).all()


def test_the_creation_form_offers_every_scope_as_a_checkbox_with_its_description(admin_client):
    page = page_text(admin_client.get(URL + "new/"))
    for scope in api_keys.SCOPES:
        assert f'type="checkbox" value="{scope}"' in page, scope
    assert "Consommer des crédits d'une organisation." in page
    assert "Ouvrir l'espace client pour un utilisateur (connexion unique)." in page


def test_a_created_key_shows_its_secret_once_and_stores_only_its_hash(admin_client, caplog):
    caplog.set_level(logging.DEBUG)
    response = post_form(admin_client, URL + "new/", {"name": "Plateforme d'analyses",
                                                      "scopes": ["credits:read", "credits:consume"]},
                         form_url=URL + "new/")
    assert response.status_code == 200  # the answer itself: no redirect, nothing flashed
    page = page_text(response)
    [key] = _keys()
    secret = page.split('<code class="api-key-secret user-select-all">')[1].split("</code>")[0]
    assert secret.startswith(key.prefix) and key.prefix.startswith("pdk_") and len(key.prefix) == 12
    assert api_keys.find_active_key(secret).id == key.id
    assert key.secret_hash == api_keys.hash_secret(secret) and secret not in key.secret_hash
    assert "Copiez cette clé maintenant : elle ne sera plus jamais affichée." in page
    assert key.scope_list == ["credits:read", "credits:consume"]
    assert key.created_by_id == admin_client.admin.id
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "api_key.created"))
    assert event.actor_id == admin_client.admin.id and event.details["prefix"] == key.prefix
    assert secret not in str(event.details)
    with admin_client.session_transaction() as session:
        assert secret not in str(dict(session))  # never in a flash kept for the next page
    listed = page_text(admin_client.get(URL))
    assert f"{key.prefix}…" in listed and "Plateforme d'analyses" in listed and "Alice Admin" in listed
    assert secret not in listed
    assert secret not in caplog.text


def test_a_key_without_name_or_scope_is_refused_and_nothing_is_created(admin_client):
    response = post_form(admin_client, URL + "new/", {"name": "  ", "scopes": []})
    page = page_text(response)
    assert "Indiquez le nom de la clé d'API." in page
    assert "Choisissez au moins une autorisation pour la clé d'API." in page
    unknown = post_form(admin_client, URL + "new/", {"name": "X", "scopes": ["credits:everything"]})
    assert unknown.status_code == 200 and "pdk_" not in page_text(unknown)
    assert _keys() == []


def test_revoking_asks_for_a_confirmation_then_refuses_the_key(admin_client, app):
    key, secret = api_keys.create_key("Ancienne plateforme", ["credits:read"], actor=None)
    db.session.commit()
    listed = page_text(admin_client.get(URL))
    assert f"/admin/cles-api/revoquer/?id={key.id}" in listed and "Active" in listed
    page = f"{URL}revoquer/?id={key.id}"
    unconfirmed = post_form(admin_client, page, {})
    assert "Cochez la case de confirmation pour révoquer la clé." in page_text(unconfirmed)
    assert _keys()[0].revoked_at is None
    response = post_form(admin_client, page, {"confirm": "y"})
    assert response.status_code == 302
    revoked = _keys()[0]
    assert revoked.revoked_at is not None and revoked.revoked_by_id == admin_client.admin.id
    assert db.session.scalar(select(AuditEvent.actor_id).where(AuditEvent.action == "api_key.revoked")) == \
        admin_client.admin.id
    listed = page_text(admin_client.get(URL))
    assert "Révoquée le" in listed and f"revoquer/?id={key.id}" not in listed
    denied = app.test_client().get("/api/v1/organisations", headers={"Authorization": f"Bearer {secret}"})
    assert denied.status_code == 401


def test_revoking_needs_the_csrf_token(admin_client):
    key, _secret = api_keys.create_key("Plateforme", ["credits:read"], actor=None)
    db.session.commit()
    response = admin_client.post(f"{URL}revoquer/?id={key.id}", data={"confirm": "y"})
    assert response.status_code == 400
    assert _keys()[0].revoked_at is None


def test_the_sales_role_has_no_menu_entry_and_gets_403(client, make):
    sales = make.staff(StaffRole.SALES)
    key, _secret = api_keys.create_key("Plateforme", ["credits:read"], actor=None)
    sign_in(client, sales)
    home = page_text(client.get("/admin/"))
    assert "Clés d'API" not in home and "/admin/cles-api/" not in home
    token = csrf_token(client)
    assert client.get(URL).status_code == 403
    for url in (URL + "new/", f"{URL}revoquer/?id={key.id}"):
        assert client.get(url).status_code == 403, url
        assert client.post(url, data={"csrf_token": token, "name": "X", "scopes": ["credits:read"],
                                      "confirm": "y"}).status_code == 403, url
    assert len(_keys()) == 1 and _keys()[0].revoked_at is None


def test_the_admin_menu_has_the_entry(admin_client):
    home = page_text(admin_client.get("/admin/"))
    assert 'href="/admin/cles-api/"' in home and "Clés d'API" in home
