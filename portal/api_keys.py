"""Keys of the platform API: created with their scopes, the secret shown once and stored as its
SHA-256 only, revoked (never deleted: the ledger names the key that consumed), found by secret.

Functions flush only; the caller commits. Every change is audited.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update

from . import audit
from .exceptions import ApiKeyAlreadyRevoked, ApiKeyNameMissing, ApiKeyScopesMissing, UnknownApiScope
from .extensions import db
from .models import ApiKey, User, utcnow

SCOPES = (
    "organisations:read",
    "credits:read",
    "credits:consume",
    "credits:adjust",
    "quotes:read",
    "requests:write",
    "sessions:write",
)
SECRET_PREFIX = "pdk_"
# Characters of the secret shown on screen to tell keys apart ("pdk_" and 8 more).
VISIBLE_CHARACTERS = 12
# `last_used_at` is written at most once a minute per key, not at every call.
LAST_USED_PRECISION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    """SHA-256 (hex): a key's secret is 256 random bits, so a fast hash is enough."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_key(name: str, scopes: Iterable[str], *, actor: User | None, ip: str | None = None
               ) -> tuple[ApiKey, str]:
    """A new key; returns it and its secret, which is never stored nor shown again."""
    name = (name or "").strip()
    if not name:
        raise ApiKeyNameMissing()
    chosen = sorted(set(scopes), key=_scope_order)
    if not chosen:
        raise ApiKeyScopesMissing()
    unknown = [scope for scope in chosen if scope not in SCOPES]
    if unknown:
        raise UnknownApiScope(scope=unknown[0], scopes=", ".join(SCOPES))
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name[:100], prefix=secret[:VISIBLE_CHARACTERS], secret_hash=hash_secret(secret),
                 scopes=" ".join(chosen), created_by_id=actor.id if actor else None, created_at=utcnow())
    db.session.add(key)
    db.session.flush()
    audit.record("api_key.created", key, actor=actor, ip=ip, name=key.name, prefix=key.prefix,
                 scopes=chosen)
    return key, secret


def _scope_order(scope: str) -> int:
    return SCOPES.index(scope) if scope in SCOPES else len(SCOPES)


def revoke_key(key: ApiKey, *, actor: User | None, ip: str | None = None) -> ApiKey:
    """Revoke a key at once: its next call gets a 401."""
    if key.revoked_at is not None:
        raise ApiKeyAlreadyRevoked()
    key.revoked_at = utcnow()
    key.revoked_by_id = actor.id if actor else None
    db.session.flush()
    audit.record("api_key.revoked", key, actor=actor, ip=ip, name=key.name, prefix=key.prefix)
    return key


# Built once: every API call runs it, and building a statement and its cache key cost about what
# running it does.
ACTIVE_KEY = select(ApiKey).where(ApiKey.secret_hash == bindparam("secret_hash"), ApiKey.revoked_at.is_(None))


def find_active_key(secret: str) -> ApiKey | None:
    """The unrevoked key of `secret`, if any."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
        return None
    return db.session.scalar(ACTIVE_KEY, {"secret_hash": hash_secret(secret)})


def record_use(key: ApiKey, *, now: datetime | None = None) -> None:
    """Note the key's use (at most once a minute: a conditional UPDATE, no write otherwise)."""
    now = now or utcnow()
    if key.last_used_at is not None and key.last_used_at >= now - LAST_USED_PRECISION:
        return  # noted less than a minute ago, as the key just read says: not even a statement
    db.session.execute(
        update(ApiKey)
        .where(ApiKey.id == key.id,
               or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_PRECISION))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
