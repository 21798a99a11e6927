"""Random form data (Hypothesis) to every POST route of the portal and the back office, signed in as
the user the route is for, with a valid CSRF token: never a 500, a refused request (4xx, or an
error message) changes nothing in the database, and nothing is logged with a traceback. Every JSON
route refuses a body that is no JSON object (an array, a string, a number, null) with a 400.

Routes come from the URL map; each one's field names and defaults come from the page that holds its
form, so the fuzzer sends the real fields with random values, and random extra fields."""

from __future__ import annotations

import html
import logging
import re
import uuid
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal.models import ClientRole

from .test_security_access import API_PREFIX, CSRF_EXEMPT_PATHS, area, parameter_values, routes, urls
from .test_security_world import PAYLOAD, World, build_world, database_snapshot
from .web import sign_in_client

# Where the form of a POST-only route is (the page a user submits it from).
FORM_PAGES = {
    "client.request_link": lambda v: "/espace-client/connexion",
    "client.decide": lambda v: f"/espace-client/devis/{v['quote_id'][0]}",
    "client.logout": lambda v: "/espace-client/devis",
    "client.invoice_payment_confirm": lambda v: f"/espace-client/factures/{v['invoice_id'][0]}/payer",
    "staff_auth.logout": lambda v: "/admin/",
    "staff_auth.choose_language": lambda v: "/admin/",
    "client.choose_language": lambda v: "/espace-client/compte",
    "requests.answer": lambda v: f"/admin/demandes/{v['request_id'][0]}",
    "requests.decline": lambda v: f"/admin/demandes/{v['request_id'][0]}",
    "quote_editor.revise": lambda v: f"/admin/devis/{v['quote_id'][0]}",
    "emails.retry": lambda v: f"/admin/emails/details/?id={v['email_id'][0]}",
    "monthly_close.run": lambda v: "/admin/cloture-mensuelle/",
    "webhook_endpoints.resend": lambda v: f"/admin/webhooks/details/?id={v['endpoint_id'][0]}",
    "webhook_endpoints.send_test": lambda v: f"/admin/webhooks/details/?id={v['endpoint_id'][0]}",
}
# The object each route is best fuzzed on, when not the first of its kind (see parameter_values).
OBJECTS = {
    "quote_editor.detail": lambda world: {"quote_id": [world.mine.draft.id]},  # a draft is edited
    "quote_editor.send": lambda world: {"quote_id": [world.mine.draft.id]},
}
# Flask-Admin's list-page endpoints (actions, deletion, inline edits) take their form from the list.
LIST_ENDPOINTS = re.compile(r"\.(action_view|delete_view|ajax_update)$")
EXTRA_NAMES = ["action", "rowid", "id", "url", "confirm", "accept_terms", "terms_version_id", "reason",
               "message", "email", "password", "period", "name", "value", "pk", "list_form_pk",
               "submission_token", "lines-0-product_id", "lines-0-quantity", "lines-0-unit_price",
               "quantity-1", "allowed", "amount", "reference"]
ERROR_MARKERS = re.compile(r'class="[^"]*\b(alert-danger|flash-error|invalid-feedback|is-invalid)\b')

SAFE_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
NUMBERS = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str),
                    st.from_regex(r"-?\d{1,12}([,.]\d{0,4})?", fullmatch=True))
HUGE = "9" * 5000  # int() of more than 4,300 digits raises ValueError (Python 3.11)
SPECIAL = st.sampled_from(["", " ", "0", "-1", "1", "2", "y", "on", "true", "valider", "refuser",
                           "2147483648", "9" * 40, HUGE, str(2**63), "-0", " 12 ", "1_000", "+5",
                           "1e9", "NaN", "Infinity", "-Infinity", "12,345", "1 000,50",
                           "2020-01", "2099-12", "2026-13", "0000-00", PAYLOAD, "é" * 300, "x" * 5000,
                           "' OR 1=1 --", "\x00", "a\x00b", "\r\n", "../../etc/passwd", "%s%n",
                           "gestionnaire@example.test", "responsable", "membre", "monthly", "csv", "²", "٣"])
