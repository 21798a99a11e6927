"""Helpers of the platform API's tests: a key with its scopes, its Authorization header."""

from __future__ import annotations

from portal import api_keys
from portal.extensions import db

API = "/api/v1"
PROBLEM_JSON = "application/problem+json"


def api_headers(*scopes: str) -> dict[str, str]:
    """The Authorization header of a new key holding `scopes` (every scope when none are given),
    committed so that the requests (their own sessions) find it."""
    _key, secret = api_keys.create_key("test", scopes or api_keys.SCOPES, actor=None)
    db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


def assert_problem(response, status: int, code: str) -> dict:
    """`response` is an RFC 9457 problem of `status` and `code`; returns its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json(force=True)
    assert body["status"] == status and body["code"] == code, body
    assert body["detail"]
    return body
