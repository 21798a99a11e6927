"""The outbox worker: passes over due emails, each rendered and sent in a transaction of its own.

`send_pending` and `work` are jobs: they commit each row on their own, like the monthly close, so
call them with a clean session.

Delivery guarantee. A row is *claimed* in a short transaction of its own: one conditional UPDATE
(on PostgreSQL its target is picked with `FOR UPDATE SKIP LOCKED`) counts the attempt and pushes
`next_attempt_at` one lease ahead, then commits. The message is sent with no transaction open,
and a second short transaction marks the row sent, or schedules its retry. So several workers
never pick the same row, no row lock is held during SMTP, and a crash loses nothing: a claimed
row that was never marked becomes due again when its lease ends. The one duplicate SMTP cannot
rule out is a crash between the server's "250 OK" and our commit; such a resend carries the same
Message-ID, which lets mail clients fold the two. The socket timeout (MAIL_TIMEOUT) keeps one
delivery far shorter than the lease, so a slow server cannot let a second worker reclaim a row.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..models import OutboxEmail, OutboxStatus, utcnow
from .emails import build_message, render
from .transports import DeliveryError, Transport, configured_transport

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=15)
MAX_BACKOFF = timedelta(hours=6)


@dataclass
class DispatchResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        return self.sent + self.retried + self.failed


def send_pending(*, limit: int = 100, now: datetime | None = None,
                 stop: threading.Event | None = None) -> DispatchResult:
    """One dispatch pass over due emails (at most `limit`); commits row by row."""
    result = DispatchResult()
    transport = configured_transport()
    try:
        while result.attempted < limit and not (stop is not None and stop.is_set()):
            email_id = _claim_next(now or utcnow())
            if email_id is None:
                break
            outcome, stop_pass = _deliver_one(email_id, transport, now or utcnow())
            setattr(result, outcome, getattr(result, outcome) + 1)
            if stop_pass:
                break
    finally:
        transport.close()
    return result


def work(*, interval: float | None = None, limit: int = 100,
         stop: threading.Event | None = None, jobs: Sequence[Callable[[], object]] = ()) -> None:
    """Dispatch passes until `stop` is set; a failing pass is logged, never fatal. Each pass first
    runs `jobs` (the CLI passes the queued monthly closes: the domain is not imported here, and the
    webhook deliveries); a job returning True has more waiting, so the next pass starts at once."""
    stop = stop or threading.Event()
    interval = current_app.config["MAIL_WORKER_INTERVAL"] if interval is None else interval
    while not stop.is_set():
        busy = False
        try:
            for job in jobs:
                busy = job() is True or busy
            busy = send_pending(limit=limit, stop=stop).attempted >= limit or busy
        except Exception:
            log.exception("Outbox pass failed; next try in %s s", interval)
        finally:
            try:
                db.session.remove()
            except Exception:
                log.exception("Could not reset the database session")
        if not busy:
            stop.wait(interval)


def _claim_next(now: datetime) -> int | None:
    due = (OutboxEmail.status == OutboxStatus.PENDING, OutboxEmail.next_attempt_at <= now)
    candidate = (
        select(OutboxEmail.id).where(*due)
        .order_by(OutboxEmail.next_attempt_at, OutboxEmail.id).limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers anyway
        .scalar_subquery()
    )
    email_id = db.session.execute(
        update(OutboxEmail).where(OutboxEmail.id == candidate, *due)
        .values(attempts=OutboxEmail.attempts + 1, next_attempt_at=now + CLAIM_LEASE)
        .returning(OutboxEmail.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    db.session.commit()
    return email_id


def _deliver_one(email_id: int, transport: Transport, now: datetime) -> tuple[str, bool]:
    email = db.session.get(OutboxEmail, email_id)
    if email.attempts > current_app.config["MAIL_MAX_ATTEMPTS"]:
        # Claimed again and again by workers that never concluded (a crash on this very row?).
        failure = DeliveryError("Envoi interrompu à chaque tentative", permanent=True)
        return _record_failure(email, failure, now), False
    try:
        message = build_message(email, render(email))
        transport.deliver(message, email)
    except DeliveryError as error:
        return _record_failure(email, error, now), error.stop_pass
    except SQLAlchemyError:
        raise  # the claim's lease brings the row back
    except Exception as error:
        log.exception("Email %s (%s) could not be rendered or sent", email.id, email.template)
        failure = DeliveryError(f"{type(error).__name__}: {error}", permanent=True)
        return _record_failure(email, failure, now), False
    template, recipient = email.template, email.recipient
    db.session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.id == email_id, OutboxEmail.status == OutboxStatus.PENDING)
        .values(status=OutboxStatus.SENT, sent_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    log.info("Email %s (%s) sent to %s", email_id, template, recipient)
    return "sent", False


def _record_failure(email: OutboxEmail, error: DeliveryError, now: datetime) -> str:
    final = error.permanent or email.attempts >= current_app.config["MAIL_MAX_ATTEMPTS"]
    values: dict[str, Any] = {"last_error": str(error)[:2000]}
    if final:
        values["status"] = OutboxStatus.FAILED
    else:
        values["next_attempt_at"] = now + _backoff(email.attempts)
    email_id, template, attempts = email.id, email.template, email.attempts
    db.session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.id == email_id, OutboxEmail.status == OutboxStatus.PENDING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if final:
        log.error("Email %s (%s) failed after %s attempt(s): %s", email_id, template, attempts, error)
        return "failed"
    log.warning("Email %s (%s) not sent (attempt %s), will retry: %s", email_id, template, attempts,
                error)
    return "retried"


def _backoff(attempts: int) -> timedelta:
    """Delay before the next try: base × 2^(attempts−1), capped at six hours."""
    base = timedelta(seconds=current_app.config["MAIL_RETRY_BASE_SECONDS"])
    return min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF)
