"""The email outbox: French templates, delivery to a real SMTP server, retries, .eml files, reminders."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from flask_babel import format_date
from sqlalchemy import func, select

from portal import auth, billing, monthly, outbox, quote_expiry, quote_requests, quotes
from portal.delivery import emails, worker
from portal.exceptions import EmailNotRetryable
from portal.extensions import db
from portal.models import (
    AuditEvent,
    BillingMode,
    Channel,
    ClientRole,
    Invoice,
    InvoiceKind,
    LoginToken,
    OutboxEmail,
    OutboxStatus,
    PaymentProvider,
    utcnow,
)
from portal.money import format_amount
from portal.quotes import LineInput

LINK = re.compile(r"https?://[^\s\"<>]+/lien/([A-Za-z0-9_-]+)")
ROOT = Path(__file__).resolve().parent.parent
SENT_AT = datetime(2026, 3, 2, 9, 0)  # a Monday; a 30-day quote sent then is valid until 1 April


def _rows(template: str | None = None) -> list[OutboxEmail]:
    query = select(OutboxEmail).order_by(OutboxEmail.id)
    if template is not None:
        query = query.where(OutboxEmail.template == template)
    return list(db.session.scalars(query))


def _to(server, address: str) -> list:
    return [received for received in server.messages if received.rcpt_tos == [address]]


def _template_of(received) -> str:
    email_id = int(re.search(r"<outbox-(\d+)\.", received.message["Message-ID"]).group(1))
    return db.session.get(OutboxEmail, email_id).template


# --- Delivery over SMTP -----------------------------------------------------------------------


def test_quote_email_reaches_its_recipient_in_french_with_text_html_and_link(
        app, make, smtp_server, monkeypatch):
    monkeypatch.setitem(app.config, "PORTAL_BASE_URL", "https://devis.vendeur.example")
    world = make.world()
    quote, user = world["quote"], world["users"][ClientRole.GESTIONNAIRE]
    user.full_name = "Zoé Lefèvre"
    db.session.commit()

    result = worker.send_pending()

    assert (result.sent, result.retried, result.failed) == (1, 0, 0)
    [received] = _to(smtp_server, user.email)
    message = received.message
    assert message["Subject"] == f"Nouveau devis {quote.reference} à consulter"
    assert message["To"] == user.email
    assert message["From"] == app.config["MAIL_DEFAULT_SENDER"]
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = received.part("text/plain"), received.part("text/html")
    for part in message.walk():
        if part.get_content_maintype() == "text":
            assert part.get_content_charset() == "utf-8"
    links = []
    for body in (text, html):
        assert "Bonjour Zoé Lefèvre," in body
        assert quote.reference in body
        assert format_amount(quote.total_ttc_cents) in body
        assert format_date(quote.valid_until, "long") in body
        assert "Conditions Générales de Vente" in body
        assert "Voir le devis" in body
        assert f"https://devis.vendeur.example/espace-client/devis/{quote.id}" in body
        links.append(LINK.search(body).group(0))
    assert links[0] == links[1]
    assert links[0].startswith("https://devis.vendeur.example/espace-client/lien/")
    assert f'href="{links[0]}"' in html
    assert '<meta name="viewport"' in html
    email = _rows("quote_sent")[0]
    assert (email.status, email.attempts, email.last_error) == (OutboxStatus.SENT, 1, None)
    assert email.sent_at is not None


def test_links_come_from_the_configuration_never_from_the_request(app, make, monkeypatch):
    monkeypatch.setitem(app.config, "PORTAL_BASE_URL", "https://devis.vendeur.example/")
    monkeypatch.setitem(app.config, "PORTAL_URL_PREFIX", "/clients/")
    world = make.world()
    db.session.commit()
    with app.test_request_context("/", base_url="http://attaquant.example"):
        rendered = emails.render(_rows("quote_sent")[0])
    assert "attaquant" not in rendered.text + rendered.html
    assert f"https://devis.vendeur.example/clients/devis/{world['quote'].id}" in rendered.text
    assert LINK.search(rendered.text).group(0).startswith("https://devis.vendeur.example/clients/lien/")


def test_every_template_is_delivered_in_french_with_both_parts(app, make, smtp_server):
    world = make.world()
    admin, org, users, cgv = world["admin"], world["org"], world["users"], world["terms"]
    manager = users[ClientRole.GESTIONNAIRE]
    quotes.accept(world["quote"], actor=manager, terms_version=cgv, channel=Channel.PORTAL)
    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == world["quote"].id))
    billing.record_payment(invoice, provider=PaymentProvider.STRIPE, provider_reference="pi_mail_1",
                           amount_cents=invoice.total_ttc_cents, currency="EUR")
    refused = make.sent_quote(org, actor=admin, recipient=manager)
    quotes.refuse(refused, actor=manager, terms_version=cgv, channel=Channel.EMAIL_LINK,
                  reason="Budget dépassé")
    cancelled = make.sent_quote(org, actor=admin, recipient=manager)
    quotes.accept(cancelled, actor=manager, terms_version=cgv, channel=Channel.PORTAL)
    billing.issue_credit_note(
        db.session.scalar(select(Invoice).where(Invoice.quote_id == cancelled.id)),
        actor=admin, reason="Erreur de quantité")
    quote_requests.create_request(organisation=org, requester=users[ClientRole.MEMBRE],
                                  items=[(make.product(name="Crédits d'analyse").id, 3)],
                                  message="Livraison à Besançon, merci !")
    monthly_org = make.organisation(billing_mode=BillingMode.MONTHLY)
    monthly_user = make.client_user(monthly_org, ClientRole.RESPONSABLE)
    monthly_quote = make.sent_quote(monthly_org, actor=admin, recipient=monthly_user, now=SENT_AT)
    quotes.accept(monthly_quote, actor=monthly_user, terms_version=cgv, channel=Channel.PORTAL,
                  now=SENT_AT + timedelta(days=1))
    monthly.close_organisations_month([monthly_org.id], "2026-03")
    reminded = make.sent_quote(org, actor=admin, recipient=manager, now=SENT_AT)
    assert quote_expiry.remind_expiring(now=SENT_AT + timedelta(days=23)) == 1
    db.session.commit()

    result = worker.send_pending()

    assert (result.retried, result.failed) == (0, 0)
    assert result.sent == len(_rows()) == len(smtp_server.messages)
    subjects: dict[str, list[str]] = {}
    for received in smtp_server.messages:
        template = _template_of(received)
        subjects.setdefault(template, []).append(received.message["Subject"])
        text, html = received.part("text/plain"), received.part("text/html")
        assert text.strip() and html.strip()
        assert LINK.search(text) or app.config["PORTAL_BASE_URL"] + "/" in text
        assert "merci de ne pas y répondre" in text and "merci de ne pas y répondre" in html
    assert set(subjects) == {"quote_sent", "quote_decided", "invoice_issued", "payment_received",
                             "credit_note_issued", "request_received", "monthly_invoice_issued",
                             "quote_reminder", "monthly_quote_accepted"}
    credit_note = db.session.scalar(select(Invoice).where(Invoice.kind == InvoiceKind.CREDIT_NOTE))
    monthly_invoice = db.session.scalar(select(Invoice).where(Invoice.billing_period == "2026-03"))
    assert f"Devis {world['quote'].reference} accepté par {org.name}" in subjects["quote_decided"]
    assert f"Devis {refused.reference} refusé par {org.name}" in subjects["quote_decided"]
    assert f"Paiement reçu pour la facture {invoice.number}" in subjects["payment_received"]
    assert (f"Avoir {credit_note.number} — annulation de la facture "
            f"{credit_note.credited_invoice.number}") in subjects["credit_note_issued"]
    assert f"Nouvelle demande de devis : {org.name}" in subjects["request_received"]
    assert f"Facture mensuelle {monthly_invoice.number} — mars 2026" in subjects["monthly_invoice_issued"]
    assert (f"Devis {monthly_quote.reference} accepté : facturation le 1 avril 2026"
            in subjects["monthly_quote_accepted"])
    assert (f"Rappel : votre devis {reminded.reference} est valable jusqu'au 1 avril 2026"
            in subjects["quote_reminder"])
    assert all("à régler avant le" in subject for subject in subjects["invoice_issued"])


def test_long_lines_and_accents_survive_the_trip(app, make, smtp_server):
    world = make.world()
    message = "Déjà client, " + "é" * 3000  # one line far over SMTP's 998-byte limit
    quote_requests.create_request(organisation=world["org"], requester=world["users"][ClientRole.MEMBRE],
                                  items=[(make.product().id, 1)], message=message)
    db.session.commit()

    assert worker.send_pending().sent == 2

    [received] = _to(smtp_server, app.config["STAFF_NOTIFICATION_EMAIL"])
    assert max(len(line) for line in received.raw.splitlines()) <= 998
    assert message in received.part("text/plain")
    assert message in received.part("text/html")


# --- Failures, retries, exactly once ----------------------------------------------------------


def test_smtp_outage_is_retried_with_backoff_and_delivered_exactly_once(make, smtp_server):
    make.world()
    db.session.commit()
    smtp_server.stop()
    start = utcnow()

    first = worker.send_pending(now=start)

    assert (first.sent, first.retried, first.failed) == (0, 1, 0)
    [email] = _rows()
    assert (email.status, email.attempts) == (OutboxStatus.PENDING, 1)
    assert "ConnectionRefusedError" in email.last_error
    assert email.next_attempt_at == start + timedelta(seconds=60)
    assert worker.send_pending(now=start + timedelta(seconds=30)).attempted == 0  # backing off
    assert worker.send_pending(now=start + timedelta(seconds=61)).retried == 1
    db.session.refresh(email)
    assert email.next_attempt_at == start + timedelta(seconds=61 + 120)

    smtp_server.start()
    assert worker.send_pending(now=start + timedelta(minutes=10)).sent == 1
    assert worker.send_pending(now=start + timedelta(days=30)).attempted == 0

    assert len(smtp_server.messages) == 1
    db.session.refresh(email)
    assert (email.status, email.attempts) == (OutboxStatus.SENT, 3)


def test_after_max_attempts_an_email_fails_until_staff_requeue_it(app, make, smtp_server, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_MAX_ATTEMPTS", 3)
    world = make.world()
    db.session.commit()
    smtp_server.stop()
    moment = utcnow()
    for _ in range(3):
        worker.send_pending(now=moment)
        moment += timedelta(hours=7)
    [email] = _rows()
    assert (email.status, email.attempts) == (OutboxStatus.FAILED, 3)
    assert email.last_error
    assert worker.send_pending(now=moment + timedelta(days=1)).attempted == 0
    first_token_id = email.context["login_token_id"]

    outbox.retry_failed(email.id, actor=world["admin"])
    db.session.commit()

    db.session.refresh(email)
    assert (email.status, email.attempts) == (OutboxStatus.PENDING, 0)
    assert email.context["login_token_id"] != first_token_id  # a fresh link, the old one revoked
    assert db.session.get(LoginToken, first_token_id).expires_at <= utcnow()
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "email.retried")) == 1
    smtp_server.start()
    assert worker.send_pending().sent == 1
    [received] = smtp_server.messages
    raw = LINK.search(received.part("text/plain")).group(1)
    assert auth.consume_magic_link(raw, quote_id=world["quote"].id) == world["users"][ClientRole.GESTIONNAIRE]
    with pytest.raises(EmailNotRetryable):
        outbox.retry_failed(email.id)


def test_refused_or_invalid_addresses_fail_alone_and_the_others_go(app, make, smtp_server):
    smtp_server.handler.refused.add("inconnu@example.test")
    world = make.world()
    request = quote_requests.create_request(organisation=world["org"],
                                            requester=world["users"][ClientRole.MEMBRE],
                                            items=[(make.product().id, 1)])
    context = {"request_id": request.id}
    for key, address, template in [("refused", "inconnu@example.test", "request_received"),
                                   ("invalid", "pas une adresse", "request_received"),
                                   ("unknown", "equipe@example.test", "no_such_template"),
                                   ("after", "apres@example.test", "request_received")]:
        outbox.enqueue(recipient=address, template=template, context=context, dedupe_key=f"test:{key}")
    db.session.commit()

    result = worker.send_pending()

    assert (result.sent, result.retried, result.failed) == (3, 0, 3)
    rows = {email.dedupe_key: email for email in _rows()}
    refused, invalid, unknown = rows["test:refused"], rows["test:invalid"], rows["test:unknown"]
    assert (refused.status, refused.attempts) == (OutboxStatus.FAILED, 1)
    assert "550" in refused.last_error
    assert invalid.status == OutboxStatus.FAILED and invalid.last_error.startswith("Adresse invalide")
    assert unknown.status == OutboxStatus.FAILED and "no_such_template" in unknown.last_error
    delivered = sorted(address for received in smtp_server.messages for address in received.rcpt_tos)
    assert delivered == sorted([world["users"][ClientRole.GESTIONNAIRE].email,
                                app.config["STAFF_NOTIFICATION_EMAIL"], "apres@example.test"])


def test_a_rolled_back_action_sends_nothing(make, smtp_server):
    make.world()
    db.session.rollback()

    assert worker.send_pending().attempted == 0
    assert smtp_server.messages == []
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 0
    assert db.session.scalar(select(func.count()).select_from(LoginToken)) == 0


def test_a_worker_that_died_after_claiming_leaves_the_email_to_the_next_one(make, smtp_server):
    make.world()
    db.session.commit()
    moment = utcnow()
    assert worker._claim_next(moment) is not None  # claimed and committed, then the worker died

    assert worker.send_pending(now=moment).attempted == 0
    assert worker.send_pending(now=moment + worker.CLAIM_LEASE + timedelta(seconds=1)).sent == 1
    assert len(smtp_server.messages) == 1


def test_an_email_whose_workers_keep_dying_ends_failed(app, make, smtp_server, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_MAX_ATTEMPTS", 2)
    make.world()
    db.session.commit()
    moment = utcnow()
    for _ in range(3):  # three workers claimed it and died before concluding
        assert worker._claim_next(moment) is not None
        moment += worker.CLAIM_LEASE + timedelta(seconds=1)

    assert worker.send_pending(now=moment).failed == 1

    [email] = _rows()
    assert email.status == OutboxStatus.FAILED
    assert email.last_error == "Envoi interrompu à chaque tentative"
    assert smtp_server.messages == []


def test_without_mail_server_messages_become_eml_files(app, make, monkeypatch, tmp_path):
    monkeypatch.setitem(app.config, "MAIL_SERVER", None)
    monkeypatch.setitem(app.config, "MAIL_OUTBOX_DIR", str(tmp_path / "mail"))
    world = make.world()
    db.session.commit()

    assert worker.send_pending().sent == 1

    [path] = list((tmp_path / "mail").iterdir())
    assert path.suffix == ".eml"
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert message["Subject"] == f"Nouveau devis {world['quote'].reference} à consulter"
    assert message["To"] == world["users"][ClientRole.GESTIONNAIRE].email
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert LINK.search(text).group(0) in html
    assert _rows()[0].status == OutboxStatus.SENT


# --- Commands ---------------------------------------------------------------------------------


def test_cli_outbox_send_and_retry(make, runner, smtp_server):
    make.world()
    db.session.commit()

    result = runner.invoke(args=["outbox", "send"])

    assert result.exit_code == 0, result.output
    assert "1 email envoyé, 0 à réessayer plus tard, 0 en échec" in result.output
    assert len(smtp_server.messages) == 1
    refused = runner.invoke(args=["outbox", "retry", str(_rows()[0].id)])
    assert refused.exit_code == 1
    assert "Seul un email en échec peut être remis en file d'envoi." in refused.output


def test_cli_outbox_work_delivers_until_sigterm(app, make, smtp_server):
    make.world()
    db.session.commit()
    env = dict(os.environ, DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               MAIL_SERVER=smtp_server.host, MAIL_PORT=str(smtp_server.port),
               SECRET_KEY=app.config["SECRET_KEY"], MAIL_WORKER_INTERVAL="1")
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "outbox", "work"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: len(smtp_server.messages) == 1)
        world = make.world()  # queued while the worker runs: the next pass takes it
        db.session.commit()
        _wait_for(lambda: len(smtp_server.messages) == 2)
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, stderr.decode()
    assert "Envoi des emails arrêté." in stderr.decode()
    assert _to(smtp_server, world["users"][ClientRole.GESTIONNAIRE].email)


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# --- Reminders --------------------------------------------------------------------------------


def _at(days: int) -> datetime:
    return SENT_AT + timedelta(days=days)


def test_reminders_go_seven_days_and_one_day_before_expiry_once_each(make, smtp_server):
    world = make.world()
    manager = world["users"][ClientRole.GESTIONNAIRE]
    quote = make.sent_quote(world["org"], actor=world["admin"], recipient=manager, now=SENT_AT)
    assert quote.valid_until == date(2026, 4, 1)

    counts = [quote_expiry.remind_expiring(now=_at(day)) for day in (22, 23, 23, 25, 29, 30, 31)]

    assert counts == [0, 1, 0, 0, 1, 0, 0]
    db.session.commit()
    assert {email.dedupe_key for email in _rows("quote_reminder")} == {
        f"quote_reminder:{quote.id}:7", f"quote_reminder:{quote.id}:1"}
    assert quote.reminders_sent == 2
    worker.send_pending()
    reminders = [r for r in _to(smtp_server, manager.email) if _template_of(r) == "quote_reminder"]
    assert len(reminders) == 2
    original = next(r for r in _to(smtp_server, manager.email)
                    if _template_of(r) == "quote_sent" and quote.reference in r.message["Subject"])
    tokens = {LINK.search(r.part("text/plain")).group(1) for r in [*reminders, original]}
    assert len(tokens) == 3  # each reminder carries a fresh link
    for received in reminders:
        assert received.message["Subject"] == (
            f"Rappel : votre devis {quote.reference} est valable jusqu'au 1 avril 2026")
        assert "1 avril 2026 inclus" in received.part("text/html")
    for raw in tokens:
        token = db.session.scalar(select(LoginToken).where(LoginToken.token_hash == auth.hash_token(raw)))
        assert (token.user_id, token.quote_id) == (manager.id, quote.id)


def test_a_quote_sent_inside_the_window_gets_only_the_reminders_still_ahead(make):
    world = make.world()
    manager = world["users"][ClientRole.GESTIONNAIRE]
    draft = quotes.create_draft(organisation=world["org"], actor=world["admin"], recipient=manager,
                                lines=[LineInput(product_id=make.product().id, quantity=1)],
                                validity_days=5)
    short = quotes.send(draft, actor=world["admin"], now=SENT_AT)

    assert [quote_expiry.remind_expiring(now=_at(day)) for day in (0, 1, 3, 4, 5)] == [0, 0, 0, 1, 0]
    assert [email.dedupe_key for email in _rows("quote_reminder")] == [f"quote_reminder:{short.id}:1"]


def test_decided_quotes_and_inactive_recipients_get_no_reminder(make):
    world = make.world()
    manager = world["users"][ClientRole.GESTIONNAIRE]
    decided = make.sent_quote(world["org"], actor=world["admin"], recipient=manager, now=SENT_AT)
    quotes.refuse(decided, actor=manager, terms_version=world["terms"], channel=Channel.PORTAL,
                  now=SENT_AT)
    other_org = make.organisation()
    gone = make.client_user(other_org)
    make.sent_quote(other_org, actor=world["admin"], recipient=gone, now=SENT_AT)
    gone.active = False

    assert quote_expiry.remind_expiring(now=_at(23)) == 0


def test_cli_quotes_remind(make, runner):
    world = make.world()
    make.sent_quote(world["org"], actor=world["admin"],
                    recipient=world["users"][ClientRole.GESTIONNAIRE],
                    now=utcnow() - timedelta(days=24))
    db.session.commit()

    result = runner.invoke(args=["quotes", "remind"])

    assert result.exit_code == 0, result.output
    assert "1 rappel mis en file d'envoi." in result.output
    assert runner.invoke(args=["quotes", "remind"]).output.startswith("0 rappel mis")


# --- Attachments ------------------------------------------------------------------------------


def _pdf_attachments(received) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in received.message.iter_attachments()
            if part.get_content_type() == "application/pdf"}


def test_quote_and_invoice_emails_carry_their_pdf(make, smtp_server):
    world = make.world()
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=world["terms"], channel=Channel.PORTAL)
    invoice = db.session.scalar(select(Invoice))
    db.session.commit()
    worker.send_pending()
    by_template = {_template_of(received): received for received in smtp_server.messages}
    quote_pdfs = _pdf_attachments(by_template["quote_sent"])
    assert list(quote_pdfs) == [f"{world['quote'].reference}.pdf"]
    assert quote_pdfs[f"{world['quote'].reference}.pdf"].startswith(b"%PDF")
    invoice_pdfs = _pdf_attachments(by_template["invoice_issued"])
    db.session.expire_all()
    stored = db.session.get(Invoice, invoice.id)
    assert invoice_pdfs == {f"{invoice.number}.pdf": stored.pdf}  # the frozen file itself
    assert _pdf_attachments(by_template["quote_decided"]) == {}
