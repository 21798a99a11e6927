"""Authentication wiring: Flask-Login's user loader and sessions that end, password hashing
(Argon2id), sign-in throttled per account, magic links."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_request_context, request, session
from flask_login import login_user
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import joinedload

from . import audit
from .exceptions import (
    AccountLocked,
    InvalidCredentials,
    MagicLinkExpired,
    MagicLinkInvalid,
    MagicLinkSuperseded,
    MagicLinkUsed,
    PasswordsDiffer,
    PasswordTooShort,
    StaffAccountLocked,
    WrongCurrentPassword,
)
from .extensions import db, limiter, login_manager
from .i18n import LANGUAGE_SESSION_KEY, supported_language
from .models import LoginToken, Quote, QuoteStatus, User, UserKind, utcnow

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10

# A magic link opens one quote for one user. Its raw token is never stored: the outbox row keeps
# a random seed, the token is HMAC-SHA256(SECRET_KEY, seed) and LoginToken keeps its SHA-256, so
# neither the database alone nor the secret alone gives the token.
MAGIC_LINK_QUOTE = "quote"
MAGIC_LINK_LOGIN = "login"
MAGIC_LINK_INVITE = "invite"
# Single sign-on from the platform (POST /api/v1/sessions): opened at once by the platform's
# browser, never emailed, so it lives minutes, not days; it leads to its `next_path`.
MAGIC_LINK_API_SESSION = "api_session"
API_SESSION_TTL = timedelta(minutes=2)
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


# The user's session version when this session signed in; a session without it (signed in before
# versions existed) counts as version 0, so it lasts until the user's first revocation.
SESSION_VERSION_KEY = "_session_version"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The session's user, if still active and the session not revoked since it signed in."""
    on_portal = has_request_context() and request.blueprint == "client"
    user = db.session.scalars(CLIENT_BY_ID if on_portal else STAFF_BY_ID,
                              {"user_id": int(user_id)}).one_or_none()
    if user is None or not user.active:
        return None
    if has_request_context() and session.get(SESSION_VERSION_KEY, 0) != user.session_version:
        return None  # a cookie from before a logout, a new password or « Se déconnecter partout »
    return user


def start_session(user: User) -> None:
    """Sign `user` in with a fresh session (no fixation) carrying their session version, and their
    language: the profile's choice, else the one made on the sign-in page."""
    clear_session()
    if supported_language(user.language):
        session[LANGUAGE_SESSION_KEY] = user.language
    login_user(user)
    keep_current_session(user)


def clear_session() -> None:
    """Forget everything the session holds but the visitor's choice of language (sign-out)."""
    language = supported_language(session.get(LANGUAGE_SESSION_KEY))
    session.clear()
    if language:
        session[LANGUAGE_SESSION_KEY] = language


def keep_current_session(user: User) -> None:
    """After revoking the user's sessions from this one (new password…), this one stays signed in."""
    session[SESSION_VERSION_KEY] = user.session_version or 0


def revoke_sessions(user: User) -> None:
    """End every session of `user` (logout, new password, deactivation, "Se déconnecter partout"):
    sessions carry the session version of their sign-in, and the user loader refuses an older one.
    Flushes only; the caller commits."""
    user.session_version = (user.session_version or 0) + 1
    db.session.flush()


def sign_out_everywhere(user: User) -> None:
    """« Se déconnecter partout »: every session of `user` ends (the caller keeps its own with
    `keep_current_session`). Flushes only."""
    revoke_sessions(user)
    audit.record("user.signed_out_everywhere", user, actor=user, organisation_id=user.organisation_id)


def change_password(user: User, *, current: str, new: str, confirmation: str) -> None:
    """A signed-in user's new password, given the current one; their other sessions end (the
    caller keeps its own with `keep_current_session`). Flushes only."""
    if not check_password(user, current or ""):
        raise WrongCurrentPassword()
    check_new_password(new, confirmation)
    user.password_hash = hash_password(new)
    revoke_sessions(user)
    audit.record("user.password_changed", user, actor=user, organisation_id=user.organisation_id)


