"""Back-office pages served in a layout rendered once per view (fragments.admin_page): the same
page as Flask-Admin's own rendering, with this request's nonce, CSRF token, search, user and
flashed messages in place."""

from __future__ import annotations

import re

import pytest
from flask_admin import BaseView

from portal.admin import home, quotes_list
from portal.extensions import db

PAGES = ["/admin/", "/admin/?q=acme", "/admin/tous-les-devis/?statut=sent"]


def _without_request_values(html: str) -> str:
    return re.sub(r'nonce="[^"]+"|name="csrf_token" value="[^"]+"', "…", html)


def _full_render(view, template_name, **context):
    return BaseView.render(view, template_name, **context)


@pytest.mark.parametrize("path", PAGES)
def test_a_page_is_the_one_flask_admin_renders_whole(staff_client, monkeypatch, path):
    cached = staff_client.get(path).get_data(as_text=True)
    staff_client.get(path)  # from the cache this time
    again = staff_client.get(path).get_data(as_text=True)
    monkeypatch.setattr(home, "admin_page", _full_render)
    monkeypatch.setattr(quotes_list, "admin_page", _full_render)
    whole = staff_client.get(path).get_data(as_text=True)
    assert _without_request_values(again) == _without_request_values(whole)
    assert _without_request_values(cached) == _without_request_values(whole)


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


def test_the_search_typed_and_the_user_are_escaped_and_never_read_as_slots(staff_client):
    admin = staff_client.world["admin"]
    admin.full_name = "<b>Zoé</b> \ue001body\ue001"
    db.session.commit()
    html = staff_client.get("/admin/", query_string={"q": '"><script>x</script> \ue001csrf_token\ue001'}
                            ).get_data(as_text=True)
    assert "&lt;b&gt;Zoé&lt;/b&gt; \ue001body\ue001" in html
    assert "&#34;&gt;&lt;script&gt;x&lt;/script&gt; \ue001csrf_token\ue001" in html
    assert "<script>x</script>" not in html and "<b>Zoé</b>" not in html


def test_a_flashed_message_shows_once(staff_client):
    with staff_client.session_transaction() as session:
        session["_flashes"] = [("success", "Devis envoyé au client.")]
    assert "Devis envoyé au client." in staff_client.get("/admin/").get_data(as_text=True)
    assert "Devis envoyé au client." not in staff_client.get("/admin/").get_data(as_text=True)


@pytest.mark.parametrize("path", PAGES)
def test_a_flashed_message_is_shown_once(staff_client, path):
    with staff_client.session_transaction() as session:
        session["_flashes"] = [("success", "Devis envoyé au client.")]
    shown = staff_client.get(path).get_data(as_text=True)
    assert '<div class="alert alert-success" role="alert">Devis envoyé au client.</div>' in shown
    assert "Devis envoyé au client." not in staff_client.get(path).get_data(as_text=True)
