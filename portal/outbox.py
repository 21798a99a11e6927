"""The email outbox: notifications are rows written in the caller's transaction, sent later.

Everything here only flushes, like every domain function, so a rolled-back action sends nothing
and a committed one is never lost. Rendering and sending are the worker's (`delivery/`), which
reads these rows in transactions of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, insert, select, update

from . import audit, auth
from .exceptions import EmailNotRetryable
from .extensions import db
from .models import Decision, LoginToken, OutboxEmail, OutboxStatus, Quote, QuoteRequest, User, utcnow

# Context keys of an email carrying a magic link to a quote: the token's id and seed (never the
# token), renewed by `retry_failed`.
LINK_ID = "login_token_id"
LINK_SEED = "token_seed"
# The invitation to set a password carries its own keys: `retry_failed` must not renew it as a
# quote link.
INVITE_TEMPLATE = "user_invited"
INVITE_TOKEN_ID = "invite_token_id"
INVITE_SEED = "invite_seed"


def enqueue(*, recipient: str, template: str, context: dict[str, Any], dedupe_key: str) -> OutboxEmail:
    """Queue one email; a second call with the same dedupe key returns the first row unchanged."""
    existing = db.session.scalar(select(OutboxEmail).where(OutboxEmail.dedupe_key == dedupe_key))
    if existing is not None:
        return existing
    email = new_email(recipient=recipient, template=template, context=context, dedupe_key=dedupe_key)
    db.session.add(email)
    db.session.flush()
    return email


def new_email(*, recipient: str, template: str, context: dict[str, Any], dedupe_key: str) -> OutboxEmail:
    """An outbox row, not yet added, for a dedupe key no row can have yet (it names a row created in
    this transaction): jobs add many in one INSERT, without `enqueue`'s lookup."""
    return OutboxEmail(recipient=recipient, template=template, context=context, dedupe_key=dedupe_key)


# Plain INSERTs, sent at once, for the emails of a decision: no model object, no unit of work.
INSERT_EMAIL = insert(OutboxEmail.__table__)


def insert_new(emails: list[dict[str, Any]], statement: Insert = INSERT_EMAIL) -> None:
    """Insert outbox rows now (each with `new_email`'s arguments), for dedupe keys no row can have
    yet; `statement` may compute some columns itself (see `quotes.DECIDED_EMAIL`)."""
    if emails:
        db.session.execute(statement, emails)


def enqueue_with_magic_link(*, user: User, quote: Quote, template: str, dedupe_key: str,
                            context: dict[str, Any] | None = None,
                            now: datetime | None = None) -> OutboxEmail:
    """Queue an email to `user` carrying a fresh magic link to `quote`, in the same transaction.

    The row keeps the token's seed, never the token (see `auth.raw_token_from_seed`).
    """
    existing = db.session.scalar(select(OutboxEmail).where(OutboxEmail.dedupe_key == dedupe_key))
    if existing is not None:
        return existing
    token, seed = auth.create_magic_link(user, quote, now=now)
    values = {"quote_id": quote.id, "user_id": user.id, **(context or {}),
              LINK_ID: token.id, LINK_SEED: seed}
    return enqueue(recipient=user.email, template=template, context=values, dedupe_key=dedupe_key)


def enqueue_login_link(user: User, *, now: datetime | None = None) -> OutboxEmail:
    """Queue a "lien de connexion" email: a one-time link that signs `user` in."""
    token, seed = auth.create_link(user, purpose=auth.MAGIC_LINK_LOGIN, now=now)
    return enqueue(recipient=user.email, template="login_link",
                   context={"user_id": user.id, LINK_ID: token.id, LINK_SEED: seed},
                   dedupe_key=f"login_link:{token.id}")


def enqueue_account_locked(user: User, locked_until: datetime) -> OutboxEmail:
    """Queue the email telling `user` their account is locked until `locked_until` (once per lock)."""
    return enqueue(recipient=user.email, template="account_locked",
                   context={"user_id": user.id, "locked_until": locked_until.isoformat()},
                   dedupe_key=f"account_locked:{user.id}:{locked_until:%Y%m%dT%H%M}")


