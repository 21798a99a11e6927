"""Webhook delivery against a real HTTP(S) receiver on 127.0.0.1: signed, retried, delivered once,
and refused where it must be (SSRF: scheme, local and metadata addresses, certificates, redirects,
timeouts, answers too long); `flask outbox send` and `work` deliver them."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import ssl
import subprocess
import sys
import threading
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal import credits, events
from portal.delivery import webhook_http, webhooks, worker
from portal.extensions import db
from portal.models import DeliveryStatus, Event, StaffRole, WebhookDelivery, utcnow

from .webhook_receiver import TEST_CA, running_receiver

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def webhook_receiver():
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture
def tls_receiver():
    with running_receiver(tls=True) as receiver:
        yield receiver


@pytest.fixture
def local_webhooks(app, monkeypatch):
    """Deliver to the receiver: plain http, to 127.0.0.1 (as in development)."""
    monkeypatch.setitem(app.config, "WEBHOOKS_ALLOW_LOCAL", True)
    monkeypatch.setitem(app.config, "WEBHOOKS_HTTPS_ONLY", False)


def _event(make, *, now=None) -> Event:
    """One committed event for the endpoints that exist, from a new organisation."""
    org = make.organisation()
    event = events.record("credits.granted", org, {"object": "credit_entry", "amount": 5}, now=now)
    db.session.commit()
    return event


def _deliveries() -> list[WebhookDelivery]:
    db.session.expire_all()
    return list(db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def _signatures(header: str) -> tuple[int, list[str]]:
    """The timestamp and v1 values of a `Portail-Signature` header."""
    pairs = [item.split("=", 1) for item in header.split(",")]
    [timestamp] = [int(value) for key, value in pairs if key == "t"]
    return timestamp, [value for key, value in pairs if key == "v1"]


def _expected(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


# --- Delivered, signed, once --------------------------------------------------------------------


def test_a_delivery_is_signed_and_sent_once(make, webhook_receiver, local_webhooks):
    endpoint = make.webhook_endpoint(url=webhook_receiver.url())
    secret = endpoint.secret
    event = _event(make)
    moment = utcnow()

    result = webhooks.deliver_pending(now=moment)

    assert (result.delivered, result.retried, result.failed) == (1, 0, 0)
    [request] = webhook_receiver.requests
    assert (request.method, request.path) == ("POST", "/webhooks")
    assert request.body == event.body.encode()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "PortailDevis-Webhooks/1.0"
    assert request.headers["Portail-Event-Id"] == event.public_id
    assert request.headers["Portail-Event-Type"] == "credits.granted"
    timestamp, [signature] = _signatures(request.headers["Portail-Signature"])
    assert timestamp == int(moment.replace(tzinfo=UTC).timestamp())  # this attempt's time
    assert hmac.compare_digest(signature, _expected(secret, timestamp, request.body))
    [delivery] = _deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.DELIVERED, 1, 200)
    assert delivery.delivered_at == moment
    [attempt] = delivery.attempt_log
    assert (attempt.status_code, attempt.response_excerpt, attempt.error) == (200, "ok", None)
    assert attempt.duration_ms >= 0
    assert webhooks.deliver_pending().attempted == 0
    assert len(webhook_receiver.requests) == 1


def test_signature_header_has_one_v1_per_secret():
    body = b'{"id":"evt_1"}'

    header = webhooks.signature_header(["whsec_new", "whsec_old"], body, 1_700_000_000)

    assert header == (f"t=1700000000,v1={_expected('whsec_new', 1_700_000_000, body)},"
                      f"v1={_expected('whsec_old', 1_700_000_000, body)}")


def test_the_previous_secret_signs_too_until_it_expires(make, webhook_receiver, local_webhooks):
    moment = utcnow()
    make.webhook_endpoint(url=webhook_receiver.url(), secret="whsec_new", previous_secret="whsec_old",
                          previous_secret_expires_at=moment + timedelta(hours=24))
    _event(make, now=moment)
    assert webhooks.deliver_pending(now=moment).delivered == 1
    _event(make, now=moment + timedelta(hours=24))
    assert webhooks.deliver_pending(now=moment + timedelta(hours=24, seconds=1)).delivered == 1

    during, after = webhook_receiver.requests
    timestamp, values = _signatures(during.headers["Portail-Signature"])
    assert values == [_expected("whsec_new", timestamp, during.body),
                      _expected("whsec_old", timestamp, during.body)]
    timestamp, values = _signatures(after.headers["Portail-Signature"])
    assert values == [_expected("whsec_new", timestamp, after.body)]


def test_one_connection_serves_a_pass_to_one_endpoint(make, webhook_receiver, local_webhooks):
    make.webhook_endpoint(url=webhook_receiver.url())
    for _ in range(3):
        _event(make)

    assert webhooks.deliver_pending().delivered == 3

    assert len({request.client_port for request in webhook_receiver.requests}) == 1


def test_a_pass_claims_and_sends_no_more_than_its_limit(make, webhook_receiver, local_webhooks):
    make.webhook_endpoint(url=webhook_receiver.url())
    events.record_many("credits.consumed", [(make.organisation(), {"n": n}) for n in range(60)])
    db.session.commit()

    assert webhooks.deliver_pending(limit=10).delivered == 10

    assert len(webhook_receiver.requests) == 10
    untouched = [d for d in _deliveries() if d.status == DeliveryStatus.PENDING]
    assert len(untouched) == 50
    assert {d.attempts for d in untouched} == {0}  # not claimed: free for another worker


def test_a_kept_alive_connection_the_server_closed_is_replaced_without_a_duplicate(
        make, webhook_receiver, local_webhooks):
    make.webhook_endpoint(url=webhook_receiver.url())
    first, second = _event(make), _event(make)
    webhook_receiver.answer(200, hang_up=True)  # no "Connection: close": the client learns it on reuse

    assert webhooks.deliver_pending().delivered == 2

    assert webhook_receiver.event_ids() == [first.public_id, second.public_id]
    assert len({request.client_port for request in webhook_receiver.requests}) == 2


def test_a_rolled_back_change_delivers_nothing(make, webhook_receiver, local_webhooks):
    make.webhook_endpoint(url=webhook_receiver.url())
    db.session.commit()
    org, admin = make.organisation(), make.staff(StaffRole.ADMIN)
    credits.adjust_credits(org, 10, actor=admin, reason="Geste commercial")
    assert db.session.scalar(select(func.count()).select_from(Event)) == 1  # written, not committed
    db.session.rollback()

    assert webhooks.deliver_pending().attempted == 0
    assert webhook_receiver.requests == []
    assert db.session.scalar(select(func.count()).select_from(Event)) == 0


def test_a_disabled_endpoint_keeps_its_deliveries_pending_until_enabled(make, webhook_receiver,
                                                                        local_webhooks):
    endpoint = make.webhook_endpoint(url=webhook_receiver.url())
    _event(make)
    endpoint.enabled = False
    db.session.commit()

    assert webhooks.deliver_pending().attempted == 0
    assert [(d.status, d.attempts) for d in _deliveries()] == [(DeliveryStatus.PENDING, 0)]

    endpoint.enabled = True
    db.session.commit()
    assert webhooks.deliver_pending().delivered == 1
    assert len(webhook_receiver.requests) == 1


# --- Retried -------------------------------------------------------------------------------------


def test_receiver_down_then_back_is_retried_then_delivered_once(make, webhook_receiver, local_webhooks):
    make.webhook_endpoint(url=webhook_receiver.url())
    event = _event(make)
    webhook_receiver.stop()
    moment = utcnow()

    assert webhooks.deliver_pending(now=moment).retried == 1

    [delivery] = _deliveries()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert delivery.next_attempt_at == moment + timedelta(seconds=30)  # WEBHOOK_RETRY_BASE_SECONDS
    [attempt] = delivery.attempt_log
    assert attempt.status_code is None
    assert attempt.error == f"Connexion refusée par 127.0.0.1:{webhook_receiver.port}."
    assert delivery.last_error == attempt.error

    webhook_receiver.start()
    assert webhooks.deliver_pending(now=moment + timedelta(seconds=29)).attempted == 0  # not yet due
    assert webhooks.deliver_pending(now=delivery.next_attempt_at).delivered == 1
    assert webhooks.deliver_pending(now=delivery.next_attempt_at + timedelta(days=1)).attempted == 0
    assert webhook_receiver.event_ids() == [event.public_id]
    [delivery] = _deliveries()
    assert (delivery.status, delivery.attempts, len(delivery.attempt_log)) == (DeliveryStatus.DELIVERED, 2, 2)


def test_a_platform_that_does_not_answer_is_tried_once_a_pass_and_others_still_get_theirs(
        make, local_webhooks):
    """A dead platform costs one attempt a pass, not one timeout per delivery, and holds up no one."""
    with running_receiver() as dead, running_receiver() as alive:
        make.webhook_endpoint(url=dead.url())
        make.webhook_endpoint(url=alive.url())
        sent = [_event(make) for _ in range(3)]
        dead.stop()

        result = webhooks.deliver_pending()

        assert (result.delivered, result.retried) == (3, 3)
        assert sorted(alive.event_ids()) == sorted(event.public_id for event in sent)
        errors = [delivery.last_error for delivery in _deliveries()
                  if delivery.status == DeliveryStatus.PENDING]
        assert errors.count(f"Connexion refusée par 127.0.0.1:{dead.port}.") == 1
        assert errors.count(f"Non tentée : 127.0.0.1:{dead.port} n'a pas répondu à un envoi précédent "
                            "de ce passage.") == 2


def test_a_pass_with_a_time_budget_claims_no_batch_after_it_and_says_more_is_due(
        make, webhook_receiver, local_webhooks):
    make.webhook_endpoint(url=webhook_receiver.url())
    for _ in range(webhooks.CLAIM_BATCH + 5):
        _event(make)

    result = webhooks.deliver_pending(budget=0)

    assert (result.delivered, result.more_due) == (webhooks.CLAIM_BATCH, True)
    assert webhooks.deliver_pending().more_due is False  # the last five: the queue is empty


def test_a_500_is_retried_with_its_answer_logged(make, webhook_receiver, local_webhooks):
    make.webhook_endpoint(url=webhook_receiver.url())
    _event(make)
    webhook_receiver.answer(500, body="Erreur interne \xe9".encode("latin-1") + b"!" * 5000)
    moment = utcnow()

    assert webhooks.deliver_pending(now=moment).retried == 1

    [delivery] = _deliveries()
    assert (delivery.status, delivery.last_status_code) == (DeliveryStatus.PENDING, 500)
    assert delivery.next_attempt_at == moment + timedelta(seconds=30)
    [attempt] = delivery.attempt_log
    assert attempt.status_code == 500
    assert attempt.error == "Réponse HTTP 500 : seul un code 2xx vaut livraison."
    # Decoded leniently (the charset says UTF-8, the bytes are Latin-1), cut at 1,000 characters.
    assert attempt.response_excerpt.startswith("Erreur interne \ufffd!!")
    assert len(attempt.response_excerpt) == 1000

    webhook_receiver.answer(204, body=b"")
    assert webhooks.deliver_pending(now=delivery.next_attempt_at).delivered == 1
    [delivery] = _deliveries()
    assert (delivery.status, delivery.last_status_code, delivery.last_error) == (
        DeliveryStatus.DELIVERED, 204, None)


def test_retries_double_then_end_failed_after_the_retry_window(app, make, webhook_receiver,
                                                               local_webhooks, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_RETRY_HOURS", 1)
    make.webhook_endpoint(url=webhook_receiver.url())
    created = utcnow()
    _event(make, now=created)
    webhook_receiver.answer(503)

    tries, moment = [], created
    while (delivery := _deliveries()[0]).status == DeliveryStatus.PENDING:
        assert len(tries) < 20, "never gave up"
        webhooks.deliver_pending(now=moment)
        tries.append(int((moment - created).total_seconds()))
        moment = _deliveries()[0].next_attempt_at

    # 30 s doubling each time; the next try (3,810 s) would fall after the hour: failed.
    assert tries == [0, 30, 90, 210, 450, 930, 1890]
    assert (delivery.status, delivery.attempts, len(delivery.attempt_log)) == (DeliveryStatus.FAILED, 7, 7)
    assert len(webhook_receiver.requests) == 7


def test_a_worker_that_died_after_claiming_leaves_the_delivery_to_the_next(make, webhook_receiver,
                                                                            local_webhooks):
    make.webhook_endpoint(url=webhook_receiver.url())
    _event(make)
    moment = utcnow()
    assert len(webhooks._claim(25, moment)) == 1  # claimed and committed, then the worker died

    assert webhooks.deliver_pending(now=moment).attempted == 0
    assert webhooks.deliver_pending(now=moment + webhooks.CLAIM_LEASE + timedelta(seconds=1)).delivered == 1
    assert len(webhook_receiver.requests) == 1


def test_a_stopping_worker_gives_back_what_it_claimed_and_did_not_send(make, webhook_receiver,
                                                                      local_webhooks):
    make.webhook_endpoint(url=webhook_receiver.url())
    for _ in range(3):
        _event(make)
    stop = threading.Event()
    webhook_receiver.on_request(lambda _request: stop.set())

    assert webhooks.deliver_pending(stop=stop).delivered == 1

    first, *rest = _deliveries()
    assert first.status == DeliveryStatus.DELIVERED
    assert [(d.status, d.attempts) for d in rest] == [(DeliveryStatus.PENDING, 0)] * 2
    assert all(d.next_attempt_at <= utcnow() for d in rest)  # due again, not a lease away
    assert webhooks.deliver_pending().delivered == 2


# --- Refused (SSRF) ------------------------------------------------------------------------------


def _refused_once(make, url: str, receiver) -> str:
    """Deliver one event to `url`: it must be failed at first try with nothing received; its error."""
    make.webhook_endpoint(url=url)
    _event(make)

    assert webhooks.deliver_pending().failed == 1

    [delivery] = _deliveries()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
    assert receiver.requests == []
    return delivery.attempt_log[0].error


def test_plain_http_is_refused_when_https_only(app, make, webhook_receiver, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOKS_ALLOW_LOCAL", True)
    assert app.config["WEBHOOKS_HTTPS_ONLY"] is True

    error = _refused_once(make, webhook_receiver.url(), webhook_receiver)

    assert error == "Adresse refusée : seules les adresses https:// sont autorisées."


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "10.1.2.3", "172.16.5.4", "192.168.0.10",
                                  "169.254.1.1", "100.64.0.1", "0.0.0.0", "[::ffff:127.0.0.1]"])
def test_a_local_address_is_refused(app, make, webhook_receiver, monkeypatch, host):
    monkeypatch.setitem(app.config, "WEBHOOKS_HTTPS_ONLY", False)
    assert app.config["WEBHOOKS_ALLOW_LOCAL"] is False

    error = _refused_once(make, f"http://{host}:{webhook_receiver.port}/webhooks", webhook_receiver)

    assert error.startswith(f"Adresse refusée : {host.strip('[]')} désigne ")
    assert error.endswith(", une adresse locale ou privée.")


def test_a_name_resolving_to_loopback_is_refused(app, make, webhook_receiver, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOKS_HTTPS_ONLY", False)

    error = _refused_once(make, f"http://localhost:{webhook_receiver.port}/webhooks", webhook_receiver)

    assert error.startswith("Adresse refusée : localhost désigne ")
    assert error.endswith(", une adresse locale ou privée.")


@pytest.mark.parametrize("host", ["169.254.169.254", "[fd00:ec2::254]", "100.100.100.200"])
def test_a_metadata_address_is_refused_even_when_local_ones_are_allowed(make, webhook_receiver,
                                                                         local_webhooks, host):
    error = _refused_once(make, f"http://{host}/latest/meta-data/", webhook_receiver)

    assert error == (f"Adresse refusée : {host.strip('[]')} désigne {host.strip('[]')}, "
                     "un service de métadonnées du cloud.")


@pytest.mark.parametrize("url", ["ftp://plateforme.example/hook", "http:///sans-hote",
                                 "http://plateforme.example:99999/hook"])
def test_an_invalid_url_fails_at_once(make, webhook_receiver, local_webhooks, url):
    assert _refused_once(make, url, webhook_receiver) == f"Adresse du webhook invalide : {url}."


def test_a_name_is_connected_to_its_checked_address_and_kept_as_host(make, webhook_receiver,
                                                                      local_webhooks):
    make.webhook_endpoint(url=f"http://localhost:{webhook_receiver.port}/webhooks")
    _event(make)

    assert webhooks.deliver_pending().delivered == 1

    [request] = webhook_receiver.requests
    assert request.headers["Host"] == f"localhost:{webhook_receiver.port}"


def test_https_checks_the_certificate_against_the_host_name_on_the_checked_address(
        app, make, tls_receiver, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOKS_ALLOW_LOCAL", True)  # https only, as in production
    monkeypatch.setattr(webhook_http, "tls_context", lambda: ssl.create_default_context(cafile=TEST_CA))
    make.webhook_endpoint(url=tls_receiver.url(host="localhost"))
    event = _event(make)

    assert webhooks.deliver_pending().delivered == 1

    assert tls_receiver.server_names == ["localhost"]  # SNI: the name, though 127.0.0.1 was dialled
    [request] = tls_receiver.requests
    assert request.headers["Host"] == f"localhost:{tls_receiver.port}"
    assert request.headers["Portail-Event-Id"] == event.public_id


@pytest.mark.parametrize(("host", "trusted"), [("localhost", False), ("127.0.0.1", True)])
def test_an_untrusted_or_mismatched_certificate_is_a_tls_error_retried(app, make, tls_receiver,
                                                                       monkeypatch, host, trusted):
    """The system's authorities do not know the test CA; and the certificate names "localhost" only."""
    monkeypatch.setitem(app.config, "WEBHOOKS_ALLOW_LOCAL", True)
    if trusted:
        monkeypatch.setattr(webhook_http, "tls_context", lambda: ssl.create_default_context(cafile=TEST_CA))
    make.webhook_endpoint(url=tls_receiver.url(host=host))
    _event(make)

    assert webhooks.deliver_pending().retried == 1

    [delivery] = _deliveries()
    assert delivery.attempt_log[0].error.startswith("Erreur TLS : ")
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.attempt_log[0].error
    assert tls_receiver.requests == []


