"""API: an organisation's credit balance and ledger, consumptions and adjustments."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .. import credits
from ..exceptions import InvalidApiBody, InvalidApiField
from ..i18n import lazy_gettext as _l
from ..models import CreditEntry
from ..representations import entry_json
from . import blueprint, current_key, operation
from .idempotency import idempotent
from .organisations import organisation_or_404
from .pagination import paginate

MAX_AMOUNT = 1_000_000
MAX_REFERENCE = 200
MAX_DESCRIPTION = 500
POSITIVE_AMOUNT = _l("un entier de 1 à 1 000 000")
NON_ZERO_AMOUNT = _l("un entier non nul, de -1 000 000 à 1 000 000")
SHORT_TEXT = _l("un texte de 1 à %(max)s caractères")


def balance_json(organisation_id: int) -> dict[str, Any]:
    return {"object": "credit_balance", "organisation_id": organisation_id,
            "balance": credits.credit_balance(organisation_id)}


@blueprint.get("/organisations/<int:organisation_id>/credits")
@operation("credits:read")
def get_balance(organisation_id: int):
    return balance_json(organisation_or_404(organisation_id).id)


@blueprint.get("/organisations/<int:organisation_id>/credits/entries")
@operation("credits:read")
def list_entries(organisation_id: int):
    """The ledger, newest first: grants, consumptions, adjustments and reversals."""
    organisation = organisation_or_404(organisation_id)
    statement = (select(CreditEntry).where(CreditEntry.organisation_id == organisation.id)
                 .options(joinedload(CreditEntry.quote), joinedload(CreditEntry.credit_note)))
    return paginate(statement, CreditEntry.id, entry_json)


@blueprint.post("/organisations/<int:organisation_id>/credits/consumptions")
@operation("credits:consume")
@idempotent
def consume(organisation_id: int):
    """Consume `amount` credits for the platform's `reference`; 409 with the balance if short."""
    body = json_body()
    entry, balance_after = credits.post_consumption(
        organisation_id, positive_int(body, "amount"), actor=None, api_key=current_key(),
        reason=text_field(body, "description", MAX_DESCRIPTION, required=False) or "",
        external_reference=text_field(body, "reference", MAX_REFERENCE),
    )
    return _created(entry, balance_after)


@blueprint.post("/organisations/<int:organisation_id>/credits/adjustments")
@operation("credits:adjust")
@idempotent
def adjust(organisation_id: int):
    """Add (positive `amount`) or remove (negative) credits, with a `reason`."""
    organisation = organisation_or_404(organisation_id)
    body = json_body()
    amount = body.get("amount")
    if type(amount) is not int or amount == 0 or abs(amount) > MAX_AMOUNT:
        raise InvalidApiField(field="amount", expected=NON_ZERO_AMOUNT)
    entry = credits.adjust_credits(
        organisation, amount, actor=None, api_key=current_key(),
        reason=text_field(body, "reason", MAX_DESCRIPTION),
        external_reference=text_field(body, "reference", MAX_REFERENCE, required=False),
    )
    return _created(entry, credits.credit_balance(entry.organisation_id))


def _created(entry: CreditEntry, balance_after: int):
    return {**entry_json(entry), "balance_after": balance_after}, 201


def json_body() -> dict[str, Any]:
    """The request's JSON object, else 400: also for JSON nested too deep to read, or holding a lone
    surrogate (`"\\ud800"`: valid JSON, but no text that UTF-8, hence a database, can hold)."""
    try:
        body = request.get_json(silent=True)
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (RecursionError, UnicodeEncodeError):
        body = None
    if not isinstance(body, dict):
        raise InvalidApiBody()
    return body


def positive_int(body: dict[str, Any], field: str) -> int:
    value = body.get(field)
    if type(value) is not int or not 0 < value <= MAX_AMOUNT:
        raise InvalidApiField(field=field, expected=POSITIVE_AMOUNT)
    return value


def text_field(body: dict[str, Any], field: str, max_length: int, *, required: bool = True) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_length or "\x00" in value:
        raise InvalidApiField(field=field, expected=str(SHORT_TEXT) % {"max": max_length})
    return value.strip()
