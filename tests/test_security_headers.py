"""Security headers and cookies: the Content-Security-Policy (a nonce, no inline script, Stripe.js
named exactly), frame-ancestors, nosniff, HSTS, one-time link pages, cookie flags; the reverse
proxy (ProxyFix), trusted hosts, production settings, and link tokens masked in access logs."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from werkzeug.serving import make_server

import portal
from portal import create_app, headers
from portal.config import INSECURE_SECRET_KEY, Config, DevelopmentConfig, TestConfig
from portal.models import ClientRole

from .test_security_access import area, parameter_values, routes, urls
from .test_security_world import build_world
from .web import sign_in_client

ROOT = Path(__file__).resolve().parent.parent
PREVIEW_ENDPOINTS = {"emails.preview_html"}  # a sandboxed email preview: its own, stricter policy


def policy(response) -> dict[str, list[str]]:
    """The response's CSP as {directive: sources}."""
    directives = {}
    for part in response.headers["Content-Security-Policy"].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


class InlineCode(HTMLParser):
    """Collects inline <script>/<style> tags, event-handler attributes and javascript: links."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[tuple[str, str | None]] = []
        self.handlers: list[str] = []
        self.javascript_links: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if (tag == "script" and "src" not in values) or tag == "style":
            self.inline.append((tag, values.get("nonce")))
        if tag in ("script", "link") and values.get("nonce") is not None:
            self.inline.append((tag, values["nonce"]))
        self.handlers += [f"<{tag} {name}>" for name, _value in attrs if name.startswith("on")]
        if (values.get("href") or "").strip().lower().startswith("javascript:"):
            self.javascript_links.append(f"<{tag} class={values.get('class')}>")


@pytest.fixture
def world(make):
    return build_world()


def _pages(app, client, world):
    """(rule, response) for every GET route, each seen by who may see it."""
    values = parameter_values(world, world.mine)
    values["quote_id"] = values["quote_id"][:1]
    values["invoice_id"] = values["invoice_id"][:1]
    for rule in routes(app):
        if "GET" not in rule.methods:
            continue
        where = area(app, rule)
        client.delete_cookie("session")
        if where == "admin":
            sign_in_client(client, world.admin)
        elif where == "portal":
            sign_in_client(client, world.mine.users[ClientRole.RESPONSABLE])
        for url in urls(rule, values):
            yield rule, url, client.get(url)


def test_every_page_has_a_nonce_policy_and_no_inline_code(app, client, world):
    seen = 0
    for rule, url, response in _pages(app, client, world):
        assert response.headers["X-Content-Type-Options"] == "nosniff", url
        if rule.endpoint in PREVIEW_ENDPOINTS:
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'"), url
            continue
        csp = policy(response)
        assert "X-Frame-Options" not in response.headers, url
        for directive in ("script-src", "style-src"):
            assert "'unsafe-inline'" not in csp[directive] and "'unsafe-eval'" not in csp[directive], url
        nonces = {source for source in csp["script-src"] if source.startswith("'nonce-")}
        assert len(nonces) == 1, url
        nonce = nonces.pop()[len("'nonce-"):-1]
        assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'self'"], url
        if response.mimetype == "text/html" and response.status_code == 200:
            parser = InlineCode()
            parser.feed(response.get_data(as_text=True))
            assert all(value == nonce for _tag, value in parser.inline), (url, parser.inline)
            assert not parser.handlers, (url, parser.handlers)
            seen += 1
    assert seen >= 40


def test_flask_admin_inline_scripts_carry_the_requests_nonce(client, world):
    sign_in_client(client, world.admin)
    first, second = client.get("/admin/produits/"), client.get("/admin/produits/")
    assert policy(first)["script-src"][1] != policy(second)["script-src"][1]  # fresh per request
    for response in (first, second):
        value = policy(response)["script-src"][1][len("'nonce-"):-1]
        page = response.get_data(as_text=True)
        assert page.count(f'<script nonce="{value}"') >= 5  # Flask-Admin's own scripts
        assert len(set(re.findall(r'nonce="([^"]+)"', page))) == 1, page


def test_stripe_js_is_named_exactly_and_only_on_the_portal(app, client, world, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_JS_URL", "http://127.0.0.1:8420/js.stripe.com/v3/")
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", "http://127.0.0.1:8420")
    sign_in_client(client, world.mine.users[ClientRole.GESTIONNAIRE])
    portal_csp = policy(client.get(f"/espace-client/factures/{world.mine.invoice.id}/payer"))
    assert portal_csp["script-src"][-1] == "http://127.0.0.1:8420"
    assert portal_csp["frame-src"] == ["'self'", "http://127.0.0.1:8420"]
    assert portal_csp["connect-src"] == ["'self'", "http://127.0.0.1:8420"]
    assert portal_csp["default-src"] == ["'self'"]
    monkeypatch.setitem(app.config, "STRIPE_JS_URL", "https://js.stripe.com/v3/")
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", "https://api.stripe.com")
    production = policy(client.get("/espace-client/devis"))
    assert "https://js.stripe.com" in production["script-src"]
    # hooks.stripe.com: real Stripe's 3-D Secure challenge frames
    assert production["frame-src"] == ["'self'", "https://js.stripe.com", "https://hooks.stripe.com"]
    assert production["connect-src"] == ["'self'", "https://api.stripe.com"]
    sign_in_client(client, world.admin)
    admin_csp = policy(client.get("/admin/"))
    assert admin_csp["script-src"][0] == "'self'" and len(admin_csp["script-src"]) == 2
    assert admin_csp["connect-src"] == ["'self'"] and admin_csp["frame-src"] == ["'self'"]


def test_the_portal_is_framed_only_where_configured(app, client, world, monkeypatch):
    assert policy(client.get("/espace-client/connexion"))["frame-ancestors"] == ["'self'"]
    monkeypatch.setitem(app.config, "PORTAL_FRAME_ANCESTORS",
                        "https://intranet.client.example https://www.client.example")
    response = client.get("/espace-client/connexion")
    assert policy(response)["frame-ancestors"] == ["https://intranet.client.example",
                                                   "https://www.client.example"]
    assert "X-Frame-Options" not in response.headers
    assert policy(client.get("/admin/connexion"))["frame-ancestors"] == ["'self'"]  # never the back office
    monkeypatch.setitem(app.config, "PORTAL_FRAME_ANCESTORS", "https://a.example; script-src *")
    injected = policy(client.get("/espace-client/connexion"))
    assert injected["frame-ancestors"] == ["https://a.example"]
    assert "*" not in injected["script-src"]


def test_link_pages_are_never_cached_nor_sent_as_referrer(client, world):
    token = "x" * 43
    landing = client.get(f"/espace-client/lien/{token}")
    responses = {
        "landing": landing,
        "consume": client.post(f"/espace-client/lien/{token}", data={}),  # refused, still no-store
        "invitation": client.get(f"/espace-client/invitation/{token}"),
        "invitation post": client.post(f"/espace-client/invitation/{token}", data={}),
    }
    for name, response in responses.items():
        assert response.headers["Referrer-Policy"] == "no-referrer", name
        assert response.headers["Cache-Control"] == "no-store", name
    other = client.get("/espace-client/connexion")
    assert other.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_hsts_and_cookie_flags_in_production(app, client, monkeypatch):
    response = client.get("/espace-client/connexion")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    monkeypatch.setitem(app.config, "HSTS_SECONDS", 0)
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", False)
    client.delete_cookie("session")
    local = client.get("/admin/connexion")
    assert "Strict-Transport-Security" not in local.headers
    assert "Secure" not in local.headers["Set-Cookie"] and "HttpOnly" in local.headers["Set-Cookie"]


def test_production_and_development_defaults(monkeypatch):
    assert Config.SESSION_COOKIE_SECURE and Config.REMEMBER_COOKIE_SECURE and Config.HSTS_SECONDS > 0
    assert Config.SESSION_COOKIE_HTTPONLY and Config.SESSION_COOKIE_SAMESITE == "Lax"
    assert Config.PORTAL_FRAME_ANCESTORS == "'self'" and Config.RATE_LIMITS_ENABLED
    assert Config.RATELIMIT_SIGNIN == "10 per minute"
    # `make run` serves http://127.0.0.1: a Secure cookie would never come back.
    assert not DevelopmentConfig.SESSION_COOKIE_SECURE and DevelopmentConfig.HSTS_SECONDS == 0
    assert not TestConfig.RATE_LIMITS_ENABLED


def _echo(other):
    from flask import request

    other.add_url_rule("/_echo", "echo", lambda: f"{request.remote_addr} {request.scheme} {request.host}")
    return other.test_client()


def test_proxy_fix_is_applied_only_when_configured(other_app):
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
                 "X-Forwarded-Host": "portail.example"}
    direct = _echo(other_app()).get("/_echo", headers=forwarded)
    assert direct.get_data(as_text=True) == "127.0.0.1 http localhost"  # forged headers ignored
    proxied = _echo(other_app(PROXY_FIX_X_FOR=1, PROXY_FIX_X_PROTO=1, PROXY_FIX_X_HOST=1))
    assert proxied.get("/_echo", headers=forwarded).get_data(as_text=True) == (
        "203.0.113.7 https portail.example")
    two_hops = {**forwarded, "X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
    assert proxied.get("/_echo", headers=two_hops).get_data(as_text=True).startswith("203.0.113.7 ")


def test_trusted_hosts_refuse_another_host(other_app):
    client = other_app(TRUSTED_HOSTS=["portail.example"]).test_client()
    assert client.get("/espace-client/connexion", headers={"Host": "portail.example"}).status_code == 200
    assert client.get("/espace-client/connexion", headers={"Host": "evil.example"}).status_code == 400


def test_production_refuses_the_development_secret_key(monkeypatch, other_app):
    monkeypatch.setattr(portal, "PORTAL_ENV", "production")
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"TESTING": False, "SECRET_KEY": INSECURE_SECRET_KEY, "SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_production_selects_the_production_settings(monkeypatch, other_app):
    monkeypatch.setattr(portal, "PORTAL_ENV", "production")
    app = create_app({"SECRET_KEY": "a-long-random-production-secret", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                      "PORTAL_BASE_URL": "https://portail.example.fr",
                      "SINGLE_WORKER": True})  # memory:// rate limits: refused for several workers
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["HSTS_SECONDS"] == 31_536_000
    monkeypatch.setattr(portal, "PORTAL_ENV", "development")
    assert not create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"}).config["SESSION_COOKIE_SECURE"]


def test_production_refuses_to_start_without_portal_base_url(monkeypatch, other_app):
    monkeypatch.setattr(portal, "PORTAL_ENV", "production")
    settings = {"TESTING": False, "SECRET_KEY": "a-long-random-production-secret",
                "SQLALCHEMY_DATABASE_URI": "sqlite://", "SINGLE_WORKER": True}
    for missing in (None, ""):
        with pytest.raises(RuntimeError, match="set PORTAL_BASE_URL to the portal's public address"):
            create_app({**settings, "PORTAL_BASE_URL": missing})
    app = create_app({**settings, "PORTAL_BASE_URL": "https://portail.example.fr"})
    assert app.config["PORTAL_BASE_URL"] == "https://portail.example.fr"


READ_BASE_URLS = """
from portal.config import Config, DevelopmentConfig, TestConfig
print(repr((Config.PORTAL_BASE_URL, DevelopmentConfig.PORTAL_BASE_URL, TestConfig.PORTAL_BASE_URL)))
"""


def test_portal_base_url_has_no_production_default():
    """Settings are read at import: fresh interpreters, as `gunicorn wsgi:app` starts."""
    environment = {name: value for name, value in os.environ.items()
                   if name not in {"PORTAL_BASE_URL", "PORTAL_ENV"}}
    defaults = subprocess.run([sys.executable, "-c", READ_BASE_URLS], env=environment, check=True,
                              capture_output=True, text=True, cwd=ROOT).stdout
    # Production: none; `flask run` alone: Flask's port; the tests: the same, whatever the shell says.
    assert defaults.strip() == repr((None, "http://127.0.0.1:5000", "http://127.0.0.1:5000"))
    production = {**environment, "PORTAL_ENV": "production", "SECRET_KEY": "a-long-random-production-secret",
                  "PORTAL_SINGLE_WORKER": "1", "DATABASE_URL": "sqlite://"}
    refused = subprocess.run([sys.executable, "-c", "import wsgi"], env=production, capture_output=True,
                             text=True, cwd=ROOT)
    assert refused.returncode != 0
    assert "RuntimeError: PORTAL_ENV=production: set PORTAL_BASE_URL" in refused.stderr
    started = subprocess.run([sys.executable, "-c", "import wsgi"], capture_output=True, text=True, cwd=ROOT,
                             env={**production, "PORTAL_BASE_URL": "https://portail.example.fr"})
    assert started.returncode == 0, started.stderr


def test_link_tokens_are_masked_in_the_access_log(app, caplog):
    caplog.set_level(logging.DEBUG)
    token = "Abc_-123" * 5
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for path in (f"/espace-client/lien/{token}", f"/espace-client/invitation/{token}?x=1"):
            with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}{path}") as response:
                assert response.status == 200
    finally:
        server.shutdown()
        thread.join()
    lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert any("/espace-client/lien/[masqué]" in line for line in lines), lines
    assert any("/espace-client/invitation/[masqué]" in line for line in lines), lines
    assert not any(token in record.getMessage() for record in caplog.records)


def test_gunicorn_access_lines_are_masked_too():
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, '%(h)s "%(r)s" %(s)s',
                               ({"h": "10.0.0.1", "r": "POST /espace-client/lien/SECRETTOKEN HTTP/1.1",
                                 "s": "303"},), None)
    headers.RedactLinkTokens().filter(record)
    assert record.getMessage() == '10.0.0.1 "POST /espace-client/lien/[masqué] HTTP/1.1" 303'
    assert headers.redact("/espace-client/devis/12") == "/espace-client/devis/12"


def test_the_policy_only_names_absolute_origins():
    assert headers.origin("https://js.stripe.com/v3/") == "https://js.stripe.com"
    assert headers.origin("http://127.0.0.1:8420/js.stripe.com/v3/") == "http://127.0.0.1:8420"
    with pytest.raises(ValueError):
        headers.origin("/v3/")
