"""Webhook endpoints (portal/webhook_endpoints.py) and `flask webhooks …`: each refused address or type
is a named French refusal that creates nothing; a rotated secret keeps the previous one 24 hours; a
test event goes to one endpoint only; failed deliveries are queued again, one or all, with a fresh
retry window."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from portal import events, webhook_endpoints
from portal.exceptions import (
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
from portal.extensions import db
from portal.models import AuditEvent, DeliveryStatus, Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint

from . import factories

URL = "https://plateforme.example/webhooks/portail"
NOW = datetime(2026, 5, 4, 10, 0)


def _endpoints() -> list[WebhookEndpoint]:
    db.session.expire_all()
    return db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).all()


def _audit(action: str) -> AuditEvent:
    return db.session.scalar(select(AuditEvent).where(AuditEvent.action == action)
                             .order_by(AuditEvent.id.desc()))


@pytest.fixture
def local_allowed(app, monkeypatch):
    """A development setting: http and local addresses allowed."""
    monkeypatch.setitem(app.config, "WEBHOOKS_ALLOW_LOCAL", True)
    monkeypatch.setitem(app.config, "WEBHOOKS_HTTPS_ONLY", False)


# --- Creation and its refusals ----------------------------------------------------------------------


def test_an_endpoint_is_created_with_its_types_in_order_and_a_secret_returned_once(make):
    admin = make.staff()
    endpoint, secret = webhook_endpoints.create_endpoint(
        url=f"  {URL}  ", event_types=["invoice.paid", "quote.accepted", "invoice.paid"],
        description=" Plateforme ", actor=admin, ip="203.0.113.7")
    db.session.commit()
    [stored] = _endpoints()
    assert stored.id == endpoint.id and stored.url == URL and stored.description == "Plateforme"
    assert stored.event_type_list == ["quote.accepted", "invoice.paid"]  # each once, in EVENT_TYPES order
    assert secret.startswith("whsec_") and len(secret) > 40 and stored.secret == secret
    assert stored.enabled and stored.created_by_id == admin.id and stored.previous_secret is None
    event = _audit("webhook_endpoint.created")
    assert event.actor_id == admin.id and event.ip == "203.0.113.7" and event.details["url"] == URL
    assert secret not in str(event.details)


@pytest.mark.parametrize("url, refusal", [
    ("", InvalidWebhookUrl),
    ("plateforme.example/webhooks", InvalidWebhookUrl),            # not absolute
    ("ftp://plateforme.example/webhooks", InvalidWebhookUrl),      # not http(s)
    ("javascript:alert(1)", InvalidWebhookUrl),
    ("https:///webhooks", InvalidWebhookUrl),                      # no host
    ("https://plate forme.example/", InvalidWebhookUrl),            # a space
    ("https://plateforme.example/\nX-Injected: 1", InvalidWebhookUrl),
    ("https://plateforme.example:99999/", InvalidWebhookUrl),      # no such port
    ("https://plateforme.example/" + "a" * 2000, InvalidWebhookUrl),  # over 2000 characters
    ("https://alice:secret@plateforme.example/", WebhookUrlCredentials),
    ("https://alice@plateforme.example/", WebhookUrlCredentials),
    ("http://plateforme.example/webhooks", WebhookHttpsRequired),
    ("https://169.254.169.254/latest/meta-data/", WebhookAddressForbidden),
    ("https://[fd00:ec2::254]/", WebhookAddressForbidden),
    ("https://127.0.0.1/webhooks", WebhookAddressLocal),
    ("https://10.1.2.3:8443/webhooks", WebhookAddressLocal),
    ("https://192.168.1.10/", WebhookAddressLocal),
    ("https://[::1]/", WebhookAddressLocal),
    ("https://[::ffff:10.0.0.1]/", WebhookAddressLocal),
    ("https://2130706433/", WebhookAddressLocal),                  # 127.0.0.1 as a resolver reads it
    ("https://0x7f.1/", WebhookAddressLocal),
])
def test_each_refused_address_is_a_named_french_refusal_and_nothing_is_created(app, url, refusal):
    with pytest.raises(refusal) as raised:
        webhook_endpoints.create_endpoint(url=url, event_types=["quote.accepted"], actor=None)
    db.session.rollback()
    assert type(raised.value) is refusal
    with app.test_request_context("/"):
        message = str(raised.value)
    assert message and "%(" not in message
    assert _endpoints() == []


def test_the_refusals_say_why_in_french(app):
    with app.test_request_context("/"):
        assert "https://" in str(WebhookHttpsRequired())
        assert "169.254.169.254" in str(WebhookAddressForbidden(address="169.254.169.254"))
        assert "n'est pas publique" in str(WebhookAddressLocal(address="10.0.0.1"))
        assert "mot de passe" in str(WebhookUrlCredentials())


@pytest.mark.parametrize("event_types, refusal", [
    ([], WebhookEventTypesMissing),
    (["", "  "], WebhookEventTypesMissing),
    (["quote.accepted", "quote.signed"], UnknownWebhookEventType),
    ([events.TEST_EVENT_TYPE], UnknownWebhookEventType),  # sent by the test button only
])
def test_missing_or_unknown_event_types_are_refused(event_types, refusal):
    with pytest.raises(refusal):
        webhook_endpoints.create_endpoint(url=URL, event_types=event_types, actor=None)
    db.session.rollback()
    assert _endpoints() == []


def test_an_unknown_type_is_named_with_the_known_ones(app):
    with pytest.raises(UnknownWebhookEventType) as raised:
        webhook_endpoints.create_endpoint(url=URL, event_types=["quote.signed"], actor=None)
    with app.test_request_context("/"):
        message = str(raised.value)
    assert "quote.signed" in message and "credits.consumed" in message


def test_a_description_over_200_characters_is_refused():
    with pytest.raises(WebhookDescriptionTooLong):
        webhook_endpoints.create_endpoint(url=URL, event_types=["quote.sent"], description="x" * 201,
                                          actor=None)
    db.session.rollback()
    assert _endpoints() == []


def test_in_development_http_and_local_addresses_are_allowed_but_never_metadata(local_allowed):
    local, _secret = webhook_endpoints.create_endpoint(url="http://127.0.0.1:8765/evenements",
                                                       event_types=["quote.sent"], actor=None)
    assert local.url == "http://127.0.0.1:8765/evenements"
    for url in ("http://169.254.169.254/", "http://[::ffff:169.254.169.254]/", "http://100.100.100.200/"):
        with pytest.raises(WebhookAddressForbidden):
            webhook_endpoints.create_endpoint(url=url, event_types=["quote.sent"], actor=None)


def test_a_host_name_is_left_to_the_worker_which_checks_what_it_resolves_to():
    endpoint, _secret = webhook_endpoints.create_endpoint(url="https://localhost/hook",
                                                          event_types=["quote.sent"], actor=None)
    assert endpoint.url == "https://localhost/hook"


# --- Changes, rotation ------------------------------------------------------------------------------


def test_an_update_changes_types_description_and_state_with_the_same_checks(make):
    admin = make.staff()
    endpoint = make.webhook_endpoint(event_types=["quote.sent"])
    db.session.commit()
    webhook_endpoints.update_endpoint(endpoint, event_types=["credits.granted", "credits.consumed"],
                                      description="Analyses", enabled=False, actor=admin)
    db.session.commit()
    [stored] = _endpoints()
    assert stored.event_type_list == ["credits.granted", "credits.consumed"]
    assert stored.description == "Analyses" and not stored.enabled and stored.url == endpoint.url
    assert _audit("webhook_endpoint.updated").details["enabled"] is False
    with pytest.raises(WebhookHttpsRequired):
        webhook_endpoints.update_endpoint(stored, url="http://plateforme.example/",
                                          event_types=["quote.sent"], description=None, enabled=True,
                                          actor=admin)
    db.session.rollback()
    with pytest.raises(UnknownWebhookEventType):
        webhook_endpoints.update_endpoint(stored, event_types=["quote.bogus"], description=None,
                                          enabled=True, actor=admin)
    db.session.rollback()
    assert _endpoints()[0].event_type_list == ["credits.granted", "credits.consumed"]


def test_a_rotated_secret_keeps_the_previous_one_valid_24_hours(make):
    endpoint, first = webhook_endpoints.create_endpoint(url=URL, event_types=["quote.sent"], actor=None)
    second = webhook_endpoints.rotate_secret(endpoint, actor=None, now=NOW)
    db.session.commit()
    [stored] = _endpoints()
    assert second.startswith("whsec_") and second != first and stored.secret == second
    assert stored.previous_secret == first and stored.previous_secret_expires_at == NOW + timedelta(hours=24)
    event = _audit("webhook_endpoint.secret_rotated")
    assert first not in str(event.details) and second not in str(event.details)
    third = webhook_endpoints.rotate_secret(stored, actor=None, now=NOW + timedelta(hours=1))
    db.session.commit()
    [stored] = _endpoints()
    assert stored.secret == third and stored.previous_secret == second  # two secrets at most
    assert stored.previous_secret_expires_at == NOW + timedelta(hours=25)


# --- Test event, resending ----------------------------------------------------------------------------


def test_a_test_event_is_one_event_with_exactly_one_delivery_to_that_endpoint(make):
    target = make.webhook_endpoint(event_types=["quote.sent"])
    make.webhook_endpoint(url="https://autre.example/hook")  # subscribes to every type
    event = webhook_endpoints.send_test_event(target, actor=None, now=NOW)
    db.session.commit()
    [stored] = db.session.scalars(select(Event)).all()
    assert stored.id == event.id and stored.type == events.TEST_EVENT_TYPE and stored.organisation_id is None
    [delivery] = db.session.scalars(select(WebhookDelivery)).all()
    assert delivery.endpoint_id == target.id and delivery.event_id == event.id
    assert delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at == NOW
    assert events.payload(stored)["data"]["id"] == target.id
    assert _audit("webhook_endpoint.test_sent").details["event"] == event.public_id


def test_a_disabled_endpoint_gets_no_test_event(make):
    endpoint = make.webhook_endpoint(enabled=False)
    with pytest.raises(WebhookEndpointDisabled):
        webhook_endpoints.send_test_event(endpoint, actor=None)
    db.session.rollback()
    assert db.session.scalar(select(func.count(Event.id))) == 0


def _deliveries(endpoint: WebhookEndpoint, statuses: list[DeliveryStatus]) -> list[WebhookDelivery]:
    """One event per status, each with one delivery to `endpoint` in that status and one attempt."""
    organisation = factories.organisation()
    made = []
    for status in statuses:
        event = events.record("quote.sent", organisation, {"object": "quote"}, now=NOW)
        delivery = db.session.scalar(select(WebhookDelivery).where(
            WebhookDelivery.event_id == event.id, WebhookDelivery.endpoint_id == endpoint.id))
        delivery.status, delivery.attempts = status, 9
        delivery.delivered_at = NOW if status == DeliveryStatus.DELIVERED else None
        db.session.add(WebhookAttempt(delivery_id=delivery.id, attempted_at=NOW, status_code=500,
                                      duration_ms=12, response_excerpt="Erreur", error="HTTP 500"))
        made.append(delivery)
    db.session.commit()
    return made


def test_resending_a_failed_delivery_queues_it_now_with_a_fresh_window(make):
    endpoint = make.webhook_endpoint(event_types=["quote.sent"])
    [delivery] = _deliveries(endpoint, [DeliveryStatus.FAILED])
    event_body = delivery.event.body
    later = NOW + timedelta(days=5)
    webhook_endpoints.resend_delivery(delivery, actor=None, now=later)
    db.session.commit()
    db.session.expire_all()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0
    assert delivery.next_attempt_at == later and delivery.created_at == later  # the retry window restarts
    assert len(delivery.attempt_log) == 1 and delivery.event.body == event_body  # log kept, same event
    assert (delivery.last_status_code, delivery.last_error) == (None, None)  # no stale result shown
    assert _audit("webhook_delivery.resent").details["event_id"] == delivery.event_id


def test_a_delivered_delivery_can_be_sent_again_a_pending_one_cannot(make):
    endpoint = make.webhook_endpoint(event_types=["quote.sent"])
    delivered, pending = _deliveries(endpoint, [DeliveryStatus.DELIVERED, DeliveryStatus.PENDING])
    webhook_endpoints.resend_delivery(delivered, actor=None, now=NOW)
    assert delivered.status == DeliveryStatus.PENDING and delivered.delivered_at is None
    with pytest.raises(WebhookDeliveryNotResendable):
        webhook_endpoints.resend_delivery(pending, actor=None, now=NOW)


def test_enabled_again_an_endpoints_waiting_deliveries_get_a_fresh_window(make):
    endpoint = make.webhook_endpoint(event_types=["quote.sent"])
    waiting, failed = _deliveries(endpoint, [DeliveryStatus.PENDING, DeliveryStatus.FAILED])
    webhook_endpoints.update_endpoint(endpoint, event_types=["quote.sent"], description=None, enabled=False,
                                      actor=None)
    db.session.commit()
    webhook_endpoints.update_endpoint(endpoint, event_types=["quote.sent"], description=None, enabled=True,
                                      actor=None)
    db.session.commit()
    db.session.expire_all()
    assert waiting.created_at > NOW + timedelta(days=1)  # not given up at its next try for being old
    assert waiting.next_attempt_at == waiting.created_at
    assert (failed.status, failed.created_at) == (DeliveryStatus.FAILED, NOW)  # only what waited


def test_no_resend_to_a_disabled_endpoint(make):
    endpoint = make.webhook_endpoint(event_types=["quote.sent"])
    [delivery] = _deliveries(endpoint, [DeliveryStatus.FAILED])
    endpoint.enabled = False
    db.session.commit()
    with pytest.raises(WebhookEndpointDisabled):
        webhook_endpoints.resend_delivery(delivery, actor=None)
    with pytest.raises(WebhookEndpointDisabled):
        webhook_endpoints.resend_failed(endpoint, actor=None)


def test_resending_all_failed_queues_only_that_endpoints_failed_deliveries(make):
    mine = make.webhook_endpoint(event_types=["quote.sent"])
    other = make.webhook_endpoint(url="https://autre.example/hook", event_types=["quote.sent"])
    _deliveries(mine, [DeliveryStatus.FAILED, DeliveryStatus.FAILED, DeliveryStatus.DELIVERED,
                       DeliveryStatus.PENDING])
    db.session.execute(update(WebhookDelivery).where(WebhookDelivery.endpoint_id == other.id)
                       .values(status=DeliveryStatus.FAILED))  # the same events, failed at another endpoint
    db.session.commit()
    later = NOW + timedelta(days=4)
    assert webhook_endpoints.resend_failed(mine, actor=None, now=later) == 2
    db.session.commit()
    db.session.expire_all()
    rows = db.session.execute(select(WebhookDelivery.endpoint_id, WebhookDelivery.status,
                                     WebhookDelivery.attempts, WebhookDelivery.next_attempt_at)
                              .order_by(WebhookDelivery.id)).all()
    queued = [(status, attempts, due) for endpoint_id, status, attempts, due in rows
              if endpoint_id == mine.id]
    assert queued[:2] == [(DeliveryStatus.PENDING, 0, later)] * 2  # the two failed ones
    assert queued[2][0] == DeliveryStatus.DELIVERED and queued[3][2] == NOW  # the others untouched
    others = [status for endpoint_id, status, _attempts, _due in rows if endpoint_id == other.id]
    assert others == [DeliveryStatus.FAILED] * 4
    assert _audit("webhook_endpoint.failed_resent").details["count"] == 2
    assert webhook_endpoints.resend_failed(mine, actor=None) == 0


# --- flask webhooks … -----------------------------------------------------------------------------------


def test_webhooks_add_prints_the_secret_once_alone_on_stdout(runner):
    result = runner.invoke(args=["webhooks", "add", URL, "--event", "quote.accepted", "--event",
                                 "invoice.paid", "--description", "Plateforme"])
    assert result.exit_code == 0, result.output
    [endpoint] = _endpoints()
    secret = result.stdout.strip()  # for `SECRET=$(flask webhooks add …)`
    assert secret == endpoint.secret and secret.startswith("whsec_")
    assert f"Point de réception {endpoint.id} ajouté" in result.stderr
    assert "il ne sera plus jamais affiché" in result.stderr and secret not in result.stderr
    assert endpoint.event_type_list == ["quote.accepted", "invoice.paid"]
    assert endpoint.description == "Plateforme"
    assert endpoint.created_by_id is None


def test_webhooks_add_with_every_type(runner):
    result = runner.invoke(args=["webhooks", "add", URL, "--event", "all"])
    assert result.exit_code == 0, result.output
    assert _endpoints()[0].event_type_list == list(events.EVENT_TYPES)


@pytest.mark.parametrize("arguments, message", [
    (["plateforme.example", "--event", "quote.sent"], "Adresse invalide"),
    (["http://plateforme.example/hook", "--event", "quote.sent"], "doit commencer par https://"),
    (["https://10.0.0.1/hook", "--event", "quote.sent"], "n'est pas publique"),
    ([URL], "Choisissez au moins un type d'événement."),
    ([URL, "--event", "quote.sent", "--event", "quote.signed"], "Type d'événement inconnu : quote.signed"),
])
def test_webhooks_add_refuses_bad_input_in_french_and_creates_nothing(runner, arguments, message):
    result = runner.invoke(args=["webhooks", "add", *arguments])
    assert result.exit_code != 0 and message in result.output, result.output
    assert "whsec_" not in result.output
    assert _endpoints() == []


def test_webhooks_list_shows_each_endpoint_with_its_pending_and_failed_counts(runner, make):
    assert "Aucun point de réception" in runner.invoke(args=["webhooks", "list"]).output
    busy = make.webhook_endpoint(event_types=["quote.sent", "quote.accepted"])
    quiet = make.webhook_endpoint(url="https://autre.example/hook", event_types=["invoice.paid"],
                                  enabled=False)
    _deliveries(busy, [DeliveryStatus.FAILED, DeliveryStatus.PENDING, DeliveryStatus.PENDING,
                       DeliveryStatus.DELIVERED])
    result = runner.invoke(args=["webhooks", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (f"{busy.id}  {busy.url}  [quote.sent quote.accepted]  activé, "
                        "2 envois en attente, 1 en échec")
    assert lines[1] == (f"{quiet.id}  {quiet.url}  [invoice.paid]  désactivé, "
                        "0 envoi en attente, 0 en échec")
    assert busy.secret not in result.output


def test_webhooks_rotate_asks_for_a_confirmation_unless_yes(runner, make):
    endpoint = make.webhook_endpoint()
    db.session.commit()
    first = endpoint.secret
    declined = runner.invoke(args=["webhooks", "rotate", str(endpoint.id)], input="n\n")
    assert declined.exit_code != 0 and "Rien n'a changé" in declined.output
    assert _endpoints()[0].secret == first
    confirmed = runner.invoke(args=["webhooks", "rotate", str(endpoint.id)], input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    [stored] = _endpoints()
    assert confirmed.stdout.strip() == stored.secret != first and stored.previous_secret == first
    assert "ne sera plus jamais affiché" in confirmed.stderr and "reste valable jusqu'au" in confirmed.stderr
    again = runner.invoke(args=["webhooks", "rotate", str(endpoint.id), "--yes"])
    assert again.exit_code == 0 and _endpoints()[0].secret == again.stdout.strip()


@pytest.mark.parametrize("endpoint_id", ["999", "0", "99999999999999999999"])
def test_webhooks_rotate_an_unknown_endpoint(runner, endpoint_id):
    result = runner.invoke(args=["webhooks", "rotate", endpoint_id, "--yes"])
    assert result.exit_code != 0 and f"Aucun point de réception n° {endpoint_id}" in result.output