VALUES = st.one_of(SAFE_TEXT, NUMBERS, SPECIAL)
# Sent first, in every field at once, on every route: values that look like numbers to str.isdigit()
# but not to int() (Unicode digits), numbers beyond any database integer, NUL, very long text.
HOSTILE = ["²", "٣", "١٢", "9" * 30, HUGE, str(2**63), "3000000000", "-2147483649", "-1", "1e400", "NaN",
           "Infinity", "\x00", "é" * 1000, "<" * 300]
# …and one field at a time (the others valid), where one field's error would hide another's.
HOSTILE_ONE_BY_ONE = ["²", "9" * 30, HUGE, str(2**63), "NaN"]


class Forms(HTMLParser):
    """The POST forms of a page: action path → {field name: default value}."""

    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_url = page_url
        self.forms: dict[str, dict[str, str]] = {}
        self.unticked: dict[str, str] = {}
        self._current: dict[str, str] | None = None
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            if values.get("method", "get").lower() == "post":
                action = urlsplit(values.get("action") or self.page_url).path
                self._current = self.forms.setdefault(action, {})
            return
        if self._current is None:
            return
        if tag == "option" and self._select and (self._select not in self._current or "selected" in values):
            self._current[self._select] = values.get("value", "")
        if not values.get("name"):
            return
        name = values["name"]
        if tag == "input":
            if values.get("type") in ("checkbox", "radio"):
                if "checked" in values:
                    self._current[name] = values.get("value") or "y"
                else:  # kept aside: ticked for the one-field-at-a-time pass, to get past the form
                    self.unticked[name] = values.get("value") or "y"
            elif values.get("type") not in ("submit", "button", "file"):
                self._current[name] = values.get("value", "")
        elif tag == "button" and values.get("value"):
            self._current.setdefault(name, values["value"])
        elif tag == "textarea":
            self._current[name], self._textarea = "", name
        elif tag == "select":
            self._select = name

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._current is not None and self._textarea:
            self._current[self._textarea] += data


def _sign_in(client, world: World, where: str) -> None:
    client.delete_cookie("session")
    if where == "admin":
        sign_in_client(client, world.admin)
    elif where == "portal":
        sign_in_client(client, world.mine.users[ClientRole.RESPONSABLE])


def _form_of(client, rule, url: str, values: dict) -> tuple[str, dict[str, str], dict[str, str]]:
    """The page of the route's form, the form's fields with their defaults, its unticked boxes."""
    if rule.endpoint in FORM_PAGES:
        page_url = FORM_PAGES[rule.endpoint](values)
    elif LIST_ENDPOINTS.search(rule.endpoint):
        page_url = url.rsplit("/", 2)[0] + "/"
    else:
        page_url = url  # the route's own page (GET), or a GET route at the same address
    page = client.get(page_url)
    if rule.endpoint not in FORM_PAGES and page.status_code == 405:
        pytest.fail(f"{rule.endpoint}: say in FORM_PAGES where its form is")
    forms = Forms(page_url)
    forms.feed(page.get_data(as_text=True) if page.mimetype == "text/html" else "")
    target = urlsplit(url).path
    fields = forms.forms.get(target) or next(iter(forms.forms.values()), {})
    return page_url, fields, forms.unticked


def _refused(client, response) -> bool:
    if response.status_code >= 400:
        return True
    with client.session_transaction() as session:
        if any(category in ("error", "danger") for category, _message in session.get("_flashes", [])):
            return True
    return response.mimetype == "text/html" and bool(ERROR_MARKERS.search(response.get_data(as_text=True)))


def _post_routes(app) -> list:
    return [rule for rule in routes(app) if "POST" in rule.methods and rule.rule not in CSRF_EXEMPT_PATHS
            and not rule.rule.startswith(API_PREFIX)]


