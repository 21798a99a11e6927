"""Every route of the URL map, for every kind of visitor, with another organisation's ids: the back
office is staff only, and some of it admins only (the sales role gets 403); the portal is clients
only and never shows another organisation's objects; the platform API answers no session cookie
(401: only an API key authenticates it, tests/test_api_auth.py); and every state-changing route
but the API's and the signed webhook's refuses a request without its CSRF token.

Routes are read from the URL map, so a new route is covered as soon as it exists; a URL parameter
this file does not know fails the tests until it is given values below."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from portal.models import ClientRole

from .test_security_world import Side, World, build_world, database_snapshot
from .web import csrf_from, sign_in, sign_in_client

VISITORS = ["anonymous", "responsable", "gestionnaire", "membre", "admin", "sales"]
# Open to anyone: sign-in pages, one-time link pages (the platform's single sign-on too), sign-out,
# the language switch (on the sign-in pages too), health check, signed webhooks, the site's icon.
PUBLIC = {"staff_auth.login", "staff_auth.logout", "client.login", "client.request_link",
          "client.magic_link", "client.consume_link", "client.invitation", "client.platform_sign_in",
          "client.logout", "staff_auth.choose_language", "client.choose_language",
          "health.healthz", "webhooks.stripe_events", "api.openapi_document", "favicon"}
# Pages of the portal that only the organisation's responsable sees (others: 404).
RESPONSABLE_ONLY = {"client.settings"}
# Routes that exist only with an optional feature (404 without it, as in this test config).
OPTIONAL = {"client.invoice_payment_confirm"}  # card confirmation on the server: localstripe only
# Back-office routes of the admin role alone: the sales role gets 403 (GET and POST alike). The seller
# settings (the IBAN clients pay to), writing and publishing the CGV (reading them is open to
# sales), and every route of the staff accounts, of the API keys and of the webhook endpoints.
ADMIN_ONLY = {"seller_settings.index", "terms.create_view", "terms.edit_view", "terms.publish"}
ADMIN_ONLY_VIEWS = {"staff_users", "api_keys", "webhook_endpoints"}
# Verified by their own signature, not by a session's CSRF token.
CSRF_EXEMPT_PATHS = {"/webhooks/stripe"}
# The platform API: a key in a header authenticates it, never a cookie, so CSRF does not apply.
API_PREFIX = "/api/v1/"
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
PARAMETER = re.compile(r"<(?:[^:>]+:)?([^>]+)>")


def routes(app) -> list:
    """Every rule of the URL map but static files, each in its area (admin, portal, public)."""
    rules = [rule for rule in app.url_map.iter_rules() if not rule.endpoint.endswith("static")]
    for rule in rules:
        area(app, rule)  # fails on a route of no known area
    return sorted(rules, key=lambda rule: (rule.rule, rule.endpoint))


def area(app, rule) -> str:
    prefix = (app.config["PORTAL_URL_PREFIX"] or "/espace-client").rstrip("/")
    if rule.endpoint in PUBLIC:
        return "public"
    if rule.rule.startswith("/admin"):
        return "admin"
    if rule.rule.startswith(API_PREFIX):
        return "api"
    if rule.rule == prefix or rule.rule.startswith(prefix + "/"):
        return "portal"
    pytest.fail(f"route {rule.rule} ({rule.endpoint}) is in no known area: classify it in {__name__}")


def parameter_values(world: World, side: Side) -> dict[str, list]:
    """Values for each URL parameter name: `side`'s objects of that kind (all of them)."""
    return {
        "organisation_id": [side.org.id],
        "quote_id": [side.pending.id, side.accepted.id, side.refused.id, side.draft.id],
        "invoice_id": [side.invoice.id, side.paid_invoice.id, side.credited_invoice.id,
                       side.credit_note.id],
        "request_id": [side.request.id, side.declined_request.id],
        "email_id": [world.emails[0].id],
        "terms_id": [world.terms.id],
        "tab": ["informations", "utilisateurs", "devis", "factures", "credits", "historique"],
        "export_type": ["csv"],
        "token": ["x" * 43],
        "external_id": [side.org.external_id or "inconnu"],
        "siren": [side.org.siren],
        # Not a URL parameter: the record of the webhook pages (Flask-Admin's `?id=`).
        "endpoint_id": [world.endpoint.id] if world.endpoint else [],
    }


def urls(rule, values: dict[str, list]) -> Iterator[str]:
    """The rule's URL with each value of its parameter (one parameter varies, the others first)."""
    names = PARAMETER.findall(rule.rule)
    unknown = [name for name in names if name not in values]
    if unknown:
        pytest.fail(f"{rule.rule} ({rule.endpoint}): no test values for URL parameter(s) {unknown}; "
                    f"add them to parameter_values() in {__name__}")
    if not names:
        yield rule.rule
        return
    for varying in names:
        for value in values[varying]:
            chosen = {name: values[name][0] for name in names} | {varying: value}
            yield PARAMETER.sub(lambda match, chosen=chosen: str(chosen[match.group(1)]), rule.rule)


