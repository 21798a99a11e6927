"""What every API call shares: a key (never a cookie) with the scope of the operation, no CSRF,
problem details in the caller's language, keyset pagination."""

from __future__ import annotations

import base64

import pytest
from flask_babel import force_locale
from sqlalchemy import select

from portal import api_keys
from portal.exceptions import ApiKeyInvalid
from portal.extensions import db
from portal.models import ClientRole, Quote

from .api_helpers import API, PROBLEM_JSON, api_headers, assert_problem
from .web import sign_in_client

QUOTES = "/organisations/{}/quotes"


@pytest.fixture
def world(make):
    world = make.world()
    db.session.commit()
    return world


def _quotes_url(world) -> str:
    return API + QUOTES.format(world["org"].id)


# --- The key ----------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer pdk_unknown", "Bearer " + "pdk_" + "x" * 43, "Basic dXNlcjpwYXNz",
    "Token pdk_unknown",
])
def test_a_missing_or_unknown_key_is_a_401_problem_with_www_authenticate(client, world, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = client.get(_quotes_url(world), headers=headers)
    body = assert_problem(response, 401, "api_key_invalid")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert body["title"] == "Unauthorized" and "Authorization: Bearer" in body["detail"]
    assert "data" not in body


def test_a_key_given_in_another_scheme_than_bearer_is_refused(client, world):
    secret = api_headers("quotes:read")["Authorization"].removeprefix("Bearer ")
    assert client.get(_quotes_url(world), headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    for authorization in (secret, f"Basic {secret}", f"Token {secret}"):
        assert_problem(client.get(_quotes_url(world), headers={"Authorization": authorization}),
                       401, "api_key_invalid")


def test_a_revoked_key_is_refused_at_its_next_call(client, world):
    headers = api_headers("quotes:read")
    assert client.get(_quotes_url(world), headers=headers).status_code == 200
    key = api_keys.find_active_key(headers["Authorization"].removeprefix("Bearer "))
    api_keys.revoke_key(key, actor=world["admin"])
    db.session.commit()

    response = client.get(_quotes_url(world), headers=headers)
    assert_problem(response, 401, "api_key_invalid")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_key_without_the_operations_scope_is_a_403(client, world):
    headers = api_headers("organisations:read", "credits:read")
    response = client.get(_quotes_url(world), headers=headers)
    body = assert_problem(response, 403, "api_scope_missing")
    assert body["scope"] == "quotes:read"
    assert "quotes:read" in body["detail"]
    assert "WWW-Authenticate" not in response.headers
    # The same key reads what its scopes allow.
    assert client.get(f"{API}/organisations/{world['org'].id}", headers=headers).status_code == 200


@pytest.mark.parametrize("url, scope", [
    ("/organisations/{org}/quotes", "quotes:read"),
    ("/organisations/{org}/invoices", "quotes:read"),
    ("/quotes/{quote}", "quotes:read"),
])
def test_each_read_operation_requires_its_scope(client, world, url, scope):
    url = API + url.format(org=world["org"].id, quote=world["quote"].id)
    others = [other for other in api_keys.SCOPES if other != scope]
    assert_problem(client.get(url, headers=api_headers(*others)), 403, "api_scope_missing")
    assert client.get(url, headers=api_headers(scope)).status_code == 200


# --- Never a cookie, never CSRF ---------------------------------------------------------------


def test_a_signed_in_staff_cookie_does_not_authenticate_the_api(staff_client):
    world = staff_client.world
    assert staff_client.get("/admin/").status_code == 200  # the cookie is a live staff session
    response = staff_client.get(_quotes_url(world))
    assert_problem(response, 401, "api_key_invalid")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_signed_in_client_cookie_does_not_authenticate_the_api(client, world):
    sign_in_client(client, world["users"][ClientRole.RESPONSABLE])
    assert client.get("/espace-client/devis").status_code == 200  # a live portal session
    assert_problem(client.get(_quotes_url(world)), 401, "api_key_invalid")
    email = world["users"][ClientRole.RESPONSABLE].email
    assert_problem(client.post(f"{API}/sessions", json={"email": email}), 401, "api_key_invalid")


def test_a_post_with_a_key_needs_no_csrf_token(app, client, world, make):
    assert app.config["WTF_CSRF_ENABLED"]
    member = world["users"][ClientRole.MEMBRE]
    sign_in_client(client, member)
    # The same browser's form POST without its token is refused by CSRF…
    assert client.post("/espace-client/demandes", data={"message": "Bonjour"}).status_code == 400
    product = make.product()
    db.session.commit()
    # …while the API, authenticated by its key, takes a POST without any token.
    response = client.post(f"{API}/organisations/{world['org'].id}/quote-requests",
                           json={"email": member.email, "items": [{"product_id": product.id, "quantity": 1}]},
                           headers={**api_headers("requests:write"), "Idempotency-Key": "csrf-free-1"})
    assert response.status_code == 201, response.get_data(as_text=True)
    assert client.post(f"{API}/sessions", json={"email": member.email},
                       headers=api_headers("sessions:write")).status_code == 201


# --- Problems in the caller's language ---------------------------------------------------------


def test_a_problem_speaks_french_by_default(client, world):
    body = assert_problem(client.get(_quotes_url(world)), 401, "api_key_invalid")
    assert body["detail"] == ("Clé d'API absente, inconnue ou révoquée : "
                              "envoyez « Authorization: Bearer <clé> ».")


def test_a_problem_speaks_english_to_an_english_caller(app, client, world):
    """Depends on the English catalogue (portal/translations/en): fails until it translates the
    API's refusals."""
    french = assert_problem(client.get(_quotes_url(world)), 401, "api_key_invalid")["detail"]
    english = assert_problem(client.get(_quotes_url(world), headers={"Accept-Language": "en-GB,en;q=0.8"}),
                             401, "api_key_invalid")["detail"]
    with app.test_request_context(headers={"Accept-Language": "en"}), force_locale("en"):
        translated = str(ApiKeyInvalid())
    assert english == translated
    assert english != french, "the English catalogue does not translate this refusal yet"


# --- Pagination -------------------------------------------------------------------------------


def test_pages_follow_one_another_without_duplicates_nor_gaps(client, world, make):
    org = world["org"]
    for _ in range(6):
        make.sent_quote(org, actor=world["admin"])
    db.session.commit()
    headers = api_headers("quotes:read")
    expected = sorted((quote.id for quote in _all_quotes(org)), reverse=True)
    assert len(expected) == 7

    seen, cursor, pages = [], None, []
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(_quotes_url(world), query_string=query, headers=headers).get_json()
        assert page["object"] == "list"
        pages.append(len(page["data"]))
        seen += [quote["id"] for quote in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
        if not page["has_more"]:
            break
    assert pages == [3, 3, 1]
    assert seen == expected  # newest first, each once, none missing


def test_a_page_does_not_shift_when_a_quote_is_sent_meanwhile(client, world, make):
    org = world["org"]
    for _ in range(3):
        make.sent_quote(org, actor=world["admin"])
    db.session.commit()
    headers = api_headers("quotes:read")
    first = client.get(_quotes_url(world), query_string={"limit": 2}, headers=headers).get_json()
    make.sent_quote(org, actor=world["admin"])  # newer than every listed one
    db.session.commit()
    second = client.get(_quotes_url(world), query_string={"limit": 2, "cursor": first["next_cursor"]},
                        headers=headers).get_json()
    ids = [quote["id"] for quote in first["data"] + second["data"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4


def _all_quotes(org) -> list[Quote]:
    return db.session.scalars(select(Quote).where(Quote.organisation_id == org.id)).all()


@pytest.mark.parametrize("cursor", [
    "not-base64!", "%%%", base64.urlsafe_b64encode(b"id:abc").decode(),
    base64.urlsafe_b64encode(b"page:2").decode(), base64.urlsafe_b64encode(b"id:" + b"9" * 30).decode(),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
def test_an_invalid_cursor_is_a_400(client, world, cursor):
    response = client.get(_quotes_url(world), query_string={"cursor": cursor},
                          headers=api_headers("quotes:read"))
    body = assert_problem(response, 400, "invalid_cursor")
    assert "next_cursor" in body["detail"]


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "", "1000000000000"])
def test_a_limit_out_of_range_is_a_422(client, world, limit):
    response = client.get(_quotes_url(world), query_string={"limit": limit},
                          headers=api_headers("quotes:read"))
    body = assert_problem(response, 422, "invalid_api_field")
    assert body["field"] == "limit"


@pytest.mark.parametrize("limit, shown", [("1", 1), ("100", 1)])
def test_limits_at_the_bounds_are_accepted(client, world, limit, shown):
    response = client.get(_quotes_url(world), query_string={"limit": limit},
                          headers=api_headers("quotes:read"))
    assert response.status_code == 200 and len(response.get_json()["data"]) == shown


def test_problems_are_json_for_unknown_api_routes_too(client, world):
    response = client.get(f"{API}/nothing-here", headers=api_headers())
    assert response.status_code == 404 and response.mimetype == PROBLEM_JSON
