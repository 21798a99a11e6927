"""The audit trail: one append-only AuditEvent per state change, in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from .extensions import db
from .models import AuditEvent, User

# A plain INSERT, sent at once: an event is never read back nor changed in the transaction that
# writes it, and the session's unit of work cost several times the INSERT itself.
INSERT_EVENT = insert(AuditEvent.__table__)


def record(action: str, obj: Any, **fields: Any) -> None:
    """Append an audit event for `obj` (any model with an `id`); `fields` as for `event_for`."""
    db.session.flush()  # `obj.id` must exist before it is referenced
    db.session.execute(INSERT_EVENT, _row(action, obj, **fields))


def _row(action: str, obj: Any, *, actor: User | None, organisation_id: int | None = None,
         ip: str | None = None, **details: Any) -> dict[str, Any]:
    return {"actor_id": actor.id if actor else None, "action": action,
            "object_type": type(obj).__name__.lower(), "object_id": obj.id,
            "organisation_id": organisation_id,
            "details": {key: _plain(value) for key, value in details.items()}, "ip": ip}


def event_for(action: str, obj: Any, **fields: Any) -> AuditEvent:
    """The audit event for `obj`, already flushed, not yet added: jobs add many in one INSERT."""
    return AuditEvent(**_row(action, obj, **fields))


def _plain(value: Any) -> Any:
    """JSON-safe form of a detail value (enums as their value, the rest as text)."""
    if hasattr(value, "value"):
        return value.value
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        return value
    return str(value)