@pytest.fixture
def world(make):
    return build_world()


def test_every_post_route_is_fuzzed(app):
    assert {rule.endpoint for rule in _post_routes(app)} == set(FUZZED)
    assert len(FUZZED) >= 40


def _tracebacks(caplog) -> list[str]:
    """Log records of the requests so far that carry a traceback (a refusal is one warning line)."""
    return [f"{record.name}: {record.getMessage()}" for record in caplog.records if record.exc_info]


def _fuzz(app, client, world: World, endpoint: str, caplog) -> None:
    [rule] = [rule for rule in _post_routes(app) if rule.endpoint == endpoint]
    where = area(app, rule)
    values = parameter_values(world, world.mine) | OBJECTS.get(endpoint, lambda world: {})(world)
    url = next(urls(rule, values)) + _object_query(app, endpoint)
    form: dict[str, dict[str, str]] = {}

    def session_ready() -> bool:
        with client.session_transaction() as session:
            session.pop("_flashes", None)  # messages of earlier examples, never displayed
            return "csrf_token" in session and (where == "public" or "_user_id" in session)

    def fresh_form() -> dict[str, str]:
        """Signed in again with the form's fields and token, when an example signed out."""
        if not form or not session_ready():
            _sign_in(client, world, where)
            _page_url, form["fields"], form["unticked"] = _form_of(client, rule, url, values)
            form["fields"].setdefault("csrf_token", _token(client))
        fields = dict(form["fields"])
        if "submission_token" in fields:
            fields["submission_token"] = uuid.uuid4().hex  # a new form, as each page view gives
        return fields

    names = sorted(set(fresh_form()) | set(EXTRA_NAMES) - {"csrf_token"})

    def check(data: dict[str, str]) -> None:
        before = database_snapshot()
        caplog.clear()
        response = client.post(url, data=data)
        assert response.status_code < 500, (url, response.status_code, {k: v[:40] for k, v in data.items()})
        assert not _tracebacks(caplog), (url, _tracebacks(caplog))
        if _refused(client, response):
            assert database_snapshot() == before, f"a refused POST {url} changed the database: {data!r}"

    for value in HOSTILE:
        fields = fresh_form()
        check({**fields, **dict.fromkeys(names, value), "csrf_token": fields["csrf_token"]})
    for name in sorted(set(form["fields"]) - {"csrf_token"}):
        for value in HOSTILE_ONE_BY_ONE:
            fields = fresh_form()
            check({**form["unticked"], **fields, name: value})

    @given(chosen=st.dictionaries(st.sampled_from(names), VALUES, max_size=len(names)),
           extra=st.dictionaries(SAFE_TEXT.filter(bool), VALUES, max_size=3),
           keep_defaults=st.booleans())
    def attempt(chosen, extra, keep_defaults):
        fields = fresh_form()
        data = {**(fields if keep_defaults else {}), **extra, **chosen, "csrf_token": fields["csrf_token"]}
        note(f"POST {url} {data!r}")
        check(data)

    attempt()


def _object_query(app, endpoint: str) -> str:
    """`?id=` of a row, for Flask-Admin's edit view (without it, there is nothing to edit)."""
    from sqlalchemy import select

    from portal.extensions import db

    if not endpoint.endswith(".edit_view"):
        return ""
    view_endpoint = endpoint.split(".")[0]
    [view] = [view for admin in app.extensions["admin"] for view in admin._views
              if view.endpoint == view_endpoint]
    return f"?id={db.session.scalars(select(view.model.id).order_by(view.model.id)).first()}"


def _token(client) -> str:
    from .web import csrf_from

    return csrf_from(client.get("/espace-client/connexion").get_data(as_text=True))


