"""The platform's webhook endpoints: created with their event types and a signing secret shown
once, changed, their secret rotated, a test event sent, failed deliveries sent again.

Functions flush only; the caller commits. Every change is audited (never with a secret).

An address is checked when it is written: absolute http(s), a host, no credentials, https when
WEBHOOKS_HTTPS_ONLY; a host written as an IP address is refused when it is a cloud metadata address,
or a local one without WEBHOOKS_ALLOW_LOCAL. A host *name* is checked where it matters, by the
worker (portal/delivery/webhooks.py), on the addresses it resolves to at each delivery.

Resending. A resend puts a delivered or failed delivery back in the queue: pending, due now, its
attempts counted from zero, and a fresh retry window — the delivery's `created_at` (when it was
queued) is set to now, and the worker counts WEBHOOK_RETRY_HOURS from it, so a delivery resent
after three days of failures is retried again with backoff rather than given up at once. The
event (its id, body and `created_at`) is unchanged: the platform receives the same event again.
A pending delivery is not resent: it is already queued, or in a worker's hands right now.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import update

from . import audit, events
from .exceptions import (
    InvalidWebhookUrl,
    UnknownWebhookEventType,
    WebhookAddressForbidden,
    WebhookAddressLocal,
    WebhookDeliveryNotResendable,
    WebhookDescriptionTooLong,
    WebhookEndpointDisabled,
    WebhookEventTypesMissing,
    WebhookHttpsRequired,
    WebhookUrlCredentials,
)
from .extensions import db
from .models import DeliveryStatus, Event, User, WebhookDelivery, WebhookEndpoint, utcnow
from .network import is_local_address, is_metadata_address

SECRET_PREFIX = "whsec_"
# After a rotation the previous secret still signs (a second v1 value) while the platform switches.
PREVIOUS_SECRET_LIFETIME = timedelta(hours=24)
MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 200
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")


def new_secret() -> str:
    """A signing secret: "whsec_" and 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def create_endpoint(*, url: str, event_types: Iterable[str], description: str | None = None,
                    enabled: bool = True, actor: User | None, ip: str | None = None
                    ) -> tuple[WebhookEndpoint, str]:
    """A new endpoint; returns it and its secret (shown once to whoever created it)."""
    url, types, description = check_url(url), check_event_types(event_types), _description(description)
    secret = new_secret()
    endpoint = WebhookEndpoint(url=url, description=description, event_types=" ".join(types),
                               enabled=enabled, secret=secret, created_at=utcnow(),
                               created_by_id=actor.id if actor else None)
    db.session.add(endpoint)
    db.session.flush()
    audit.record("webhook_endpoint.created", endpoint, actor=actor, ip=ip, url=url, event_types=types,
                 enabled=enabled)
    return endpoint, secret


def update_endpoint(endpoint: WebhookEndpoint, *, url: str | None = None, event_types: Iterable[str],
                    description: str | None, enabled: bool, actor: User | None,
                    ip: str | None = None) -> WebhookEndpoint:
    """Change an endpoint's types, description, enabled state (and address, when given). Enabled
    again, its deliveries that waited get a fresh retry window, due now."""
    url = endpoint.url if url is None else check_url(url)
    types = check_event_types(event_types)
    enabling = bool(enabled) and not endpoint.enabled
    endpoint.url, endpoint.event_types = url, " ".join(types)
    endpoint.description, endpoint.enabled = _description(description), bool(enabled)
    db.session.flush()
    if enabling:
        # No worker holds them (a disabled endpoint's deliveries are not claimed).
        now = utcnow()
        db.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint.id,
                   WebhookDelivery.status == DeliveryStatus.PENDING)
            .values(next_attempt_at=now, created_at=now)
            .execution_options(synchronize_session=False))
    audit.record("webhook_endpoint.updated", endpoint, actor=actor, ip=ip, url=url, event_types=types,
                 enabled=endpoint.enabled)
    return endpoint


def rotate_secret(endpoint: WebhookEndpoint, *, actor: User | None, ip: str | None = None,
                  now: datetime | None = None) -> str:
    """A new secret for `endpoint`, returned once; the current one keeps signing for 24 hours
    (a second rotation within them ends the oldest at once: two secrets at most)."""
    now = now or utcnow()
    secret = new_secret()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + PREVIOUS_SECRET_LIFETIME
    endpoint.secret = secret
    db.session.flush()
    audit.record("webhook_endpoint.secret_rotated", endpoint, actor=actor, ip=ip,
                 previous_valid_until=endpoint.previous_secret_expires_at.isoformat())
    return secret