def enqueue_invitation(user: User, *, token: LoginToken, seed: str, invited_by: str) -> OutboxEmail:
    """Queue the invitation of a new client user to set a password (once per user)."""
    return enqueue(recipient=user.email, template=INVITE_TEMPLATE,
                   context={"user_id": user.id, "invited_by": invited_by,
                            INVITE_TOKEN_ID: token.id, INVITE_SEED: seed},
                   dedupe_key=f"{INVITE_TEMPLATE}:{user.id}")


def enqueue_request_outcome(request: QuoteRequest, *, quote: Quote | None = None) -> OutboxEmail:
    """Queue the email telling a request's requester its outcome: `quote` answers it (sent to
    someone else), or, without one, it was declined (once each per request)."""
    template = "request_answered" if quote is not None else "request_declined"
    context = {"request_id": request.id, **({"quote_id": quote.id} if quote is not None else {})}
    return enqueue(recipient=request.requester.email, template=template, context=context,
                   dedupe_key=f"{template}:{request.id}")


MONTHLY_ACCEPTED_TEMPLATE = "monthly_quote_accepted"


def enqueue_monthly_acceptance(quote: Quote, addresses: Iterable[str]) -> None:
    """Queue, once per address, the email telling a monthly client its accepted quote's credits are
    granted and when its invoice comes: plain INSERTs, as a quote is accepted only once."""
    insert_new([{"recipient": address, "template": MONTHLY_ACCEPTED_TEMPLATE,
                 "context": {"quote_id": quote.id},
                 "dedupe_key": f"{MONTHLY_ACCEPTED_TEMPLATE}:{quote.id}:{address}"}
                for address in sorted(set(addresses))])


ON_BEHALF_TEMPLATE = "decided_on_behalf"


def enqueue_decided_on_behalf(decision: Decision, addresses: Iterable[str]) -> None:
    """Queue, once per address, the email telling a client's responsable that staff used its mandate
    to decide a quote: plain INSERTs, as a quote is decided only once."""
    insert_new([{"recipient": address, "template": ON_BEHALF_TEMPLATE,
                 "context": {"quote_id": decision.quote_id, "decision_id": decision.id},
                 "dedupe_key": f"{ON_BEHALF_TEMPLATE}:{decision.id}:{address}"}
                for address in sorted(set(addresses))])


def queued_keys(keys: Iterable[str]) -> set[str]:
    """Those of `keys` that already name an outbox row."""
    keys = list(keys)
    if not keys:
        return set()
    return set(db.session.scalars(select(OutboxEmail.dedupe_key).where(OutboxEmail.dedupe_key.in_(keys))))


def retry_failed(email_id: int, *, actor: User | None = None, now: datetime | None = None) -> OutboxEmail:
    """Put a failed email back in the queue with a full set of attempts (staff action)."""
    now = now or utcnow()
    email = db.session.get(OutboxEmail, email_id)
    if email is None or email.status != OutboxStatus.FAILED:
        raise EmailNotRetryable()
    context = dict(email.context)
    if LINK_SEED in context:
        # The first link may have expired while the email failed: revoke it, carry a fresh one.
        db.session.execute(update(LoginToken)
                           .where(LoginToken.id == context[LINK_ID], LoginToken.expires_at > now)
                           .values(expires_at=now).execution_options(synchronize_session=False))
        token, seed = auth.create_magic_link(load(User, context["user_id"]),
                                             load(Quote, context["quote_id"]), now=now)
        context.update({LINK_ID: token.id, LINK_SEED: seed})
    changed = db.session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.id == email_id, OutboxEmail.status == OutboxStatus.FAILED)
        .values(status=OutboxStatus.PENDING, attempts=0, next_attempt_at=now, context=context)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        raise EmailNotRetryable()
    db.session.refresh(email)
    audit.record("email.retried", email, actor=actor, template=email.template,
                 recipient=email.recipient)
    return email


def load(model: type, object_id: Any) -> Any:
    """The row an email's context names; LookupError if it is gone."""
    obj = db.session.get(model, object_id)
    if obj is None:
        raise LookupError(f"{model.__name__} {object_id} not found")
    return obj