def requests_of(rule) -> list[str]:
    return [method for method in ("GET", "POST", "PUT", "PATCH", "DELETE") if method in rule.methods]


def send(client, method: str, url: str, token: str):
    if method == "GET":
        return client.get(url)
    return client.open(url, method=method, data={"csrf_token": token})


@pytest.fixture
def world(make):
    return build_world()


def admin_only(rule) -> bool:
    return rule.endpoint in ADMIN_ONLY or rule.endpoint.partition(".")[0] in ADMIN_ONLY_VIEWS


def _visit_as(client, world: World, visitor: str) -> str:
    """Sign `visitor` in; return a CSRF token of their session."""
    if visitor in ("admin", "sales"):
        sign_in(client, world.admin if visitor == "admin" else world.sales)
    elif visitor != "anonymous":
        sign_in_client(client, world.mine.users[ClientRole(visitor)])
    return csrf_from(client.get("/espace-client/connexion").get_data(as_text=True))


@pytest.mark.parametrize("visitor", VISITORS)
def test_every_route_with_another_organisations_ids(app, client, world, visitor):
    token = _visit_as(client, world, visitor)
    values = parameter_values(world, world.theirs)
    checked = {"admin": 0, "portal": 0, "api": 0, "admin only": 0}
    for rule in routes(app):
        where_area = area(app, rule)
        if where_area == "public":
            continue
        for url in urls(rule, values):
            for method in requests_of(rule):
                response = send(client, method, url, token)
                _expect(where_area, visitor, rule, response, f"{visitor} {method} {url} ({rule.endpoint})")
                checked[where_area] += 1
                checked["admin only"] += admin_only(rule)
    assert checked["admin"] >= 60 and checked["portal"] >= 20 and checked["api"] >= 15, checked
    assert checked["admin only"] >= 12, checked


def _expect(where_area: str, visitor: str, rule, response, where: str) -> None:
    status, location = response.status_code, response.headers.get("Location", "")
    if where_area == "api":
        assert status == 401 and response.content_type == "application/problem+json", (where, status)
    elif visitor == "anonymous":
        sign_in_page = "/admin/connexion" if where_area == "admin" else "/espace-client/connexion"
        assert status == 302 and sign_in_page in location, (where, status, location)
    elif where_area == "admin":
        if visitor == "admin" or (visitor == "sales" and not admin_only(rule)):
            assert status < 500 and status != 403 and "/connexion" not in location, (where, status)
        else:
            assert status == 403, (where, status)
    elif visitor in ("admin", "sales"):
        assert status == 403, (where, status)
    elif PARAMETER.search(rule.rule) or (rule.endpoint in RESPONSABLE_ONLY and visitor != "responsable"):
        assert status == 404, (where, status)  # their objects do not exist for us
    else:
        assert status < 500 and status != 403, (where, status)


@pytest.mark.parametrize("visitor", ["responsable", "gestionnaire", "membre"])
def test_the_portal_with_the_organisations_own_ids(app, client, world, visitor):
    token = _visit_as(client, world, visitor)
    values = parameter_values(world, world.mine)
    own_visible = {"quote_id": values["quote_id"][:3], "invoice_id": values["invoice_id"]}
    values |= own_visible  # the draft quote is hidden from clients: 404 is right for it
    checked = 0
    for rule in routes(app):
        if area(app, rule) != "portal":
            continue
        for url in urls(rule, values):
            for method in requests_of(rule):
                response = send(client, method, url, token)
                where = f"{visitor} {method} {url} ({rule.endpoint})"
                hidden = rule.endpoint in RESPONSABLE_ONLY and visitor != "responsable"
                if hidden or rule.endpoint in OPTIONAL:
                    assert response.status_code == 404, where
                else:
                    assert response.status_code < 500 and response.status_code not in (403, 404), (
                        where, response.status_code)
                checked += 1
    assert checked >= 20


def test_a_draft_is_hidden_from_its_own_organisation(client, world):
    sign_in_client(client, world.mine.users[ClientRole.RESPONSABLE])
    draft = world.mine.draft.id
    for url in (f"/espace-client/devis/{draft}", f"/espace-client/devis/{draft}/pdf"):
        assert client.get(url).status_code == 404, url


def test_the_admin_only_routes_exist(app):
    """The list above names routes of the URL map: a renamed one would leave the matrix silently."""
    endpoints = {rule.endpoint for rule in routes(app)}
    assert endpoints >= ADMIN_ONLY, ADMIN_ONLY - endpoints
    views = {endpoint.partition(".")[0] for endpoint in endpoints}
    assert views >= ADMIN_ONLY_VIEWS, ADMIN_ONLY_VIEWS - views


