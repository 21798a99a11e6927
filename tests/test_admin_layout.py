"""The back office's layout is Flask-Admin's (admin/portal_base.html extends its bootstrap4
admin/base.html), rendered for each request: its own nonce and CSRF token, the search typed and the
user's name escaped, flashed messages once, and a menu of the signed-in staff member's role."""

from __future__ import annotations

import re

import pytest
from flask import template_rendered, url_for

from portal.extensions import db
from portal.models import StaffRole

from .test_security_access import area, parameter_values, routes, urls
from .test_security_world import build_world
from .web import sign_in

PAGES = ["/admin/", "/admin/?q=acme", "/admin/tous-les-devis/?statut=sent"]


@pytest.mark.parametrize("path, template", [("/admin/", "admin/home.html"),
                                            ("/admin/?q=acme", "admin/home.html"),
                                            ("/admin/tous-les-devis/", "admin/quote_list.html")])
def test_a_page_is_its_template_in_flask_admins_layout(app, staff_client, path, template):
    rendered = []

    def note(sender, template, context, **extra):
        rendered.append((template.name, context.get("admin_view")))

    template_rendered.connect(note, app)
    try:
        html = staff_client.get(path).get_data(as_text=True)
    finally:
        template_rendered.disconnect(note, app)
    [(name, view)] = rendered
    assert name == template and view is not None  # the view's self.render(...), Flask-Admin's context
    assert '<nav class="navbar navbar-expand-lg navbar-dark bg-dark mb-2"' in html  # admin/base.html
    assert "/static/admin.css" in html and "/static/admin.js" in html  # admin/portal_base.html


@pytest.mark.parametrize("path", PAGES)
def test_each_request_gets_its_own_nonce_and_a_csrf_token_that_signs_out(staff_client, path):
    for _ in range(2):
        response = staff_client.get(path)
        html = response.get_data(as_text=True)
        policy_nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)
        assert set(re.findall(r'nonce="([^"]+)"', html)) == {policy_nonce}
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert staff_client.post("/admin/deconnexion", data={"csrf_token": token}).status_code == 302
    assert staff_client.get(path).status_code == 302  # signed out: to the sign-in page


def test_the_search_typed_and_the_user_are_escaped(staff_client):
    admin = staff_client.world["admin"]
    admin.full_name = "<b>Zoé</b>"
    db.session.commit()
    html = staff_client.get("/admin/", query_string={"q": '"><script>x</script>'}).get_data(as_text=True)
    assert "&lt;b&gt;Zoé&lt;/b&gt;" in html
    assert 'value="&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in html  # the navbar's and the page's
    assert "<script>x</script>" not in html and "<b>Zoé</b>" not in html


@pytest.mark.parametrize("path", PAGES)
def test_a_flashed_message_is_shown_once(staff_client, path):
    with staff_client.session_transaction() as session:
        session["_flashes"] = [("success", "Devis envoyé au client.")]
    shown = staff_client.get(path).get_data(as_text=True)
    assert '<div class="alert alert-success" role="alert">Devis envoyé au client.</div>' in shown
    assert "Devis envoyé au client." not in staff_client.get(path).get_data(as_text=True)


# --- The menu of a role ---------------------------------------------------------------------------


def _menu(html: str) -> str | None:
    """The layout's navbar; None on a page outside the layout (an email's HTML preview)."""
    found = re.search(r'<nav class="navbar.*?</nav>', html, re.S)
    return found and found.group(0)


def _admin_only_entries(app) -> dict[str, str]:
    """The menu entry (name → URL) of each view kept to administrators."""
    with app.test_request_context():
        return {str(view.name): url_for(f"{view.endpoint}.{view._default_view}")
                for admin in app.extensions["admin"] for view in admin._views
                if getattr(view, "required_role", None) == StaffRole.ADMIN}


def test_a_role_restricted_view_never_shows_in_another_roles_menu(app, client):
    """Every page of the back office, visited by an admin, then a sales member, then the admin again:
    the sales menu never has the admin-only entries, the admin's always has them."""
    entries = _admin_only_entries(app)
    assert {"Paramètres vendeur", "Comptes de l'équipe", "Clés d'API"} <= set(entries)
    world = build_world()
    admin, sales = client, app.test_client()  # IsolatedClients: a browser each
    sign_in(admin, world.admin)
    sign_in(sales, world.sales)
    values = parameter_values(world, world.mine)
    checked = 0
    for rule in routes(app):
        if area(app, rule) != "admin" or "GET" not in rule.methods:
            continue
        for path in urls(rule, values):
            pages = [client.get(path) for client in (admin, sales, admin)]
            for (response, role) in zip(pages, ("admin", "sales", "admin"), strict=True):
                if response.status_code != 200 or response.mimetype != "text/html":
                    continue
                menu = _menu(response.get_data(as_text=True))
                if menu is None:
                    continue
                for name, url in entries.items():
                    shown = f'href="{url}"' in menu
                    assert shown == (role == "admin"), (role, path, name)
                checked += role == "sales"
    assert checked >= 40, checked
