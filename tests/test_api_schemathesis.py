"""Schemathesis against the platform API, in process.

For every operation of the OpenAPI document (portal/api/openapi.json: GET /api/v1/openapi.json
serves it with its `servers`, see tests/test_api_openapi.py), Schemathesis generates requests — the
document's examples, boundary values, random valid data, and invalid data — sent with a key holding
every scope to the app on a database holding organisations, quotes, invoices and credit notes,
credits, client users and a product. Every answer must be no 5xx, a status code the document lists
for the operation, of the documented content type, conforming to the documented schema and headers;
an invalid request must be refused with a 4xx.

The run is reproducible (derandomized); raise MAX_EXAMPLES to search further.
"""

from __future__ import annotations

import base64
import contextvars
import itertools
from collections import Counter, defaultdict

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from portal import api_keys, credits, quotes
from portal.api.docs import DOCUMENT_PATH
from portal.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from portal.api.idempotency import MAX_KEY_LENGTH
from portal.billing import issue_credit_note, record_payment
from portal.extensions import db
from portal.models import BillingMode, Channel, ClientRole, Invoice, PaymentProvider
from portal.problems import API_PREFIX, PROBLEM_JSON

# Generated cases per operation and generation phase (explicit examples, coverage, fuzzing).
MAX_EXAMPLES = 50
# The whole run must have sent at least this many requests (several hundred).
MIN_CASES = 1000
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance, negative_data_rejection,
          missing_required_header, unsupported_method, allow_header_conformance]
# The document's examples name these: the seeded data has them, so that the explicit examples
# reach the success path of the lookups, quote requests and sessions.
EXAMPLE_EMAIL = "client@example.test"
EXAMPLE_EXTERNAL_ID = "plat-1"
EXAMPLE_SIREN = "732829320"