def check_new_password(password: str, confirmation: str) -> None:
    """A new password is long enough and typed twice the same."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise PasswordTooShort(length=MIN_PASSWORD_LENGTH)
    if password != confirmation:
        raise PasswordsDiffer()


# --- Sign-in throttled per account ------------------------------------------------------------
# Counted per email address, whatever the client's IP, in the rate limiter's storage (Redis: shared
# by every worker; its in-memory fallback while Redis is down). An address without an account is
# counted and locked the same, so no answer tells whether an account exists.


def authenticate(email: str, password: str, *, kind: UserKind,
                 on_lock: Callable[[User, datetime], object] | None = None) -> User:
    """The active user of `kind` with this email address and password.

    At most RATELIMIT_SIGNIN_ACCOUNT attempts per address; ACCOUNT_LOCK_FAILURES wrong passwords
    within ACCOUNT_LOCK_MINUTES lock the address that long, even for the right password. The
    attempt that locks calls `on_lock(user, locked_until)` (the owner's email), once per lock.
    Raises InvalidCredentials or AccountLocked (StaffAccountLocked). Flushes only (on_lock's row).
    """
    config = current_app.config
    key = (kind.value, (email or "").strip().lower())
    locked = StaffAccountLocked if kind == UserKind.STAFF else AccountLocked
    lock = f"1 per {config['ACCOUNT_LOCK_MINUTES']} minutes"
    failures = f"{config['ACCOUNT_LOCK_FAILURES']} per {config['ACCOUNT_LOCK_MINUTES']} minutes"
    if not limiter.test(lock, "signin-lock", *key):
        raise locked(minutes=_minutes(limiter.seconds_left(lock, "signin-lock", *key)))
    attempts = config["RATELIMIT_SIGNIN_ACCOUNT"]
    if not limiter.hit(attempts, "signin-account", *key):
        raise locked(minutes=_minutes(limiter.seconds_left(attempts, "signin-account", *key)))
    user = db.session.scalar(select(User).where(User.email == key[1], User.kind == kind,
                                                User.active.is_(True)))
    if user is not None and check_password(user, password):
        limiter.clear(failures, "signin-failures", *key)
        return user
    limiter.hit(failures, "signin-failures", *key)
    if limiter.test(failures, "signin-failures", *key):
        raise InvalidCredentials()
    limiter.clear(failures, "signin-failures", *key)  # after the lock, a full set of attempts
    if limiter.hit(lock, "signin-lock", *key) and user is not None and on_lock is not None:
        on_lock(user, utcnow() + timedelta(seconds=limiter.seconds_left(lock, "signin-lock", *key)))
    raise locked(minutes=config["ACCOUNT_LOCK_MINUTES"])


def link_request_allowed(email: str) -> bool:
    """Count a request for a sign-in link to `email` (whatever the IP, account or not); False
    beyond RATELIMIT_LINK_REQUEST_ACCOUNT: then no email is sent, and the answer is the same."""
    return limiter.hit(current_app.config["RATELIMIT_LINK_REQUEST_ACCOUNT"], "link-request",
                       (email or "").strip().lower())


def _minutes(seconds: int) -> int:
    return max(1, math.ceil(seconds / 60))


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
                ttl: timedelta | None = None, next_path: str | None = None,
                now: datetime | None = None) -> tuple[LoginToken, str]:
    """Create a one-time link token of `purpose` (stored as its hash); returns it and its seed.
    It lives `ttl`, else `hours`, else PORTAL_LINK_TTL_HOURS."""
    now = now or utcnow()
    seed = secrets.token_urlsafe(SEED_BYTES)
    ttl = ttl or timedelta(hours=hours or current_app.config["PORTAL_LINK_TTL_HOURS"])
    token = LoginToken(
        token_hash=hash_token(raw_token_from_seed(seed)), user_id=user.id, purpose=purpose,
        quote_id=quote.id if quote else None, quote_revision=quote.revision if quote else None,
        next_path=next_path, created_at=now, expires_at=now + ttl,
    )
    db.session.add(token)
    db.session.flush()
    if purpose == MAGIC_LINK_LOGIN:
        _retire_oldest_links(user, now=now)
    return token, seed


def create_api_session_link(user: User, *, next_path: str, now: datetime | None = None
                            ) -> tuple[LoginToken, str]:
    """A single sign-on link for the platform: `user` lands signed in on `next_path` (a portal
    path the caller checked), once, within API_SESSION_TTL. Returns it and its seed."""
    return create_link(user, purpose=MAGIC_LINK_API_SESSION, ttl=API_SESSION_TTL, next_path=next_path,
                       now=now)


def _retire_oldest_links(user: User, *, now: datetime) -> None:
    """A user holds at most MAX_VALID_LINKS_PER_USER valid sign-in links: older ones expire now.

    Only `login` links count: a quote email's link opens that quote, and stays valid for it."""
    keep = max(1, int(current_app.config["MAX_VALID_LINKS_PER_USER"]))
    retired = db.session.scalars(
        select(LoginToken.id)
        .where(LoginToken.user_id == user.id, LoginToken.purpose == MAGIC_LINK_LOGIN,
               LoginToken.used_at.is_(None), LoginToken.expires_at > now)
        .order_by(LoginToken.created_at.desc(), LoginToken.id.desc())
    ).all()[keep:]
    if retired:
        db.session.execute(update(LoginToken).where(LoginToken.id.in_(retired))
                           .values(expires_at=now).execution_options(synchronize_session=False))


def peek_link(raw_token: str) -> LoginToken | None:
    """The token behind a link, whatever its state (to say why it failed, or where it leads)."""
    return _lookup(raw_token)


def accept_invitation(raw_token: str, *, password: str, confirmation: str,
                      now: datetime | None = None) -> User:
    """Set the invited user's password from their invitation link, which is then used up."""
    check_new_password(password, confirmation)
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
