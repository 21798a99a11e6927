"""The webhook worker: signs each due delivery and POSTs it to its endpoint, safely.

`deliver_pending` is a job like the email worker's `send_pending`: it commits on its own, so call it
with a clean session. Deliveries are *claimed* in batches by a short committed transaction (picked
with `FOR UPDATE SKIP LOCKED` on PostgreSQL) that counts the attempt and pushes `next_attempt_at`
one lease ahead; each is then POSTed with no transaction open, and the outcomes (a `WebhookAttempt`
row each, the delivery's status or next try) are committed together every half second or so. Several
workers never pick the same delivery, and a crashed worker's claims come back when their lease
ends. The duplicates this cannot rule out (a crash between the platform's 2xx and our commit: the
deliveries of half a second, or of the one attempt running then) carry the same event id, which
the platform uses to ignore them.

Success is any 2xx. Anything else is retried, base × 2^(attempts−1) later (at most six hours),
until the next try would fall WEBHOOK_RETRY_HOURS after the delivery was queued (or resent by
staff): then the delivery is failed.
An address the configuration refuses (plain http when https is required, a local or metadata
address) is failed at once: retrying cannot help until the endpoint or the settings change, and
staff can resend it. A disabled endpoint's deliveries are not claimed: they wait, pending, until it
is enabled again.

The HTTP exchange, safe from SSRF, is `webhook_http`'s.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import DateTime, bindparam, func, insert, select, update

from ..extensions import db
from ..models import DeliveryStatus, Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from .transports import DeliveryError
from .webhook_http import WebhookClient

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Portail-Signature"
USER_AGENT = "PortailDevis-Webhooks/1.0"
# How long a claim holds, at least: far longer than a batch takes even when each POST waits
# WEBHOOK_TIMEOUT, so that no second worker reclaims a delivery still being sent (`_lease`).
CLAIM_LEASE = timedelta(minutes=15)
CLAIM_BATCH = 25
RECORD_EVERY = 0.5  # seconds
PASS_BUDGET = 5.0  # seconds: `flask outbox work` claims no new batch of webhooks after that
MAX_BACKOFF = timedelta(hours=6)


@dataclass
class WebhookDispatchResult:
    """What a pass did: deliveries delivered, to be retried, failed for good."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    more_due: bool = False  # the pass stopped at its limit or its time budget, not on an empty queue

    @property
    def attempted(self) -> int:
        return self.delivered + self.retried + self.failed


@dataclass(frozen=True)
class _Claimed:
    """What sending one claimed delivery needs, read in the claiming transaction."""

    delivery_id: int
    attempts: int
    event_id: str
    event_type: str
    body: bytes
    # When the delivery was queued, or last resent by staff: its retry window starts there.
    queued_at: datetime
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None

    def secrets(self, now: datetime) -> list[str]:
        """The endpoint's secret, and the previous one while it is still valid after a rotation."""
        valid = [self.secret]
        if self.previous_secret and self.previous_secret_expires_at and self.previous_secret_expires_at > now:
            valid.append(self.previous_secret)
        return valid


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None
    duration_ms: int
    excerpt: str | None
    error: str | None = None  # None: delivered
    permanent: bool = False


@dataclass(frozen=True)
class _Done:
    """One attempt made, not yet recorded: `moment` is its time, `finished` its monotonic end."""

    claimed: _Claimed
    outcome: _Outcome
    moment: datetime
    finished: float


def signature_header(secrets: list[str], body: bytes, timestamp: int) -> str:
    """`t=<timestamp>,v1=<hex>[,v1=<hex>]`: HMAC-SHA256 of "<timestamp>." + body, one per secret."""
    signed = f"{timestamp}.".encode() + body
    values = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in secrets]
    return ",".join([f"t={timestamp}", *(f"v1={value}" for value in values)])


def deliver_pending(*, limit: int = 100, now: datetime | None = None, stop: threading.Event | None = None,
                    budget: float | None = None) -> WebhookDispatchResult:
    """One pass over due deliveries (at most `limit`; no batch claimed after the first once `budget`
    seconds have passed), claimed in batches; commits itself."""
    result = WebhookDispatchResult()
    client = WebhookClient.from_config(current_app.config)
    unreachable: set[str] = set()
    started = time.monotonic()
    try:
        while not _stopped(stop):
            if result.attempted >= limit:
                result.more_due = True
                break
            size = min(CLAIM_BATCH, limit - result.attempted)
            batch = _claim(size, now or utcnow())
            _send_batch(batch, client, result, unreachable, now=now, stop=stop)
            if len(batch) < size:
                break  # nothing more is due
            if budget is not None and time.monotonic() - started > budget:
                result.more_due = True
                break
    finally:
        client.close()
    return result