def test_the_public_routes_are_only_those_listed(app):
    """A route is public only by being listed in PUBLIC: anything else is in the matrix above."""
    endpoints = {rule.endpoint for rule in routes(app)}
    assert not PUBLIC - endpoints, PUBLIC - endpoints


@pytest.mark.parametrize("visitor", ["anonymous", "signed in"])
def test_every_state_changing_route_refuses_a_request_without_its_csrf_token(app, client, world, visitor):
    values = parameter_values(world, world.mine)
    checked = 0
    for rule in routes(app):
        if rule.rule in CSRF_EXEMPT_PATHS or rule.rule.startswith(API_PREFIX):
            continue
        if visitor == "signed in":
            _sign_in_for(client, world, area(app, rule))
        for method in sorted(STATE_CHANGING & rule.methods):
            url = next(urls(rule, values))
            before = database_snapshot()
            missing = client.open(url, method=method, data={"email": "x@example.test", "confirm": "y"})
            foreign = client.open(url, method=method, data={"csrf_token": _foreign_token(app)})
            assert missing.status_code == 400, (visitor, method, url, missing.status_code)
            assert foreign.status_code == 400, (visitor, method, url, foreign.status_code)
            assert database_snapshot() == before, (visitor, method, url)
            checked += 1
    assert checked >= 30


def _sign_in_for(client, world: World, where_area: str) -> None:
    """The visitor who may use the route: staff in the back office, the responsable in the portal."""
    client.delete_cookie("session")
    if where_area == "admin":
        sign_in_client(client, world.admin)  # a signed-in session, without a password hash per route
    elif where_area == "portal":
        sign_in_client(client, world.mine.users[ClientRole.RESPONSABLE])


def _foreign_token(app) -> str:
    """A valid CSRF token, but of another visitor's session."""
    other = app.test_client()
    return csrf_from(other.get("/espace-client/connexion").get_data(as_text=True))


def test_the_webhook_and_the_api_are_the_only_routes_exempt_from_csrf(app):
    from portal.extensions import csrf

    exempt = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        blueprint = rule.endpoint.rpartition(".")[0]
        exempt_blueprints = {getattr(exempted, "name", exempted) for exempted in csrf._exempt_blueprints}
        if (f"{view.__module__}.{view.__name__}" in csrf._exempt_views
                or blueprint in exempt_blueprints):
            exempt.append(rule.rule)
    assert {path for path in exempt if not path.startswith(API_PREFIX)} <= CSRF_EXEMPT_PATHS, exempt
    assert any(path.startswith(API_PREFIX) for path in exempt)


@pytest.mark.parametrize("visitor", ["admin", "responsable"])
def test_ids_beyond_the_database_integers_are_not_found(app, client, world, visitor):
    """A huge id in a URL is a 404 (it is no database INTEGER), never a database error."""
    _visit_as(client, world, visitor)
    huge = {name: ["3000000000", "99999999999999999999999"] for name in ("organisation_id", "quote_id",
                                                                          "invoice_id", "request_id",
                                                                          "email_id", "terms_id")}
    values = parameter_values(world, world.mine) | huge
    wanted = "admin" if visitor == "admin" else "portal"
    checked = 0
    for rule in routes(app):
        if area(app, rule) != wanted or "int:" not in rule.rule:
            continue
        for url in urls(rule, values):
            response = client.get(url) if "GET" in rule.methods else client.post(url, data={})
            assert response.status_code == 404, (url, response.status_code)
            checked += 1
    assert checked >= 10


HOSTILE_QUERIES = [{name: value for name in ("avant", "id", "page", "organisation", "periode", "statut", "q",
                                             "search", "sort", "desc", "flt0_0", "page_size")}
                   for value in ("9" * 30, "3000000000", "-1", "²", "\x00", "x" * 3000)]


@pytest.mark.parametrize("visitor", ["admin", "responsable"])
def test_hostile_query_parameters_never_break_a_page(app, client, world, visitor):
    """Numbers beyond any database integer, Unicode digits, NUL… in the query string of every page:
    the page or a 4xx, never a 500."""
    _visit_as(client, world, visitor)
    wanted = "admin" if visitor == "admin" else "portal"
    values = parameter_values(world, world.mine)
    urls_seen = [next(urls(rule, values)) for rule in routes(app)
                 if area(app, rule) == wanted and "GET" in rule.methods]
    for url in urls_seen:
        for query in HOSTILE_QUERIES:
            response = client.get(url, query_string=query)
            assert response.status_code < 500, (url, query["avant"][:10], response.status_code)
    assert len(urls_seen) >= (40 if visitor == "admin" else 10)
