"""The audit trail: one append-only AuditEvent per state change, in the caller's transaction."""

from __future__ import annotations

from typing import Any

from .extensions import db
from .models import AuditEvent, User


def record(action: str, obj: Any, **fields: Any) -> AuditEvent:
    """Append an audit event for `obj` (any model with an `id`); `fields` as for `event_for`."""
    db.session.flush()  # `obj.id` must exist before it is referenced
    event = event_for(action, obj, **fields)
    db.session.add(event)
    return event


def event_for(
    action: str,
    obj: Any,
    *,
    actor: User | None,
    organisation_id: int | None = None,
    ip: str | None = None,
    **details: Any,
) -> AuditEvent:
    """The audit event for `obj`, already flushed, not yet added: jobs add many in one INSERT."""
    return AuditEvent(
        actor_id=actor.id if actor else None,
        action=action,
        object_type=type(obj).__name__.lower(),
        object_id=obj.id,
        organisation_id=organisation_id,
        details={key: _plain(value) for key, value in details.items()},
        ip=ip,
    )


def _plain(value: Any) -> Any:
    """JSON-safe form of a detail value (enums as their value, the rest as text)."""
    if hasattr(value, "value"):
        return value.value
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        return value
    return str(value)