def deliver_due(*, limit: int = 100, stop: threading.Event | None = None) -> bool:
    """`deliver_pending` as a job of `worker.work`, within PASS_BUDGET seconds so that emails get
    their turn even when a platform times out: True when more may be due (the next pass at once)."""
    return deliver_pending(limit=limit, stop=stop, budget=PASS_BUDGET).more_due


def _stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def _send_batch(batch: list[_Claimed], client: WebhookClient, result: WebhookDispatchResult,
                unreachable: set[str], *, now: datetime | None, stop: threading.Event | None) -> None:
    """Send a claimed batch. Outcomes are committed together, once RECORD_EVERY seconds have passed
    since the first of them ended (checked after each attempt): a commit per delivery would cost
    more than its POST to a quick platform. A platform that did not answer (timeout, refused
    connection) is not tried again in this pass: its other deliveries count a skipped attempt and
    wait for their next try, instead of each waiting WEBHOOK_TIMEOUT for nothing."""
    done: list[_Done] = []
    tried = 0
    for claimed in batch:
        if _stopped(stop):
            break
        moment = now or utcnow()
        host = urlsplit(claimed.url).netloc
        outcome = _skipped(host) if host in unreachable else _send(claimed, client, moment)
        if outcome.status_code is None and not outcome.permanent:
            unreachable.add(host)
        done.append(_Done(claimed, outcome, moment, time.monotonic()))
        tried += 1
        if time.monotonic() - done[0].finished >= RECORD_EVERY:
            _record(done, result)
            done = []
    _record(done, result)
    if tried < len(batch):
        _release([claimed.delivery_id for claimed in batch[tried:]], now or utcnow())


# --- The database: claim, release, record -------------------------------------------------------


def _claim(size: int, now: datetime) -> list[_Claimed]:
    """Claim up to `size` due deliveries of enabled endpoints, in a transaction of their own."""
    enabled = select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
    due = (WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now,
           WebhookDelivery.endpoint_id.in_(enabled))
    # Picked by a statement of its own: as `IN (subquery)` of the UPDATE, PostgreSQL may run the
    # subquery again for each row and claim far more than `size`. The UPDATE checks `due` again:
    # on SQLite, a second worker may have read the same candidates (no row locks there).
    candidates = list(db.session.scalars(
        select(WebhookDelivery.id).where(*due)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(size)
        .with_for_update(skip_locked=True)))
    if not candidates:
        db.session.commit()
        return []
    ids = list(db.session.scalars(
        update(WebhookDelivery).where(WebhookDelivery.id.in_(candidates), *due)
        .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=now + _lease())
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)))
    rows = db.session.execute(
        select(WebhookDelivery.id, WebhookDelivery.attempts, Event.public_id, Event.type, Event.body,
               WebhookDelivery.created_at, WebhookEndpoint.url, WebhookEndpoint.secret,
               WebhookEndpoint.previous_secret, WebhookEndpoint.previous_secret_expires_at)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id.in_(ids)).order_by(WebhookDelivery.id)).all()
    db.session.commit()
    return [_Claimed(row[0], row[1], row[2], row[3], row[4].encode(), *row[5:]) for row in rows]


def _release(delivery_ids: list[int], now: datetime) -> None:
    """Give back claimed deliveries that were not tried (the worker is stopping): due again now."""
    db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.status == DeliveryStatus.PENDING)
        .values(attempts=WebhookDelivery.attempts - 1, next_attempt_at=now)
        .execution_options(synchronize_session=False))
    db.session.commit()


