"""Error pages (issue 26, point 12): a 404, 403 or 500 is a page in the layout of the part of the
site its URL belongs to (the portal's under PORTAL_URL_PREFIX, the back office's under /admin/),
with its status, what happened and a way back; the API keeps its problem+json. Plus the favicon,
and a back office without `javascript:` links (the Content-Security-Policy blocks them)."""

from __future__ import annotations

import logging

import pytest
from flask import abort

from portal.extensions import db
from portal.models import ClientRole, StaffRole

from .web import page_text, sign_in, sign_in_client

PORTAL_LAYOUT = '<header class="topbar">'
ADMIN_LAYOUT = '<nav class="navbar navbar-expand-lg navbar-dark bg-dark mb-2"'
BACK_TO_PORTAL = '<a href="/espace-client/">Retour à votre espace client</a>'
BACK_TO_ADMIN = '<a class="btn btn-primary" href="/admin/">Retour à la gestion courante</a>'


def _html(response) -> str:
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def test_a_missing_portal_page_is_a_404_in_the_portals_layout_with_a_way_back(client):
    response = client.get("/espace-client/nulle-part")
    assert response.status_code == 404
    html = _html(response)
    assert PORTAL_LAYOUT in html and "/espace-client/static/portal.css" in html and ADMIN_LAYOUT not in html
    assert "<title>Page introuvable — Portail Devis</title>" in html
    assert '<p class="error-status">404</p>' in html and '<h1 id="error-title">Page introuvable</h1>' in html
    assert "<p>La page demandée n'existe pas ou ne vous est pas accessible.</p>" in page_text(response)
    assert BACK_TO_PORTAL in html


def test_a_signed_in_clients_missing_page_keeps_the_portals_navigation(client, make):
    world = make.world()
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    html = _html(client.get("/espace-client/devis/999999"))
    assert PORTAL_LAYOUT in html and 'href="/espace-client/devis"' in html and BACK_TO_PORTAL in html


def test_a_missing_back_office_page_is_a_404_in_the_back_offices_layout_with_a_way_back(staff_client):
    response = staff_client.get("/admin/nulle-part")
    assert response.status_code == 404
    html = _html(response)
    assert ADMIN_LAYOUT in html and "/static/admin.css" in html and PORTAL_LAYOUT not in html
    assert "Page introuvable" in html and BACK_TO_ADMIN in html
    assert staff_client.world["admin"].full_name in html  # the staff member's account menu is there


def test_a_refused_back_office_page_is_a_403_in_the_back_offices_layout(client, make):
    sign_in(client, make.staff(StaffRole.SALES))
    response = client.get("/admin/cgv/new/")
    assert response.status_code == 403
    html = _html(response)
    assert ADMIN_LAYOUT in html and "Accès refusé" in html
    assert "Vous n'avez pas accès à cette page." in page_text(response)
    assert BACK_TO_ADMIN in html


def test_a_client_refused_the_back_office_gets_its_layout_without_staff_controls(client, make):
    world = make.world()
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    response = client.get("/admin/")
    assert response.status_code == 403
    html = _html(response)
    assert ADMIN_LAYOUT in html and BACK_TO_ADMIN in html and "js-org-search" not in html


def test_a_url_elsewhere_offers_both_entrances(client):
    response = client.get("/nulle-part")
    assert response.status_code == 404
    html = _html(response)
    assert "Page introuvable" in html and "/espace-client/static/portal.css" in html
    assert '<a href="/espace-client/">Aller à l’espace client</a>' in html
    assert '<a href="/admin/">Aller à la gestion courante</a>' in html


def test_the_api_keeps_problem_json(client):
    response = client.get("/api/v1/nulle-part")
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


@pytest.fixture
def failing_app(other_app):
    """An app rendering unexpected exceptions as in production, with a view that fails under each
    part of the site."""
    app = other_app(PROPAGATE_EXCEPTIONS=False)

    def fail():
        raise RuntimeError("panne simulée")

    for path in ("/admin/panne", "/espace-client/panne", "/panne"):
        app.add_url_rule(path, endpoint=f"fail{path.replace('/', '_')}", view_func=fail)
    app.add_url_rule("/espace-client/interdit", endpoint="forbidden", view_func=lambda: abort(403))
    return app


@pytest.mark.parametrize("path, layout, way_back", [
    ("/espace-client/panne", PORTAL_LAYOUT, BACK_TO_PORTAL),
    ("/admin/panne", ADMIN_LAYOUT, BACK_TO_ADMIN),
    ("/panne", '<span class="brand">Portail Devis</span>', "Aller à l’espace client"),
])
def test_an_unexpected_error_is_a_500_page_in_its_layout(failing_app, path, layout, way_back):
    response = failing_app.test_client().get(path)
    assert response.status_code == 500
    html = _html(response)
    assert layout in html and way_back in html and "panne simulée" not in html
    assert "Une erreur est survenue" in html
    assert "Une erreur inattendue est survenue ; l'équipe technique est prévenue." in page_text(response)


def test_a_refused_portal_page_is_a_403_in_the_portals_layout(failing_app):
    response = failing_app.test_client().get("/espace-client/interdit")
    assert response.status_code == 403
    html = _html(response)
    assert PORTAL_LAYOUT in html and "Accès refusé" in html and BACK_TO_PORTAL in html


def test_an_error_page_whose_layout_fails_is_still_a_page(failing_app, monkeypatch, caplog):
    admin = failing_app.extensions["admin"][0]

    def broken_render(*args, **kwargs):
        raise RuntimeError("gabarit cassé")

    monkeypatch.setattr(admin.index_view, "render", broken_render)
    with caplog.at_level(logging.ERROR, logger="portal.errors"):
        response = failing_app.test_client().get("/admin/nulle-part")
    assert response.status_code == 404
    html = _html(response)
    assert "Page introuvable" in html and '<span class="brand">Portail Devis</span>' in html
    assert "Error page 404 could not be rendered in its layout" in caplog.text


def test_favicon_answers_at_the_root_and_the_sign_in_pages_link_their_icon(client):
    with client.get("/favicon.ico") as icon:
        assert icon.status_code == 200 and icon.mimetype == "image/vnd.microsoft.icon"
        assert icon.data[:4] == b"\x00\x00\x01\x00"  # an ICO file's header
    with client.get("/static/favicon.svg") as svg:
        assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    for path, href in [("/admin/connexion", "/static/favicon.svg"),
                       ("/espace-client/connexion", "/espace-client/static/favicon.svg")]:
        assert f'<link rel="icon" href="{href}" type="image/svg+xml">' in _html(client.get(path)), path


@pytest.mark.parametrize("path", ["/admin/", "/admin/tous-les-devis/", "/admin/nulle-part"])
def test_the_back_office_layout_has_no_javascript_links(staff_client, path):
    html = _html(staff_client.get(path))
    assert "javascript:" not in html  # (Flask-Admin's own list and form tabs: admin.js, see test_layout)
    assert 'data-toggle="dropdown" href="#"' in html  # the menu's categories
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html


def test_the_sign_in_pages_are_cards_with_the_products_name(client):
    staff = _html(client.get("/admin/connexion"))
    assert 'class="card shadow-sm signin-card"' in staff and "Portail Devis — Gestion courante" in staff
    portal = _html(client.get("/espace-client/connexion"))
    assert '<div class="signin">' in portal and "Portail Devis</p>" in portal
