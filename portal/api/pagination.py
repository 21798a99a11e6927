"""Keyset pagination of the API's lists: newest first (by id), `limit` (1–100, 20 by default) and
`cursor` (the previous page's `next_cursor`). A page costs the same at the first and at the
thousandth page: no OFFSET."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from flask import request
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from ..exceptions import InvalidApiField, InvalidCursor
from ..extensions import db
from ..i18n import lazy_gettext as _l

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
LIMIT_RANGE = _l("un entier de 1 à 100")


def paginate(statement: Select, id_column: InstrumentedAttribute, serialize: Callable[[Any], dict]
             ) -> dict[str, Any]:
    """The page of `statement` (rows of one model, filtered) the request asks for, as the list
    object every list operation returns."""
    limit = _limit()
    cursor = request.args.get("cursor")
    if cursor:
        statement = statement.where(id_column < decode_cursor(cursor))
    rows = db.session.scalars(statement.order_by(id_column.desc()).limit(limit + 1)).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {"object": "list", "data": [serialize(row) for row in rows], "has_more": has_more,
            "next_cursor": encode_cursor(rows[-1].id) if has_more else None}


def _limit() -> int:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidApiField(field="limit", expected=LIMIT_RANGE)
    return int(raw)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor() from None
    kind, _, value = text.partition(":")
    if kind != "id" or not (value.isascii() and value.isdigit()) or len(value) > 10:
        raise InvalidCursor()
    return int(value)
