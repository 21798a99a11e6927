"""The OpenAPI document of the platform API: served without a key, valid OpenAPI 3.1, and in step
with the `api` blueprint (every route documented, nothing documented that has no route, the scope
and the Idempotency-Key of each operation as the code requires them) and with the events
(a webhook for each type, whose schema every event the domain records satisfies)."""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from sqlalchemy import select

from portal import api_keys, events
from portal.api import idempotency
from portal.api.docs import DOCUMENT_PATH
from portal.extensions import db
from portal.models import Event
from portal.problems import API_PREFIX, PROBLEM_JSON

from .test_events import record_every_event_type

DOCUMENT_URL = f"{API_PREFIX}/openapi.json"
METHODS = {"get", "put", "post", "delete", "patch"}
WEBHOOK_TYPES = [*events.EVENT_TYPES, events.TEST_EVENT_TYPE]
WEBHOOK_HEADERS = ["Portail-Signature", "Portail-Event-Id", "Portail-Event-Type"]
# The component schema of each event's `data`: the object as the API answers it (by type prefix).
DATA_SCHEMAS = {"quote": "Quote", "invoice": "Invoice", "credits": "CreditEntry",
                "request": "QuoteRequest", "endpoint": "EndpointTest"}


@pytest.fixture
def document(client) -> dict:
    response = client.get(DOCUMENT_URL)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def documented_operations(document: dict) -> dict[tuple[str, str], dict]:
    return {(method.upper(), path): operation for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS}


def api_routes(app) -> dict[tuple[str, str], str]:
    """(method, path as the document writes it) → endpoint, for every route of the `api` blueprint:
    `/api/v1/quotes/<int:quote_id>` is `/quotes/{quote_id}`."""
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] != "api":
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule.removeprefix(API_PREFIX))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes[(method, path)] = rule.endpoint
    return routes


def is_idempotent(view) -> bool:
    """Whether `@idempotent` wraps `view` (functools.wraps keeps the chain in `__wrapped__`; the
    wrapper's own code still comes from idempotency.py)."""
    while view is not None:
        if view.__code__.co_filename == idempotency.__file__:
            return True
        view = getattr(view, "__wrapped__", None)
    return False


def test_the_document_is_served_without_a_key_and_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_the_served_document_is_the_file_with_the_servers_of_the_deployment(document):
    """tests/test_api_schemathesis.py reads the file: it must be what the app serves."""
    written = json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))
    assert {**document, "servers": written["servers"]} == written
    assert list(document) == list(written)  # in the order written, not sorted


def test_servers_name_the_address_the_document_was_read_from_then_the_configured_one(other_app):
    app = other_app(PORTAL_BASE_URL="https://portail.example.fr")
    response = app.test_client().get(DOCUMENT_URL, base_url="https://api.example.test")
    assert [server["url"] for server in response.get_json()["servers"]] == [
        "https://api.example.test/api/v1", "https://portail.example.fr/api/v1"]

    same = app.test_client().get(DOCUMENT_URL, base_url="https://portail.example.fr")
    assert [server["url"] for server in same.get_json()["servers"]] == ["https://portail.example.fr/api/v1"]


def test_every_route_of_the_api_is_documented_and_every_documented_operation_has_a_route(app, document):
    routes = set(api_routes(app))
    operations = set(documented_operations(document))
    assert routes - operations == set(), "routes missing from portal/api/openapi.json"
    assert operations - routes == set(), "operations documented without a route"


def test_each_operation_requires_in_the_document_the_scope_its_view_requires(app, document):
    operations = documented_operations(document)
    for route, endpoint in api_routes(app).items():
        scope = getattr(app.view_functions[endpoint], "required_scope", None)
        operation = operations[route]
        if scope is None:  # the document itself
            assert operation["security"] == [], route
            continue
        assert scope in api_keys.SCOPES
        assert operation["security"] == [{"bearerAuth": [scope]}], route
        assert f"Scope: `{scope}`." in operation["description"], route


def test_idempotent_writes_and_only_they_document_the_idempotency_key(app, document):
    operations = documented_operations(document)
    header = {"$ref": "#/components/parameters/IdempotencyKey"}
    for route, endpoint in api_routes(app).items():
        documented = header in operations[route].get("parameters", [])
        assert documented == is_idempotent(app.view_functions[endpoint]), route
    assert document["components"]["parameters"]["IdempotencyKey"]["required"] is True