def send_test_event(endpoint: WebhookEndpoint, *, actor: User | None, ip: str | None = None,
                    now: datetime | None = None) -> Event:
    """Queue a test event for `endpoint` alone (one delivery, whatever types it subscribes to)."""
    if not endpoint.enabled:
        raise WebhookEndpointDisabled()
    event = events.record_test(endpoint, now=now)
    audit.record("webhook_endpoint.test_sent", endpoint, actor=actor, ip=ip, event=event.public_id)
    return event


def resend_delivery(delivery: WebhookDelivery, *, actor: User | None, ip: str | None = None,
                    now: datetime | None = None) -> WebhookDelivery:
    """Queue a delivered or failed delivery again, due now, with a fresh retry window (see the module)."""
    endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
    if not endpoint.enabled:
        raise WebhookEndpointDisabled()
    if not _requeue(WebhookDelivery.id == delivery.id,
                    WebhookDelivery.status.in_((DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)),
                    now=now or utcnow()):
        raise WebhookDeliveryNotResendable()
    db.session.refresh(delivery)
    audit.record("webhook_delivery.resent", delivery, actor=actor, ip=ip, endpoint_id=endpoint.id,
                 event_id=delivery.event_id)
    return delivery


def resend_failed(endpoint: WebhookEndpoint, *, actor: User | None, ip: str | None = None,
                  now: datetime | None = None) -> int:
    """Queue every failed delivery of `endpoint` again (one UPDATE); returns how many."""
    if not endpoint.enabled:
        raise WebhookEndpointDisabled()
    count = _requeue(WebhookDelivery.endpoint_id == endpoint.id,
                     WebhookDelivery.status == DeliveryStatus.FAILED, now=now or utcnow())
    audit.record("webhook_endpoint.failed_resent", endpoint, actor=actor, ip=ip, count=count)
    return count


def _requeue(*where, now: datetime) -> int:
    # Conditional on the status: a delivery a worker holds is pending, so never taken from it.
    return db.session.execute(
        update(WebhookDelivery).where(*where)
        .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now, created_at=now,
                delivered_at=None, last_status_code=None, last_error=None)
        .execution_options(synchronize_session=False)
    ).rowcount


# --- Checks, also used by the forms beside each field ---------------------------------------------


def check_url(url: str | None) -> str:
    """The address, stripped, if an endpoint may have it; a named refusal otherwise."""
    url = (url or "").strip()
    if not url or len(url) > MAX_URL_LENGTH or _SPACE_OR_CONTROL.search(url):
        raise InvalidWebhookUrl()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError:
        raise InvalidWebhookUrl() from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidWebhookUrl()
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlCredentials()
    if parts.scheme.lower() != "https" and current_app.config["WEBHOOKS_HTTPS_ONLY"]:
        raise WebhookHttpsRequired()
    address = _literal_address(parts.hostname)
    if address is not None:
        if is_metadata_address(address):
            raise WebhookAddressForbidden(address=address)
        if is_local_address(address) and not current_app.config["WEBHOOKS_ALLOW_LOCAL"]:
            raise WebhookAddressLocal(address=address)
    return url


def _literal_address(host: str) -> str | None:
    """The IP address a host is written as, if it is one: also the forms a resolver reads as IPv4
    (2130706433, 0x7f.1, 127.1), which `ipaddress` does not."""
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_event_types(event_types: Iterable[str]) -> list[str]:
    """The chosen types, each once, in the order of `events.EVENT_TYPES`; a named refusal otherwise."""
    chosen = {event_type.strip() for event_type in event_types if event_type and event_type.strip()}
    if not chosen:
        raise WebhookEventTypesMissing()
    unknown = sorted(chosen - events.EVENT_TYPES.keys())
    if unknown:
        raise UnknownWebhookEventType(event_type=unknown[0], event_types=", ".join(events.EVENT_TYPES))
    return [event_type for event_type in events.EVENT_TYPES if event_type in chosen]


def _description(description: str | None) -> str | None:
    description = (description or "").strip()
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise WebhookDescriptionTooLong()
    return description or None
