"""The email outbox: notifications are rows written in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from .extensions import db
from .models import OutboxEmail


def enqueue(*, recipient: str, template: str, context: dict[str, Any], dedupe_key: str) -> OutboxEmail:
    """Queue one email; a second call with the same dedupe key returns the first row unchanged."""
    existing = db.session.scalar(select(OutboxEmail).where(OutboxEmail.dedupe_key == dedupe_key))
    if existing is not None:
        return existing
    email = OutboxEmail(
        recipient=recipient, template=template, context=context, dedupe_key=dedupe_key
    )
    db.session.add(email)
    db.session.flush()
    return email
