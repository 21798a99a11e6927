"""The platform API's organisations and credits: lookups, the ledger, idempotent consumptions and
adjustments, refusals as problem+json that change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal import api_keys, credits
from portal.extensions import db
from portal.models import AuditEvent, CreditEntry, CreditEntryKind

ALL_SCOPES = list(api_keys.SCOPES)


@pytest.fixture
def api(client):
    """A test client and a key with every scope; `api.headers(...)` adds extra headers."""
    key, secret = api_keys.create_key("plateforme", ALL_SCOPES, actor=None)
    db.session.commit()
    client.key = key
    client.auth = {"Authorization": f"Bearer {secret}"}
    return client


@pytest.fixture
def org(make):
    organisation = make.organisation(name="Alpha Analyses", external_id="plat-42")
    db.session.commit()
    return organisation


def _fund(org, amount: int, make) -> None:
    credits.adjust_credits(org, amount, actor=make.staff(), reason="Solde initial")
    db.session.commit()


def _consume(api, org, amount=3, key="k-1", reference="analyse-1", **extra):
    return api.post(f"/api/v1/organisations/{org.id}/credits/consumptions",
                    headers={**api.auth, "Idempotency-Key": key},
                    json={"amount": amount, "reference": reference, **extra})


def _entries(org) -> list[CreditEntry]:
    return db.session.scalars(select(CreditEntry).where(CreditEntry.organisation_id == org.id)
                              .order_by(CreditEntry.id)).all()


def test_an_organisation_is_found_by_id_external_id_and_siren(api, org):
    by_id = api.get(f"/api/v1/organisations/{org.id}", headers=api.auth).get_json()
    assert by_id["name"] == "Alpha Analyses" and by_id["external_id"] == "plat-42"
    by_external_id = api.get("/api/v1/organisations/by-external-id/plat-42", headers=api.auth)
    assert by_external_id.get_json()["id"] == org.id
    assert api.get(f"/api/v1/organisations/by-siren/{org.siren}", headers=api.auth).get_json()["id"] == org.id
    listed = api.get("/api/v1/organisations?external_id=plat-42", headers=api.auth).get_json()
    assert [row["id"] for row in listed["data"]] == [org.id] and listed["has_more"] is False


def test_an_unknown_organisation_is_a_404_problem(api, org):
    response = api.get("/api/v1/organisations/by-external-id/nobody", headers=api.auth)
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "api_resource_not_found"


def test_a_consumption_is_written_with_its_reference_and_returns_the_new_balance(api, org, make):
    _fund(org, 10, make)
    response = _consume(api, org, amount=3, description="Analyse de sol")
    assert response.status_code == 201
    body = response.get_json()
    assert (body["kind"], body["amount"], body["external_reference"], body["balance_after"]) == (
        "consumption", -3, "analyse-1", 7)
    entry = _entries(org)[-1]
    assert (entry.kind, entry.amount, entry.external_reference, entry.api_key_id) == (
        CreditEntryKind.CONSUMPTION, -3, "analyse-1", api.key.id)
    balance = api.get(f"/api/v1/organisations/{org.id}/credits", headers=api.auth).get_json()
    assert balance["balance"] == 7
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "credits.consumption"))
    assert event.details["api_key"] == api.key.prefix and event.details["external_reference"] == "analyse-1"


def test_the_same_idempotency_key_and_body_replays_the_first_response_without_a_second_entry(api, org, make):
    _fund(org, 10, make)
    first = _consume(api, org)
    again = _consume(api, org)
    assert again.status_code == 201 and again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(_entries(org)) == 2  # the funding and one consumption
    assert credits.credit_balance(org.id) == 7


def test_the_same_idempotency_key_with_another_body_is_a_422_and_writes_nothing(api, org, make):
    _fund(org, 10, make)
    _consume(api, org, amount=3)
    response = _consume(api, org, amount=4)
    assert response.status_code == 422 and response.get_json()["code"] == "idempotency_key_reused"
    assert credits.credit_balance(org.id) == 7


def test_a_consumption_without_idempotency_key_is_refused(api, org, make):
    _fund(org, 10, make)
    response = api.post(f"/api/v1/organisations/{org.id}/credits/consumptions", headers=api.auth,
                        json={"amount": 1, "reference": "x"})
    assert response.status_code == 400 and response.get_json()["code"] == "idempotency_key_missing"
    assert credits.credit_balance(org.id) == 10


def test_a_consumption_beyond_the_balance_is_a_409_with_the_balance_and_changes_nothing(api, org, make):
    _fund(org, 5, make)
    response = _consume(api, org, amount=6)
    assert response.status_code == 409
    problem = response.get_json()
    assert (problem["code"], problem["balance"], problem["status"]) == ("insufficient_credits", 5, 409)
    assert "(solde disponible : 5)" in problem["detail"]
    assert credits.credit_balance(org.id) == 5
    # Refused, so not remembered: once funded, the same key goes through.
    _fund(org, 5, make)
    assert _consume(api, org, amount=6).status_code == 201
    assert credits.credit_balance(org.id) == 4


@pytest.mark.parametrize("body", [
    {"amount": 0, "reference": "r"}, {"amount": -2, "reference": "r"}, {"amount": "3", "reference": "r"},
    {"amount": 2.5, "reference": "r"}, {"amount": True, "reference": "r"}, {"amount": 3},
    {"amount": 3, "reference": ""}, {"amount": 3, "reference": "r" * 201},
])
def test_an_invalid_consumption_is_a_422_naming_the_field(api, org, make, body):
    _fund(org, 10, make)
    response = api.post(f"/api/v1/organisations/{org.id}/credits/consumptions",
                        headers={**api.auth, "Idempotency-Key": "bad"}, json=body)
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["code"] == "invalid_api_field" and problem["field"] in ("amount", "reference")
    assert credits.credit_balance(org.id) == 10


def test_a_body_that_is_not_a_json_object_is_a_400(api, org):
    response = api.post(f"/api/v1/organisations/{org.id}/credits/consumptions",
                        headers={**api.auth, "Idempotency-Key": "k"}, data="amount=3",
                        content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response.get_json()["code"] == "invalid_api_body"


def test_an_adjustment_needs_its_scope_and_a_reason(api, org, make):
    key, secret = api_keys.create_key("consommation seule", ["credits:consume"], actor=None)
    db.session.commit()
    url = f"/api/v1/organisations/{org.id}/credits/adjustments"
    refused = api.post(url, headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "a"},
                       json={"amount": 5, "reason": "Geste commercial"})
    assert refused.status_code == 403 and refused.get_json()["code"] == "api_scope_missing"
    no_reason = api.post(url, headers={**api.auth, "Idempotency-Key": "b"}, json={"amount": 5})
    assert no_reason.status_code == 422 and no_reason.get_json()["field"] == "reason"
    done = api.post(url, headers={**api.auth, "Idempotency-Key": "c"},
                    json={"amount": 5, "reason": "Geste commercial", "reference": "ticket-9"})
    assert done.status_code == 201 and done.get_json()["balance_after"] == 5
    entry = _entries(org)[-1]
    assert (entry.kind, entry.amount, entry.reason, entry.external_reference, entry.actor_id,
            entry.api_key_id) == (CreditEntryKind.ADJUSTMENT, 5, "Geste commercial", "ticket-9", None,
                                  api.key.id)
    below_zero = api.post(url, headers={**api.auth, "Idempotency-Key": "d"},
                          json={"amount": -6, "reason": "Reprise"})
    assert below_zero.status_code == 409 and below_zero.get_json()["balance"] == 5


def test_the_ledger_pages_through_every_entry_once(api, org, make):
    _fund(org, 100, make)
    for number in range(5):
        assert _consume(api, org, amount=1, key=f"k{number}", reference=f"r{number}").status_code == 201
    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/api/v1/organisations/{org.id}/credits/entries{query}", headers=api.auth).get_json()
        seen += [row["id"] for row in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == sorted((entry.id for entry in _entries(org)), reverse=True)