def _post_endpoints() -> list[str]:
    """Every POST route of the URL map (read from an app built for it, at collection)."""
    from portal import create_app
    from portal.config import TestConfig

    url_map = create_app(TestConfig).url_map
    return sorted({rule.endpoint for rule in url_map.iter_rules()
                   if "POST" in rule.methods and rule.rule not in CSRF_EXEMPT_PATHS
                   and not rule.rule.startswith(API_PREFIX)})


FUZZED = _post_endpoints()


@pytest.mark.parametrize("endpoint", FUZZED)
def test_random_forms_never_break_and_refusals_change_nothing(app, client, world, endpoint, caplog):
    caplog.set_level(logging.WARNING)
    _fuzz(app, client, world, endpoint, caplog)


def test_data_the_database_refuses_is_a_french_400_that_changes_nothing(other_app, caplog):
    """A value the database cannot store (out of range, too long, a NUL byte on PostgreSQL) is the
    request's fault: 400 with a French message, the transaction rolled back, one warning logged."""
    from flask import request
    from sqlalchemy.exc import DataError

    from portal.extensions import db
    from portal.models import Organisation

    other = other_app()

    def store_then_fail():
        db.session.add(Organisation(name=request.args["name"], billing_mode="per_order",
                                    payment_terms_days=30))
        db.session.flush()
        raise DataError("INSERT …", {}, Exception("value too long for type character varying(200)"))

    other.add_url_rule("/_data_error", view_func=store_then_fail)
    caplog.set_level(logging.WARNING)
    response = other.test_client().get("/_data_error", query_string={"name": "mot-de-passe-secret"})
    assert response.status_code == 400
    assert "La requête est invalide" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Organisation)) == 0
    _one_warning(caplog, "store_then_fail", "Exception", "mot-de-passe-secret")


def test_a_nul_byte_is_refused_cleanly(client, world):
    """PostgreSQL refuses NUL bytes in text: a sign-in or a request message with one is a 400 there,
    an ordinary refusal on SQLite; never a 500."""
    for url, data in (("/espace-client/connexion", {"email": "a\x00@b.fr", "password": "x\x00"}),
                      ("/admin/connexion", {"email": "\x00", "password": "\x00"})):
        token = _token(client)
        response = client.post(url, data={"csrf_token": token, **data})
        assert response.status_code in (200, 400), (url, response.status_code)


# --- Numbers beyond reason, named ---------------------------------------------------------------

NUMBERS_BEYOND_REASON = [HUGE, "NaN", "Infinity", "-1", str(2**63), "1e5", "١٢", "²"]


def _one_warning(caplog, endpoint: str, refusal: str, *secrets: str) -> None:
    """The request left one log line: a warning naming the endpoint and the refusal, no traceback,
    none of the values sent."""
    lines = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [(record.levelname, record.exc_info) for record in lines] == [("WARNING", None)], \
        [record.getMessage()[:200] for record in lines]
    message = lines[0].getMessage()
    assert endpoint in message and refusal in message, message
    assert not any(secret in message for secret in secrets), message


@pytest.mark.parametrize("quantity", NUMBERS_BEYOND_REASON)
def test_a_quote_request_with_a_quantity_beyond_reason_is_refused_in_french(client, world, quantity, caplog):
    requester = world.mine.users[ClientRole.MEMBRE]
    sign_in_client(client, requester)
    page = client.get("/espace-client/demandes").get_data(as_text=True)
    fields = Forms("/espace-client/demandes")
    fields.feed(page)
    data = {**fields.forms["/espace-client/demandes"], f"quantity-{world.product.id}": quantity}
    before = database_snapshot()
    caplog.set_level(logging.WARNING)
    caplog.clear()
    response = client.post("/espace-client/demandes", data=data)
    assert response.status_code == 200
    assert (f"Quantité invalide pour « {world.product.name} » : saisissez un nombre entier de 0 à "
            "1\u202f000\u202f000.") in html.unescape(response.get_data(as_text=True))
    assert database_snapshot() == before
    _one_warning(caplog, "client.requests", "QuantityOutOfRange", quantity)


