"""Authentication wiring: Flask-Login's user loader, password hashing (Argon2id), magic links."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_request_context, request
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import joinedload

from . import audit
from .exceptions import InvalidInput, MagicLinkExpired, MagicLinkInvalid, MagicLinkSuperseded, MagicLinkUsed
from .extensions import db, login_manager
from .i18n import lazy_gettext as _l
from .models import LoginToken, Quote, QuoteStatus, User, utcnow

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10

# A magic link opens one quote for one user. Its raw token is never stored: the outbox row keeps
# a random seed, the token is HMAC-SHA256(SECRET_KEY, seed) and LoginToken keeps its SHA-256, so
# neither the database alone nor the secret alone gives the token.
MAGIC_LINK_QUOTE = "quote"
MAGIC_LINK_LOGIN = "login"
MAGIC_LINK_INVITE = "invite"
# What a link landing (/lien/<token>) accepts by default; other purposes (an invitation…) never sign in.
SIGN_IN_PURPOSES = (MAGIC_LINK_QUOTE, MAGIC_LINK_LOGIN)
SEED_BYTES = 32
MAX_TOKEN_LENGTH = 128


def hash_password(password: str) -> str:
    """Argon2id hash of a password."""
    return _hasher.hash(password)


def check_password(user: User, password: str) -> bool:
    """True if `password` matches the user's hash (False for a user without a password)."""
    if not user.password_hash:
        return False
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Built once: building a statement and its cache key cost each request more than running it.
STAFF_BY_ID = select(User).where(User.id == bindparam("user_id"))
# On the portal, the organisation comes in the same query: every page's header shows its name.
# Staff have none, and the join cost each of their pages half a millisecond on PostgreSQL.
CLIENT_BY_ID = STAFF_BY_ID.options(joinedload(User.organisation))


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    on_portal = has_request_context() and request.blueprint == "client"
    user = db.session.scalars(CLIENT_BY_ID if on_portal else STAFF_BY_ID,
                              {"user_id": int(user_id)}).one_or_none()
    return user if user is not None and user.active else None


def revoke_sessions(user: User) -> None:
    """End every session of `user` (logout, new password, deactivation, "Se déconnecter partout"):
    sessions carry the session version of their sign-in, and the user loader refuses an older one.
    Flushes only; the caller commits."""
    user.session_version = (user.session_version or 0) + 1
    db.session.flush()


# --- Magic links ------------------------------------------------------------------------------


def raw_token_from_seed(seed: str) -> str:
    """The token a seed stands for: URL-safe base64 of HMAC-SHA256(SECRET_KEY, seed), 256 bits."""
    key = str(current_app.config["SECRET_KEY"]).encode("utf-8")
    digest = hmac.new(key, b"magic-link:" + seed.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def hash_token(raw_token: str) -> str:
    """SHA-256 (hex) of a raw token: the only form the database keeps."""
    return hashlib.sha256(raw_token.encode("utf-8")).hexdigest()


def create_magic_link(user: User, quote: Quote, *, now: datetime | None = None) -> tuple[LoginToken, str]:
    """Create a link token for `user` to open `quote` (this revision); returns it and its seed.

    The caller puts the seed in the outbox row of the same transaction; the mail renderer turns
    it back into the raw token with `raw_token_from_seed`.
    """
    return create_link(user, purpose=MAGIC_LINK_QUOTE, quote=quote, now=now)


def create_link(user: User, *, purpose: str, quote: Quote | None = None, hours: int | None = None,
                now: datetime | None = None) -> tuple[LoginToken, str]:
    """Create a one-time link token of `purpose` (stored as its hash); returns it and its seed."""
    now = now or utcnow()
    seed = secrets.token_urlsafe(SEED_BYTES)
    hours = hours or current_app.config["PORTAL_LINK_TTL_HOURS"]
    token = LoginToken(
        token_hash=hash_token(raw_token_from_seed(seed)), user_id=user.id, purpose=purpose,
        quote_id=quote.id if quote else None, quote_revision=quote.revision if quote else None,
        created_at=now, expires_at=now + timedelta(hours=hours),
    )
    db.session.add(token)
    db.session.flush()
    return token, seed


def peek_link(raw_token: str) -> LoginToken | None:
    """The token behind a link, whatever its state (to say why it failed, or where it leads)."""
    return _lookup(raw_token)


def accept_invitation(raw_token: str, *, password: str, confirmation: str,
                      now: datetime | None = None) -> User:
    """Set the invited user's password from their invitation link, which is then used up."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidInput(_l("Le mot de passe doit comporter au moins %(length)s caractères.",
                              length=MIN_PASSWORD_LENGTH))
    if password != confirmation:
        raise InvalidInput(_l("Les deux mots de passe ne correspondent pas."))
    user = consume_magic_link(raw_token, purpose=MAGIC_LINK_INVITE, now=now)
    user.password_hash = hash_password(password)
    db.session.flush()
    audit.record("user.password_set", user, actor=user, organisation_id=user.organisation_id)
    return user


def find_valid_token(raw_token: str, now: datetime | None = None, *,
                     purpose: str | None = None) -> LoginToken | None:
    """The unused, unexpired sign-in token (or token of `purpose`) matching `raw_token`, if any."""
    token = _lookup(raw_token)
    if (token is None or not _purpose_matches(token, purpose) or token.used_at is not None
            or token.expires_at <= (now or utcnow())):
        return None
    return token


def consume_magic_link(raw_token: str, *, quote_id: int | None = None, purpose: str | None = None,
                       now: datetime | None = None) -> User:
    """Use a link once: mark it used (a conditional UPDATE) and return its user.

    Without `purpose`, only sign-in links (SIGN_IN_PURPOSES) are accepted; `quote_id`, when
    given, must be the token's. Raises `MagicLinkInvalid` (unknown, other quote or purpose,
    inactive user), `MagicLinkSuperseded` (a newer revision of the quote was sent),
    `MagicLinkExpired` or `MagicLinkUsed`. Flushes only; the caller commits and signs the user in.
    """
    now = now or utcnow()
    token = _lookup(raw_token)
    if (token is None or (quote_id is not None and token.quote_id != quote_id)
            or not _purpose_matches(token, purpose)):
        raise MagicLinkInvalid()
    user = db.session.get(User, token.user_id)
    if user is None or not user.active:
        raise MagicLinkInvalid()
    if token.quote_id is not None:
        quote = db.session.get(Quote, token.quote_id)
        if (quote is None or quote.revision != token.quote_revision
                or quote.organisation_id != user.organisation_id):
            raise MagicLinkInvalid()
        if quote.status == QuoteStatus.SUPERSEDED:
            raise MagicLinkSuperseded()
    if token.used_at is not None:
        raise MagicLinkUsed()
    if token.expires_at <= now:
        raise MagicLinkExpired()
    used = db.session.execute(
        update(LoginToken)
        .where(LoginToken.id == token.id, LoginToken.used_at.is_(None), LoginToken.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not used:
        raise MagicLinkUsed()  # a concurrent click won
    db.session.refresh(token)
    return user


def _purpose_matches(token: LoginToken, purpose: str | None) -> bool:
    return token.purpose in SIGN_IN_PURPOSES if purpose is None else token.purpose == purpose


def _lookup(raw_token: str) -> LoginToken | None:
    if not isinstance(raw_token, str) or not 0 < len(raw_token) <= MAX_TOKEN_LENGTH:
        return None
    return db.session.scalar(select(LoginToken).where(LoginToken.token_hash == hash_token(raw_token)))