def test_operations_with_a_key_document_its_refusals_as_problems(document):
    responses = document["components"]["responses"]
    for route, operation in documented_operations(document).items():
        codes = set(operation["responses"])
        if operation["security"]:
            assert {"401", "403", "429"} <= codes, route
        for code, response in operation["responses"].items():
            if int(code) >= 400:
                name = response["$ref"].rsplit("/", 1)[-1]
                assert list(responses[name]["content"]) == [PROBLEM_JSON], (route, code)


def test_the_problem_schema_names_the_fields_every_problem_has(client, document):
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "code", "detail"}
    assert problem["additionalProperties"] is True
    refused = client.get(f"{API_PREFIX}/organisations").get_json()
    assert set(problem["required"]) <= set(refused)


def test_the_bearer_scheme_lists_every_scope(document):
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for scope in api_keys.SCOPES:
        assert f"`{scope}`" in scheme["description"]


# --- Webhooks: the events sent to the platform ---------------------------------------------------


def resolve(document: dict, ref: str) -> object:
    """The object a local `$ref` ("#/components/...") names in `document`; KeyError if none."""
    found = document
    for part in ref.removeprefix("#/").split("/"):
        found = found[part.replace("~1", "/").replace("~0", "~")]
    return found


def refs(node: object) -> list[str]:
    """Every `$ref` under `node`."""
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    own = [node["$ref"]] if isinstance(node, dict) and "$ref" in node else []
    return own + [ref for child in children for ref in refs(child)]


def webhook_validator(document: dict, event_type: str) -> Draft202012Validator:
    """A JSON Schema (2020-12, as OpenAPI 3.1's) validator of the body of `event_type`'s webhook, its
    `$ref`s resolved in `document`."""
    uri = "urn:portail-devis:openapi"
    registry = Registry().with_resource(uri, DRAFT202012.create_resource(document))
    pointer = f"/webhooks/{event_type}/post/requestBody/content/application~1json/schema"
    return Draft202012Validator({"$ref": f"{uri}#{pointer}"}, registry=registry,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_every_reference_of_the_document_resolves(document):
    """openapi-spec-validator does not follow the `$ref`s of webhooks: a typo would go unseen."""
    for ref in refs(document):
        assert ref.startswith("#/"), ref
        resolve(document, ref)


def test_the_document_has_a_webhook_for_each_event_type_and_nothing_else(document):
    assert list(document["webhooks"]) == WEBHOOK_TYPES
    for event_type, item in document["webhooks"].items():
        assert list(item) == ["post"], event_type
        operation = item["post"]
        parameters = [resolve(document, parameter["$ref"]) for parameter in operation["parameters"]]
        assert [(p["name"], p["in"], p["required"]) for p in parameters] == [
            (name, "header", True) for name in WEBHOOK_HEADERS], event_type
        assert set(operation["responses"]) == {"2XX", "default"} and operation["security"] == []
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema["allOf"] == [{"$ref": "#/components/schemas/Event"}]
        assert schema["properties"]["type"] == {"const": event_type}
        data_schema = DATA_SCHEMAS[event_type.split(".")[0]]
        assert schema["properties"]["data"] == {"$ref": f"#/components/schemas/{data_schema}"}


def test_the_event_envelope_names_every_type_and_the_api_version(document):
    envelope = document["components"]["schemas"]["Event"]
    assert envelope["properties"]["type"]["enum"] == WEBHOOK_TYPES
    assert envelope["properties"]["api_version"]["const"] == events.API_VERSION
    assert resolve(document, "#/components/parameters/PortailEventType")["schema"]["enum"] == WEBHOOK_TYPES
    description = " ".join(document["info"]["description"].split())  # lines joined
    for told in ('Portail-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>',
                 "two `v1` values", "24 hours", "about three days", "exponential backoff",
                 "at least once: dedupe on the event's `id`", "by `sequence`"):
        assert told in description, told


def test_each_event_the_domain_records_satisfies_its_webhook_schema_and_no_other(document, make):
    record_every_event_type(make)
    written = db.session.scalars(select(Event).order_by(Event.id)).all()
    assert {event.type for event in written} == set(WEBHOOK_TYPES)
    validators = {event_type: webhook_validator(document, event_type) for event_type in WEBHOOK_TYPES}
    for event in written:
        body = events.payload(event)
        errors = list(validators[event.type].iter_errors(body))
        assert not errors, (event.type, [error.message for error in errors])
        satisfied = [event_type for event_type, validator in validators.items() if validator.is_valid(body)]
        assert satisfied == [event.type]