# --- JSON routes --------------------------------------------------------------------------------

# Every route that reads a JSON body (test_every_json_route_is_listed keeps this list complete), but
# the platform API's: Schemathesis generates its bodies from its OpenAPI document
# (tests/test_api_schemathesis.py).
JSON_SOURCES = {"portal/client/payment_views.py": "client.invoice_payment_confirm",
                "portal/webhooks.py": "webhooks.stripe_events"}
JSON_READERS = re.compile(r"get_json\(|request\.json\b|request\.get_data\(|request\.data\b|request\.stream\b")
NOT_OBJECTS = [b"[]", b'["seti_x"]', b'[{"setup_intent": "seti_x"}]', b'"seti_x"', b"5", b"0", b"-1",
               b"null", b"true", b"NaN", b"Infinity", b"1e400", HUGE.encode(), b"9223372036854775808",
               b'{"setup_intent": ' + HUGE.encode() + b"}", b"[" * 5000, b"\xff"]
WEBHOOK_SECRET = "whsec_fuzz"


@pytest.fixture
def json_routes(app, monkeypatch):
    """Card payments configured (a Stripe API that is never reached: the body is refused first)."""
    for key, value in {"STRIPE_SECRET_KEY": "sk_test_fuzz", "STRIPE_API_BASE": "http://127.0.0.1:9",
                       "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}.items():
        monkeypatch.setitem(app.config, key, value)


def test_every_json_route_is_listed():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readers = {str(path.relative_to(root)) for path in (root / "portal").rglob("*.py")
               if JSON_READERS.search(path.read_text(encoding="utf-8"))
               and path.parent != root / "portal" / "api"}
    assert readers == set(JSON_SOURCES)


def _post_json(client, world: World, endpoint: str, body: bytes):
    import stripe

    if endpoint == "webhooks.stripe_events":
        signature = stripe.WebhookSignature.generate_signature_header(
            body.decode("utf-8", "replace"), WEBHOOK_SECRET)
        return client.post("/webhooks/stripe", data=body, headers={
            "Content-Type": "application/json", "Stripe-Signature": signature})
    client.delete_cookie("session")
    token = _token(client)  # kept by the session signed in below
    sign_in_client(client, world.mine.users[ClientRole.GESTIONNAIRE])
    return client.post(f"/espace-client/factures/{world.mine.invoice.id}/payer/carte", data=body,
                       headers={"Content-Type": "application/json", "X-CSRFToken": token})


@pytest.mark.parametrize("body", NOT_OBJECTS, ids=lambda body: body[:12].decode("utf-8", "replace"))
@pytest.mark.parametrize("endpoint", sorted(JSON_SOURCES.values()))
def test_a_json_body_that_is_no_object_is_a_json_400_that_changes_nothing(client, world, json_routes,
                                                                         endpoint, body, caplog):
    before = database_snapshot()
    caplog.set_level(logging.WARNING)
    caplog.clear()
    response = _post_json(client, world, endpoint, body)
    assert response.status_code == 400, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.is_json and isinstance(response.get_json()["error"], str)
    assert database_snapshot() == before
    assert not _tracebacks(caplog), _tracebacks(caplog)


@pytest.mark.parametrize("endpoint", sorted(JSON_SOURCES.values()))
def test_a_refused_json_body_is_logged_as_one_warning_line(client, world, json_routes, endpoint, caplog):
    caplog.set_level(logging.WARNING)
    refusal = "WebhookRejected" if endpoint.startswith("webhooks.") else "CardNotRecognised"
    for body in (b'["seti_secret_value"]', b'"seti_secret_value"', b"5", b"null", HUGE.encode()):
        caplog.clear()
        response = _post_json(client, world, endpoint, body)
        assert response.status_code == 400
        _one_warning(caplog, endpoint, refusal, "seti_secret_value", HUGE[:20])