class IsolatedWsgi:
    """The app as a WSGI callable whose every request runs in a context of its own, as in
    production (tests/conftest.py, IsolatedClient): not in the test's app context and session."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        return contextvars.Context().run(self.app, environ, start_response)


@pytest.fixture
def platform_headers(make) -> dict[str, str]:
    """A seeded database (ids start at 1, as the document's examples), and the Authorization
    header of a key holding every scope."""
    world = make.world()  # seller, CGV, organisation 1 with a user of each role, a sent quote
    organisation, admin = world["org"], world["admin"]
    organisation.external_id, organisation.siren = EXAMPLE_EXTERNAL_ID, EXAMPLE_SIREN
    manager = world["users"][ClientRole.GESTIONNAIRE]
    make.client_user(organisation, ClientRole.MEMBRE, email=EXAMPLE_EMAIL)

    quotes.accept(world["quote"], actor=manager, terms_version=world["terms"], channel=Channel.PORTAL)
    record_payment(_invoice_of(world["quote"]), provider=PaymentProvider.BANK_TRANSFER,
                   provider_reference="VIR-1", amount_cents=_invoice_of(world["quote"]).total_ttc_cents,
                   currency="EUR", actor=admin)
    cancelled = make.sent_quote(organisation, actor=admin, recipient=manager)
    quotes.accept(cancelled, actor=manager, terms_version=world["terms"], channel=Channel.PORTAL)
    issue_credit_note(_invoice_of(cancelled), actor=admin, reason="Commande annulée")
    make.sent_quote(organisation, actor=admin, recipient=manager)
    quotes.create_draft(organisation=organisation, actor=admin, recipient=manager,
                        lines=[quotes.LineInput(product_id=1, quantity=1)])
    credits.adjust_credits(organisation, 500_000, actor=admin, reason="Solde initial")

    for _ in range(3):
        make.client_user(make.organisation(billing_mode=BillingMode.MONTHLY), ClientRole.RESPONSABLE)
    _key, secret = api_keys.create_key("schemathesis", api_keys.SCOPES, actor=None)
    db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


def _invoice_of(quote) -> Invoice:
    return db.session.scalars(db.select(Invoice).where(Invoice.quote_id == quote.id)).one()


@pytest.fixture(scope="module")
def answers(request):
    """The statuses answered, per operation, over the module; reported at its end."""
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    yield statuses
    total = sum(sum(counts.values()) for counts in statuses.values())
    lines = [f"Schemathesis: {total} generated requests over {len(statuses)} operations"]
    lines += [f"  {label}: {sum(counts.values())} ("
              + ", ".join(f"{status} ×{count}" for status, count in sorted(counts.items())) + ")"
              for label, counts in statuses.items()]
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None and statuses:
        with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
            reporter.write_line("\n" + "\n".join(lines))
    if len(statuses) == len(OPERATIONS):  # the whole module ran, not a selection of it
        assert total >= MIN_CASES


_fresh_keys = itertools.count(1)


def use_fresh_idempotency_key(case) -> None:
    """A valid generated Idempotency-Key becomes a new one, so that each write runs (a key drawn
    twice would replay, or be refused as reused); an invalid one (empty, blank, too long) is kept
    for the negative cases that check it is refused."""
    key = (case.headers or {}).get(IDEMPOTENCY_HEADER)
    if key is not None and 0 < len(key.strip()) <= MAX_KEY_LENGTH:
        case.headers[IDEMPOTENCY_HEADER] = f"schemathesis-{next(_fresh_keys)}"


# Loaded at collection, one test per operation (Schemathesis's lazy loader from a fixture does not
# run under pytest 9.2); the app is given to each call.
schema = schemathesis.openapi.from_path(DOCUMENT_PATH)
# The API ignores the query parameters it does not know (as it ignores unknown body properties):
# no negative case out of an extra one.
schema.config.generation.update(allow_extra_parameters=False)
OPERATIONS = [result.ok().label for result in schema.get_all_operations()]


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_answer_of_the_api_conforms_to_its_document(case, app, platform_headers, answers):
    use_fresh_idempotency_key(case)
    response = case.call_and_validate(headers=platform_headers, checks=CHECKS, app=IsolatedWsgi(app))
    answers[case.operation.label][response.status_code] += 1


# Inputs that once answered 500 and that random generation seldom draws: a digit that is no ASCII
# digit, an unclosed IPv6 bracket in a URL, a lone surrogate (valid JSON, no storable text), JSON
# nested deeper than the parser's recursion limit.
CONSUMPTION = "/organisations/{organisation_id}/credits/consumptions"
DEEP_JSON = "[" * 5000 + "]" * 5000
RARE_INPUTS = [
    ("GET", "/organisations", {"limit": "²"}, None, 422, "invalid_api_field"),
    ("GET", "/organisations", {"cursor": base64.urlsafe_b64encode("id:²".encode()).decode()}, None,
     400, "invalid_cursor"),
    ("POST", "/sessions", None, {"email": EXAMPLE_EMAIL, "next": "//["}, 422, "invalid_portal_path"),
    ("POST", "/sessions", None, '{"email": "\\ud800@example.test"}', 400, "invalid_api_body"),
    ("POST", "/sessions", None, DEEP_JSON, 400, "invalid_api_body"),
    ("POST", CONSUMPTION, None, '{"amount": 1, "reference": "\\ud800"}', 400, "invalid_api_body"),
    ("POST", CONSUMPTION, None, DEEP_JSON, 400, "invalid_api_body"),
]


@pytest.mark.parametrize(("method", "path", "query", "body", "status", "code"), RARE_INPUTS)
def test_rare_inputs_are_refused_as_the_document_says(client, platform_headers, method, path, query, body,
                                                     status, code):
    headers = {**platform_headers, IDEMPOTENCY_HEADER: f"rare-{next(_fresh_keys)}"}
    url = API_PREFIX + path.format(organisation_id=1)
    if isinstance(body, str):  # sent as written: JSON that json= could not produce
        response = client.open(url, method=method, headers=headers, data=body,
                               content_type="application/json")
    else:
        response = client.open(url, method=method, headers=headers, json=body, query_string=query)
    assert (response.status_code, response.mimetype) == (status, PROBLEM_JSON)
    assert response.get_json()["code"] == code, response.get_json()
    schema[path][method].validate_response(response)
