"""Events to the platform: rows written in the transaction of the change they tell.

`record` and `record_many` only flush, like every domain function: a rolled-back change emits
nothing and a committed one is never lost. Each event is written with the exact JSON body its
deliveries send, and one `WebhookDelivery` row per enabled endpoint subscribed to its type (a
unique pair: one delivery per endpoint). An event no endpoint listens to is not written at all.
The worker (`delivery/webhooks.py`) signs and sends the deliveries, in transactions of its own.

Each organisation numbers its events (`sequence`, from `Organisation.event_sequence`, incremented
by the writing transaction: concurrent writers of one organisation queue on its row), so the
platform can put one organisation's events in order whatever order they arrive in.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, insert, select, update

from .extensions import db
from .i18n import lazy_gettext as _l
from .models import Event, Organisation, WebhookDelivery, WebhookEndpoint, utcnow

API_VERSION = "2026-12-01"

# Every type an endpoint can subscribe to, with what it tells (the back office's checkboxes).
EVENT_TYPES = {
    "quote.sent": _l("Devis envoyé au client"),
    "quote.accepted": _l("Devis accepté"),
    "quote.refused": _l("Devis refusé"),
    "quote.expired": _l("Devis expiré"),
    "invoice.issued": _l("Facture ou avoir émis"),
    "invoice.paid": _l("Facture payée"),
    "invoice.cancelled": _l("Facture annulée par un avoir"),
    "credits.granted": _l("Crédits accordés"),
    "credits.consumed": _l("Crédits consommés"),
    "credits.adjusted": _l("Crédits ajustés"),
    "credits.reversed": _l("Crédits repris par un avoir"),
    "request.received": _l("Demande de devis reçue"),
    "request.answered": _l("Demande de devis traitée"),
}
# Sent from the back office to one endpoint, whatever it subscribes to; no organisation.
TEST_EVENT_TYPE = "endpoint.test"


def record(event_type: str, organisation: Organisation, data: dict[str, Any], *,
           now: datetime | None = None) -> Event | None:
    """Write one event of `organisation` carrying `data` (the object as the API shows it) and its
    deliveries; None when no enabled endpoint subscribes to `event_type`."""
    written = record_many(event_type, [(organisation, data)], now=now)
    return written[0] if written else None


def record_many(event_type: str, items: Sequence[tuple[Organisation, dict[str, Any]]], *,
                now: datetime | None = None) -> list[Event]:
    """`record` for several objects at once (the monthly close's invoices): a few statements in all."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    endpoint_ids = subscribed_endpoints(event_type)
    if not endpoint_ids or not items:
        return []
    now = now or utcnow()
    sequences = _next_sequences(Counter(organisation.id for organisation, _ in items))
    events = []
    for organisation, data in items:
        sequence = sequences[organisation.id].pop(0)
        events.append(_new_event(event_type, data, now, organisation=organisation, sequence=sequence))
    _insert(events, endpoint_ids)
    return events


def record_test(endpoint: WebhookEndpoint, *, now: datetime | None = None) -> Event:
    """A test event for `endpoint` only, as the back office's « Envoyer un événement de test »."""
    now = now or utcnow()
    data = {"object": "webhook_endpoint", "id": endpoint.id, "url": endpoint.url,
            "message": "Événement de test du Portail Devis."}
    event = _new_event(TEST_EVENT_TYPE, data, now, organisation=None, sequence=None)
    _insert([event], [endpoint.id])
    return event


# Whether any endpoint is enabled, as a column: a caller's own statement carries it, so that a change
# no endpoint can hear of costs no statement of its own (a consumption, the API's busiest call).
ANY_ENABLED_ENDPOINT = exists().where(WebhookEndpoint.enabled.is_(True)).label("any_enabled_endpoint")
# Built once: every event-worthy change asks it, most often with no endpoint to find.
ENABLED_ENDPOINTS = (select(WebhookEndpoint.id, WebhookEndpoint.event_types)
                     .where(WebhookEndpoint.enabled.is_(True)))


def subscribed_endpoints(event_type: str) -> list[int]:
    """The ids of the enabled endpoints that subscribe to `event_type`."""
    rows = db.session.execute(ENABLED_ENDPOINTS)
    return [endpoint_id for endpoint_id, types in rows if event_type in types.split()]


def payload(event: Event) -> dict[str, Any]:
    """The body an event's deliveries send, as a dict."""
    return json.loads(event.body)


def _new_event(event_type: str, data: dict[str, Any], now: datetime, *,
               organisation: Organisation | None, sequence: int | None) -> Event:
    public_id = "evt_" + secrets.token_hex(12)
    body = {
        "id": public_id,
        "object": "event",
        "type": event_type,
        "api_version": API_VERSION,
        "created": int(now.replace(tzinfo=UTC).timestamp()),  # naive UTC, as stored
        "organisation": ({"id": organisation.id, "external_id": organisation.external_id}
                         if organisation is not None else None),
        "sequence": sequence,
        "data": data,
    }
    return Event(public_id=public_id, type=event_type, sequence=sequence, created_at=now,
                 organisation_id=organisation.id if organisation is not None else None,
                 body=json.dumps(body, ensure_ascii=False, separators=(",", ":")))


def _next_sequences(counts: Counter[int]) -> dict[int, list[int]]:
    """Reserve `counts[organisation_id]` sequence numbers for each organisation: one UPDATE per
    distinct count (the monthly close: one for all its organisations)."""
    reserved: dict[int, list[int]] = {}
    by_count: dict[int, list[int]] = {}
    for organisation_id, count in counts.items():
        by_count.setdefault(count, []).append(organisation_id)
    for count, organisation_ids in by_count.items():
        rows = db.session.execute(
            update(Organisation).where(Organisation.id.in_(sorted(organisation_ids)))
            .values(event_sequence=Organisation.event_sequence + count)
            .returning(Organisation.id, Organisation.event_sequence)
            .execution_options(synchronize_session=False))
        for organisation_id, last in rows:
            reserved[organisation_id] = list(range(last - count + 1, last + 1))
    return reserved


def _insert(events: list[Event], endpoint_ids: list[int]) -> None:
    db.session.add_all(events)
    db.session.flush()
    db.session.execute(insert(WebhookDelivery.__table__), [
        {"event_id": event.id, "endpoint_id": endpoint_id, "status": "pending", "attempts": 0,
         "next_attempt_at": event.created_at, "created_at": event.created_at}
        for event in events for endpoint_id in endpoint_ids])