def _record(done: list[_Done], result: WebhookDispatchResult) -> None:
    """Log the attempts and conclude or reschedule their deliveries, in one short transaction."""
    if not done:
        return
    window = timedelta(hours=current_app.config["WEBHOOK_RETRY_HOURS"])
    changes = []
    for item in done:
        kind, change = _conclusion(item, window)
        setattr(result, kind, getattr(result, kind) + 1)
        changes.append(change)
    db.session.execute(insert(WebhookAttempt.__table__), [{
        "delivery_id": item.claimed.delivery_id, "attempted_at": item.moment,
        "status_code": item.outcome.status_code, "duration_ms": item.outcome.duration_ms,
        "response_excerpt": item.outcome.excerpt, "error": item.outcome.error} for item in done])
    deliveries = WebhookDelivery.__table__.c
    db.session.execute(
        update(WebhookDelivery.__table__)
        .where(deliveries.id == bindparam("b_id"), deliveries.status == DeliveryStatus.PENDING)
        .values(status=bindparam("b_status"), last_status_code=bindparam("b_code"),
                last_error=bindparam("b_error"), delivered_at=bindparam("b_delivered_at"),
                next_attempt_at=func.coalesce(bindparam("b_retry_at", type_=DateTime()),
                                              deliveries.next_attempt_at)),
        changes)
    db.session.commit()


def _conclusion(item: _Done, window: timedelta) -> tuple[str, dict[str, Any]]:
    """Delivered, retried (when) or failed: the result's counter and the delivery's new values."""
    claimed, outcome = item.claimed, item.outcome
    change = {"b_id": claimed.delivery_id, "b_code": outcome.status_code, "b_error": outcome.error,
              "b_status": DeliveryStatus.PENDING.value, "b_delivered_at": None, "b_retry_at": None}
    if outcome.error is None:
        log.info("Webhook %s delivered to %s", claimed.event_id, claimed.url)
        return "delivered", change | {"b_status": DeliveryStatus.DELIVERED.value,
                                      "b_delivered_at": item.moment}
    retry_at = item.moment + _backoff(claimed.attempts)
    final = outcome.permanent or retry_at > claimed.queued_at + window
    kind = "failed" if final else "retried"
    log.warning("Webhook %s to %s not delivered (attempt %s, %s): %s", claimed.event_id, claimed.url,
                claimed.attempts, kind, outcome.error)
    if final:
        return kind, change | {"b_status": DeliveryStatus.FAILED.value}
    return kind, change | {"b_retry_at": retry_at}


def _lease() -> timedelta:
    """CLAIM_LEASE, or twice what a batch of POSTs all timing out takes if that is longer."""
    return max(CLAIM_LEASE, 2 * CLAIM_BATCH * timedelta(seconds=current_app.config["WEBHOOK_TIMEOUT"]))


def _backoff(attempts: int) -> timedelta:
    """Delay before the next try: base × 2^(attempts−1), capped at six hours."""
    base = timedelta(seconds=current_app.config["WEBHOOK_RETRY_BASE_SECONDS"])
    return min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


# --- One attempt --------------------------------------------------------------------------------


def _skipped(host: str) -> _Outcome:
    return _Outcome(None, 0, None, _("Non tentée : %(host)s n'a pas répondu à un envoi précédent de ce "
                                     "passage.", host=host))


def _send(claimed: _Claimed, client: WebhookClient, now: datetime) -> _Outcome:
    """POST one delivery, signed for this attempt; every failure becomes an outcome."""
    timestamp = int(now.replace(tzinfo=UTC).timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Portail-Event-Id": claimed.event_id,
        "Portail-Event-Type": claimed.event_type,
        SIGNATURE_HEADER: signature_header(claimed.secrets(now), claimed.body, timestamp),
    }
    started = time.monotonic()
    answer, failure = None, None
    try:
        answer = client.post(claimed.url, claimed.body, headers)
    except DeliveryError as error:
        failure = error
    except Exception as error:  # a bug must not stop the pass: the attempt says what happened
        log.exception("Webhook %s to %s could not be sent", claimed.event_id, claimed.url)
        failure = DeliveryError(f"{type(error).__name__}: {error}")
    duration = int((time.monotonic() - started) * 1000)
    if answer is None:
        return _Outcome(None, duration, None, str(failure), permanent=failure.permanent)
    if 200 <= answer.status < 300:
        return _Outcome(answer.status, duration, answer.excerpt)
    if 300 <= answer.status < 400:
        error = _("Redirection non suivie (HTTP %(status)s vers %(location)s).",
                  status=answer.status, location=(answer.location or "?")[:300])
    else:
        error = _("Réponse HTTP %(status)s : seul un code 2xx vaut livraison.", status=answer.status)
    return _Outcome(answer.status, duration, answer.excerpt, error)
