"""The portal mounted in another Flask app (portal/embed.py): a bare host with its own template folder
and layout mounts it; every kind of portal page answers inside the host's layout, sign-in works with
its CSRF token and its rate limit, the API comes along when asked, and the host keeps its own pages."""

from __future__ import annotations

import pytest
from flask import Flask
from flask_login import LoginManager

from portal import api_keys
from portal.auth import hash_password
from portal.embed import PortalMountError, mount_portal
from portal.extensions import db, limiter
from portal.models import ClientRole

from .conftest import IsolatedClient
from .test_security_access import parameter_values, urls
from .test_security_world import build_world
from .web import PASSWORD, csrf_from, page_text, sign_in_client

PREFIX = "/clients"
HOST_MARKER = "Plateforme Hôte — cadre de la plateforme"
HOST_LAYOUT = """<!doctype html>
<html lang="fr"><head><title>{% block title %}{% endblock %} — Plateforme Hôte</title>
{% block head %}{% endblock %}</head>
<body><header>""" + HOST_MARKER + """</header>
{% if current_user.is_authenticated %}{% include "client/_navigation.html" %}{% endif %}
{% for category, message in get_flashed_messages(with_categories=True) %}
<p class="flash-{{ category }}">{{ message }}</p>{% endfor %}
<main>{% block content %}{% endblock %}</main>
{% block scripts %}{% endblock %}
</body></html>
"""


def bare_host(tmp_path, **settings) -> Flask:
    """A host app of its own: its template folder (its layout) and a page of its own."""
    templates = tmp_path / "host_templates"
    (templates / "host").mkdir(parents=True, exist_ok=True)
    (templates / "host" / "layout.html").write_text(HOST_LAYOUT, encoding="utf-8")
    host = Flask("host_platform", template_folder=str(templates))
    host.config.update({"SECRET_KEY": "host-secret-key", "TESTING": True, **settings})
    host.add_url_rule("/", "home", lambda: "Accueil de la plateforme")
    return host


@pytest.fixture
def mount(app, tmp_path):
    """`mount(api=False, **settings)`: a bare host mounting the portal at /clients with its own
    layout, on the test database. The rate limiter, shared by every app of the process, is given
    back to the suite's app afterwards."""
    hosts = []

    def build(*, api: bool = False, **settings) -> Flask:
        host = bare_host(tmp_path, **{"RATE_LIMITS_ENABLED": False,
                                      "MAIL_OUTBOX_DIR": app.config["MAIL_OUTBOX_DIR"], **settings})
        mount_portal(host, url_prefix=PREFIX, layout="host/layout.html",
                     database_url=app.config["SQLALCHEMY_DATABASE_URI"], api=api)
        host.test_client_class = IsolatedClient
        hosts.append(host)
        return host

    yield build
    limiter.init_app(app)
    for host in hosts:
        with host.app_context():
            db.engine.dispose()


def sign_in_with_password(browser, user, password: str = PASSWORD):
    """The portal's own sign-in form, on the host: its CSRF token, the email and the password."""
    token = csrf_from(browser.get(f"{PREFIX}/connexion").get_data(as_text=True))
    return browser.post(f"{PREFIX}/connexion",
                        data={"csrf_token": token, "email": user.email, "password": password})


def test_sign_in_then_the_quote_list_inside_the_hosts_layout(mount, make):
    world = make.world()
    user = world["users"][ClientRole.GESTIONNAIRE]
    user.password_hash = hash_password(PASSWORD)
    db.session.commit()
    browser = mount().test_client()

    page = browser.get(f"{PREFIX}/connexion")
    assert page.status_code == 200
    assert HOST_MARKER in page_text(page) and "Connexion à votre espace client" in page_text(page)
    signed_in = sign_in_with_password(browser, user)
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == f"{PREFIX}/devis"
    quotes = browser.get(f"{PREFIX}/devis")
    assert quotes.status_code == 200
    assert HOST_MARKER in page_text(quotes) and world["quote"].reference in page_text(quotes)


def test_every_kind_of_portal_page_answers_in_the_host(mount):
    world = build_world()
    host = mount()
    browser = host.test_client()
    sign_in_client(browser, world.mine.users[ClientRole.RESPONSABLE])  # sees every page, Paramètres too
    values = {name: options[:1] for name, options in parameter_values(world, world.mine).items()}
    answered = {}
    for rule in host.url_map.iter_rules():
        if rule.endpoint.startswith("client.") and rule.endpoint != "client.static" and "GET" in rule.methods:
            url = next(urls(rule, values))
            response = browser.get(url)
            answered[rule.endpoint] = response.status_code
            assert response.status_code < 500, url  # TESTING: a KeyError would have raised here
            if response.status_code == 200 and response.mimetype == "text/html":
                assert HOST_MARKER in page_text(response), url
    assert len(answered) >= 15 and answered["client.credits"] == answered["client.settings"] == 200
    assert answered["client.quote_pdf"] == 200 and answered["client.magic_link"] == 200
    with browser.get(f"{PREFIX}/static/payment.js") as script:  # the payment page's, under the prefix
        assert script.status_code == 200


def test_the_hosts_own_pages_stay_its_own_and_errors_inside_the_portal_are_pages(mount):
    browser = mount().test_client()
    home = browser.get("/")
    assert home.get_data(as_text=True) == "Accueil de la plateforme"
    assert "Content-Security-Policy" not in home.headers  # the portal's headers are for its pages
    portal_page = browser.get(f"{PREFIX}/connexion")
    assert "frame-ancestors 'self'" in portal_page.headers["Content-Security-Policy"]
    assert portal_page.headers["Cache-Control"] == "no-store"
    missing = browser.get(f"{PREFIX}/devis/999999")
    assert missing.status_code in (302, 404)  # anonymous: to the sign-in page first
    assert browser.get(f"{PREFIX}/nulle-part").status_code == 404


def test_the_embedded_portal_speaks_english_from_its_own_catalogue(mount):
    page = mount().test_client().get(f"{PREFIX}/connexion", headers={"Accept-Language": "en"})
    assert "Sign in to your client area" in page_text(page)


def test_the_embedded_sign_in_keeps_its_rate_limit(mount, make):
    world = make.world()
    user = world["users"][ClientRole.GESTIONNAIRE]
    db.session.commit()
    browser = mount(RATE_LIMITS_ENABLED=True, RATELIMIT_SIGNIN="3 per minute").test_client()
    for _attempt in range(3):
        assert sign_in_with_password(browser, user, "mauvais-mot-de-passe").status_code == 200
    refused = sign_in_with_password(browser, user, "mauvais-mot-de-passe")
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_the_api_comes_with_the_portal_when_asked(mount, make):
    org = make.organisation()
    _key, secret = api_keys.create_key("hôte", ["credits:read"], actor=None)
    db.session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    with_api = mount(api=True).test_client().get(f"/api/v1/organisations/{org.id}/credits", headers=headers)
    assert with_api.status_code == 200
    assert with_api.get_json() == {"object": "credit_balance", "organisation_id": org.id, "balance": 0}
    without = mount().test_client().get(f"/api/v1/organisations/{org.id}/credits", headers=headers)
    assert without.status_code == 404


def test_a_host_with_its_own_sign_in_or_no_secret_key_is_refused(tmp_path):
    with_login = bare_host(tmp_path)
    LoginManager(with_login)
    with pytest.raises(PortalMountError, match="Flask-Login"):
        mount_portal(with_login)
    with pytest.raises(PortalMountError, match="SECRET_KEY"):
        mount_portal(bare_host(tmp_path, SECRET_KEY=None))
