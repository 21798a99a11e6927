"""The portal's events (signed webhooks), as the platform receives them at POST /webhooks/portail.

The portal sends each event its endpoint for the platform subscribes to (`flask webhooks add
http://127.0.0.1:5050/webhooks/portail --event quote.accepted --event invoice.paid --event
credits.granted`), signed with the endpoint's secret (PORTAL_WEBHOOK_SECRET here). The route checks
the `Portail-Signature` header on the raw body with `verify_signature`, the code the portal's README
shows, and answers 400 to a missing, stale or wrong signature: the portal then tries again later.

It answers 200 to an event it already has, too: the portal delivers at least once (a retry after an
answer lost on the way, a resend from the back office), so the platform keeps each event id once.
Here the events are kept in memory, the last KEPT ids: it is an example. A real platform writes the
event id in its own database, under a unique constraint, in the transaction that acts on the event.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, request

from .formatting import credits, euros, paris_time
from .webhook_signature import verify_signature

# The events the dashboard shows (the endpoint subscribes to these), with their French names.
SHOWN_TYPES = {"quote.accepted": "Devis accepté", "invoice.paid": "Facture payée",
               "credits.granted": "Crédits accordés"}
KEPT = 1000
SIGNATURE_HEADER = "Portail-Signature"

blueprint = Blueprint("portal_events", __name__)


@dataclass(frozen=True)
class ReceivedEvent:
    id: str
    type: str
    account_id: str | None  # the organisation's external_id, the platform's own account id
    sequence: int | None  # per organisation: orders one account's events whatever their arrival
    created: int
    summary: str

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> ReceivedEvent:
        """The event the portal sent (KeyError, TypeError or ValueError if it is not one)."""
        organisation = payload["organisation"] or {}
        return cls(id=str(payload["id"]), type=str(payload["type"]),
                   account_id=organisation.get("external_id"), sequence=payload.get("sequence"),
                   created=int(payload["created"]),
                   summary=_summary(payload["type"], payload.get("data") or {}))

    def describe(self) -> dict[str, Any]:
        """What the dashboard shows of it."""
        label = SHOWN_TYPES.get(self.type, self.type)
        return {"id": self.id, "type": self.type, "sequence": self.sequence, "time": paris_time(self.created),
                "text": f"{label} : {self.summary}" if self.summary else label}


class EventInbox:
    """The events received, each id once (the last `kept` ids), safe to share between threads."""

    def __init__(self, kept: int = KEPT) -> None:
        self._events: OrderedDict[str, ReceivedEvent] = OrderedDict()
        self._kept = kept
        self._lock = threading.Lock()

    def add(self, event: ReceivedEvent) -> bool:
        """Keep `event` unless its id is already kept; whether it was new."""
        with self._lock:
            if event.id in self._events:
                return False
            self._events[event.id] = event
            while len(self._events) > self._kept:
                self._events.popitem(last=False)
            return True

    def shown_for(self, account_id: str, limit: int = 20) -> list[ReceivedEvent]:
        """The account's events of SHOWN_TYPES, the latest first (by the portal's sequence)."""
        with self._lock:
            events = [event for event in self._events.values()
                      if event.account_id == account_id and event.type in SHOWN_TYPES]
        return sorted(events, key=lambda event: event.sequence or 0, reverse=True)[:limit]


def inbox() -> EventInbox:
    return current_app.extensions["portal_events"]


@blueprint.post("/webhooks/portail")
def receive():
    """One event from the portal: kept (once) if signed with the platform's secret, else 400."""
    body = request.get_data()  # the raw bytes: the signature covers them, not a re-encoded JSON
    secret = current_app.config["PORTAL_WEBHOOK_SECRET"]
    if not secret:
        current_app.logger.warning("PORTAL_WEBHOOK_SECRET is not set: every event is refused.")
    if not verify_signature(body, request.headers.get(SIGNATURE_HEADER, ""), secret,
                            tolerance=current_app.config["PORTAL_WEBHOOK_TOLERANCE"]):
        return {"error": "Signature absente, périmée ou incorrecte."}, 400
    try:
        event = ReceivedEvent.from_payload(json.loads(body))
    except (KeyError, TypeError, ValueError, AttributeError):
        return {"error": "Ce n'est pas un événement du portail."}, 400
    is_new = inbox().add(event)
    return {"received": event.id, "duplicate": not is_new}, 200


def _summary(event_type: str, data: dict[str, Any]) -> str:
    """« DV-2026-00012, 1 200,00 € TTC », « 15 crédits, devis DV-2026-00012 »; "" for other shapes."""
    try:
        if event_type == "quote.accepted":
            return f"{data['reference']}, {euros(data['totals']['total_ttc_cents'])} TTC"
        if event_type == "invoice.paid":
            return f"{data['number']}, {euros(data['totals']['total_ttc_cents'])} TTC"
        if event_type == "credits.granted":
            quote = data.get("quote")
            return credits(data["amount"]) + (f", devis {quote['reference']}" if quote else "")
    except (KeyError, TypeError):
        pass  # another API version's shape: the event is kept, shown by its name only
    return ""