def test_a_redirect_is_not_followed(make, webhook_receiver, local_webhooks):
    make.webhook_endpoint(url=webhook_receiver.url())
    _event(make)
    elsewhere = webhook_receiver.url("/ailleurs")
    webhook_receiver.answer(302, location=elsewhere)

    assert webhooks.deliver_pending().retried == 1

    assert [request.path for request in webhook_receiver.requests] == ["/webhooks"]
    [delivery] = _deliveries()
    [attempt] = delivery.attempt_log
    assert attempt.status_code == 302
    assert attempt.error == f"Redirection non suivie (HTTP 302 vers {elsewhere})."


def test_a_slow_answer_times_out_and_is_retried(app, make, webhook_receiver, local_webhooks, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_TIMEOUT", 1)
    make.webhook_endpoint(url=webhook_receiver.url())
    _event(make)
    webhook_receiver.answer(200, delay=3)

    assert webhooks.deliver_pending().retried == 1

    [delivery] = _deliveries()
    [attempt] = delivery.attempt_log
    assert (attempt.status_code, attempt.error) == (None, "Pas de réponse complète en 1 s.")
    assert len(webhook_receiver.requests) == 1


def test_an_answer_dripped_byte_by_byte_cannot_outlast_the_deadline(app, make, webhook_receiver,
                                                                    local_webhooks, monkeypatch):
    """Each byte comes well within the timeout; the whole answer would not: the deadline cuts it."""
    monkeypatch.setitem(app.config, "WEBHOOK_TIMEOUT", 1)
    make.webhook_endpoint(url=webhook_receiver.url())
    _event(make)
    webhook_receiver.answer(200, body=b"x" * 40, drip_interval=0.1)

    assert webhooks.deliver_pending().retried == 1

    [delivery] = _deliveries()
    assert delivery.attempt_log[0].error == "Pas de réponse complète en 1 s."
    [stream] = webhook_receiver.streams
    webhook_receiver.wait_for(lambda: not _writing(stream))  # the client hung up: writing failed
    assert not stream.complete


@pytest.mark.parametrize(("size", "connections"), [(64 * 1024, 1), (64 * 1024 + 1, 3)])
def test_an_answer_of_64_kib_is_read_whole_a_longer_one_is_cut(make, webhook_receiver, local_webhooks,
                                                              size, connections):
    """Read whole, an answer leaves its connection to the next delivery; one byte over 64 KiB,
    the client stops reading and must hang up, so each delivery needs a connection of its own."""
    make.webhook_endpoint(url=webhook_receiver.url())
    for _ in range(3):
        _event(make)
    webhook_receiver.answer(200, body=b"x" * size)

    assert webhooks.deliver_pending().delivered == 3

    assert len({request.client_port for request in webhook_receiver.requests}) == connections


def test_a_huge_answer_is_not_read_to_its_end(make, webhook_receiver, local_webhooks):
    make.webhook_endpoint(url=webhook_receiver.url())
    _event(make)
    webhook_receiver.answer(200, stream_bytes=200 * 1024 * 1024)

    assert webhooks.deliver_pending().delivered == 1

    [delivery] = _deliveries()
    assert delivery.attempt_log[0].response_excerpt == "x" * 1000
    # The client closed the connection after 64 KiB: the server's writing failed long before the end.
    webhook_receiver.wait_for(lambda: len(webhook_receiver.streams) == 1)
    stream = webhook_receiver.streams[0]
    webhook_receiver.wait_for(lambda: not _writing(stream))
    assert not stream.complete
    assert stream.written < stream.declared


def _writing(stream) -> bool:
    """Still writing: the count keeps moving."""
    before = stream.written
    threading.Event().wait(0.2)
    return stream.written != before


# --- Commands -----------------------------------------------------------------------------------


def test_cli_outbox_send_delivers_webhooks_and_prints_the_counts(make, runner, webhook_receiver,
                                                                 local_webhooks):
    make.webhook_endpoint(url=webhook_receiver.url())
    event = _event(make)

    result = runner.invoke(args=["outbox", "send"])

    assert result.exit_code == 0, result.output
    assert "1 webhook livré, 0 à réessayer plus tard, 0 en échec." in result.output
    assert webhook_receiver.event_ids() == [event.public_id]


def test_outbox_work_drains_a_backlog_of_deliveries_without_waiting(app, make, webhook_receiver,
                                                                   local_webhooks):
    """With an hour between idle passes, 250 deliveries (over 100 a pass) arrive only if a full
    pass starts the next at once."""
    make.webhook_endpoint(url=webhook_receiver.url())
    org = make.organisation()
    events.record_many("credits.consumed", [(org, {"n": n}) for n in range(250)])
    db.session.commit()
    stop = threading.Event()

    def run() -> None:
        with app.app_context():
            worker.work(interval=3600, stop=stop, jobs=(lambda: webhooks.deliver_due(stop=stop),))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        webhook_receiver.wait_for(lambda: len(webhook_receiver.requests) == 250, timeout=60)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert len(set(webhook_receiver.event_ids())) == 250
    assert {d.status for d in _deliveries()} == {DeliveryStatus.DELIVERED}


def test_cli_outbox_work_delivers_webhooks_until_sigterm(app, make, webhook_receiver):
    """`flask outbox work` in its own process (development settings: http to 127.0.0.1 allowed)."""
    make.webhook_endpoint(url=webhook_receiver.url())
    first = _event(make)
    env = dict(os.environ, DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               SECRET_KEY=app.config["SECRET_KEY"], MAIL_WORKER_INTERVAL="1",
               MAIL_OUTBOX_DIR=app.config["MAIL_OUTBOX_DIR"])
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "outbox", "work"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        webhook_receiver.wait_for(lambda: len(webhook_receiver.requests) == 1)
        second = _event(make)  # committed while the worker runs: a later pass takes it
        webhook_receiver.wait_for(lambda: len(webhook_receiver.requests) == 2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert webhook_receiver.event_ids() == [first.public_id, second.public_id]
