"""`Idempotency-Key` on the API's writes: a retried POST is answered, not executed again.

The key's row is inserted before the operation runs, in the operation's own transaction, and gets
the response before the commit; its unique index is the only check (no SELECT first: nearly every
key is new, and the INSERT finds the others). So:

- a retry after success fails to insert the row, and gets the first response again
  (`Idempotent-Replayed: true`), byte for byte; the same key with another method, path or body is
  refused (422);
- concurrent requests with one key wait on its unique index until the first commits, then replay
  its response (PostgreSQL; SQLite runs one write at a time anyway);
- a refused or failed request commits nothing, its row included: its retry runs afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import Response, current_app, g, json, request
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..exceptions import IdempotencyKeyMissing, IdempotencyKeyReused
from ..extensions import db
from ..models import ApiIdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# The two statements of every write: plain Core on the table, built once, not a unit of work (a
# consumption's row written and completed through the ORM cost a tenth of its time).
KEYS = ApiIdempotencyKey.__table__
INSERT_KEY = insert(KEYS).returning(KEYS.c.id)
COMPLETE_KEY = update(KEYS).where(KEYS.c.id == bindparam("row_id")).values(
    status_code=bindparam("status_code"), response_body=bindparam("response_body"))
View = TypeVar("View", bound=Callable)


def idempotent(view: View) -> View:
    """Make a write view idempotent per API key (under `operation`, which sets `g.api_key`)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        api_key_id = g.api_key.id
        key = _header_value()
        fingerprint = request_fingerprint()
        try:
            row_id = db.session.execute(INSERT_KEY, {
                "api_key_id": api_key_id, "key": key, "request_hash": fingerprint, "status_code": 0,
                "response_body": ""}).scalar_one()
        except IntegrityError:
            # A request with this key committed before (a retry), or while this one waited on the
            # index (concurrent requests).
            db.session.rollback()
            return _replay(_stored(api_key_id, key), fingerprint)
        response = current_app.make_response(view(*args, **kwargs))
        db.session.execute(COMPLETE_KEY, {"row_id": row_id, "status_code": response.status_code,
                                          "response_body": response.get_data(as_text=True)})
        return response

    return wrapper  # type: ignore[return-value]


def _header_value() -> str:
    key = (request.headers.get(HEADER) or "").strip()
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise IdempotencyKeyMissing()
    return key


def request_fingerprint() -> str:
    """SHA-256 of the method, the path and the body (JSON compared by value, not by spacing)."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested too deep to read: the raw text then (the view refuses it)
        body = None
    canonical = json.dumps(body, sort_keys=True) if body is not None else request.get_data(as_text=True)
    return hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()


def _stored(api_key_id: int, key: str) -> ApiIdempotencyKey | None:
    return db.session.scalar(select(ApiIdempotencyKey).where(
        ApiIdempotencyKey.api_key_id == api_key_id, ApiIdempotencyKey.key == key))


def _replay(stored: ApiIdempotencyKey | None, fingerprint: str) -> Response:
    if stored is None or stored.request_hash != fingerprint:
        raise IdempotencyKeyReused()
    return Response(stored.response_body, status=stored.status_code, mimetype="application/json",
                    headers={REPLAYED_HEADER: "true"})
