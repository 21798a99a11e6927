"""The email outbox: notifications are rows written in the caller's transaction, sent later.

`enqueue` only flushes, like every domain function. Dispatch (`send_pending`, `work`) is a job:
it commits each row on its own, like the monthly close, so call it with a clean session.

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
import os
import smtplib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.charset import QP, Charset
from email.mime.text import MIMEText
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app, render_template
from flask_babel import format_date, format_datetime
from flask_babel import gettext as _
from flask_mail import Connection, Message
from sqlalchemy import Insert, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from . import audit, auth
from .exceptions import EmailNotRetryable
from .extensions import db
from .extensions import mail as flask_mail
from .i18n import lazy_gettext as _l
from .models import (
    Channel,
    Decision,
    DecisionKind,
    Invoice,
    LoginToken,
    OutboxEmail,
    OutboxStatus,
    Payment,
    PaymentProvider,
    Quote,
    QuoteRequest,
    User,
    utcnow,
)

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=15)
MAX_BACKOFF = timedelta(hours=6)
LINK_ID = "login_token_id"
LINK_SEED = "token_seed"


# --- Queueing ---------------------------------------------------------------------------------


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


# --- Rendering --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


_BUILDERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}

CHANNEL_LABELS = {
    Channel.EMAIL_LINK: _l("lien reçu par email"),
    Channel.PORTAL: _l("espace client"),
    Channel.BACK_OFFICE: _l("back-office, pour le compte du client"),
}
PROVIDER_LABELS = {
    PaymentProvider.STRIPE: _l("carte bancaire"),
    PaymentProvider.BANK_TRANSFER: _l("virement bancaire"),
}


def email_builder(*templates: str) -> Callable:
    def register(function: Callable) -> Callable:
        for template in templates:
            _BUILDERS[template] = function
        return function
    return register


def render(email: OutboxEmail) -> RenderedEmail:
    """Subject, plain text and HTML of an outbox row, in French, with absolute links."""
    from .billing import seller_settings  # billing imports this module to enqueue

    builder = _BUILDERS.get(email.template)
    if builder is None:
        raise LookupError(f"unknown email template {email.template!r}")
    values = builder(dict(email.context))
    values["subject"] = str(values["subject"])
    values["seller_name"] = seller_settings().company_name or "Portail Devis"
    values["portal_home"] = portal_url()
    return RenderedEmail(
        subject=values["subject"],
        text=render_template(f"email/{email.template}.txt", **values),
        html=render_template(f"email/{email.template}.html", **values),
    )


def portal_url(*parts: object) -> str:
    """Absolute URL of a client-portal page, built from PORTAL_BASE_URL, never a request's Host."""
    config = current_app.config
    segments = [str(config["PORTAL_BASE_URL"]).rstrip("/")]
    segments += [s for s in str(config["PORTAL_URL_PREFIX"] or "").strip("/").split("/") if s]
    return "/".join(segments + [str(part).strip("/") for part in parts]) + ("" if parts else "/")


def admin_url() -> str:
    """Absolute URL of the back office."""
    return str(current_app.config["PORTAL_BASE_URL"]).rstrip("/") + "/admin/"


def load(model: type, object_id: Any) -> Any:
    """The row an email's context names; LookupError if it is gone."""
    obj = db.session.get(model, object_id)
    if obj is None:
        raise LookupError(f"{model.__name__} {object_id} not found")
    return obj


def _date(value: date | None) -> str:
    return format_date(value, "long") if value else ""


def _amount(cents: int) -> str:
    from .billing import format_amount

    return format_amount(cents)


@email_builder("quote_sent", "quote_reminder")
def _quote_email(context: dict[str, Any]) -> dict[str, Any]:
    quote, user = load(Quote, context["quote_id"]), load(User, context["user_id"])
    token = load(LoginToken, context[LINK_ID])
    values = {"reference": quote.reference, "date": _date(quote.valid_until)}
    days = context.get("days")
    if days is None:
        subject = _("Nouveau devis %(reference)s à consulter", **values)
    else:
        subject = _("Rappel : votre devis %(reference)s est valable jusqu'au %(date)s", **values)
    return {
        "subject": subject, "quote": quote, "user": user, "reminder": days is not None,
        "organisation": quote.organisation.name, "total_ttc": _amount(quote.total_ttc_cents),
        "total_ht": _amount(quote.total_ht_cents), "valid_until": values["date"],
        "link_url": portal_url("lien", auth.raw_token_from_seed(context[LINK_SEED])),
        "link_expires": format_datetime(token.expires_at, "d MMMM y 'à' HH:mm"),
        "quote_url": portal_url("devis", quote.id),
    }


@email_builder("login_link")
def _login_link(context: dict[str, Any]) -> dict[str, Any]:
    user, token = load(User, context["user_id"]), load(LoginToken, context[LINK_ID])
    return {
        "subject": _("Votre lien de connexion à l'espace client"), "user": user,
        "link_url": portal_url("lien", auth.raw_token_from_seed(context[LINK_SEED])),
        "link_expires": format_datetime(token.expires_at, "d MMMM y 'à' HH:mm"),
    }


@email_builder("account_locked")
def _account_locked(context: dict[str, Any]) -> dict[str, Any]:
    user, until = load(User, context["user_id"]), datetime.fromisoformat(context["locked_until"])
    return {
        "subject": _("Votre compte est temporairement verrouillé"), "user": user,
        "locked_until": format_datetime(until, "d MMMM y 'à' HH:mm"),
        "sign_in_url": admin_url() if user.is_staff else portal_url("connexion"),
        "staff": user.is_staff,
    }


@email_builder("quote_decided")
def _quote_decided(context: dict[str, Any]) -> dict[str, Any]:
    quote, decision = load(Quote, context["quote_id"]), load(Decision, context["decision_id"])
    accepted = decision.kind == DecisionKind.ACCEPTED
    values = {"reference": quote.reference, "organisation": quote.organisation.name}
    subject = (_("Devis %(reference)s accepté par %(organisation)s", **values) if accepted
               else _("Devis %(reference)s refusé par %(organisation)s", **values))
    return {
        "subject": subject, "quote": quote, "decision": decision, "accepted": accepted,
        "organisation": values["organisation"], "actor": decision.actor,
        "on_behalf": decision.actor.is_staff, "channel": str(CHANNEL_LABELS[decision.channel]),
        "total_ttc": _amount(quote.total_ttc_cents),
        "decided_at": format_datetime(decision.created_at, "d MMMM y 'à' HH:mm"),
        "admin_url": admin_url(),
    }


def _invoice_values(invoice: Invoice) -> dict[str, Any]:
    return {
        "invoice": invoice, "number": invoice.number, "total_ttc": _amount(invoice.total_ttc_cents),
        "total_ht": _amount(invoice.total_ht_cents), "issue_date": _date(invoice.issue_date),
        "due_date": _date(invoice.due_date), "organisation": invoice.organisation.name,
        "invoice_url": portal_url("factures", invoice.id),
    }


@email_builder("invoice_issued")
def _invoice_issued(context: dict[str, Any]) -> dict[str, Any]:
    values = _invoice_values(load(Invoice, context["invoice_id"]))
    values["subject"] = _("Facture %(number)s : %(amount)s TTC à régler avant le %(due)s",
                          number=values["number"], amount=values["total_ttc"], due=values["due_date"])
    values["quote"] = values["invoice"].quote
    return values


@email_builder("monthly_invoice_issued")
def _monthly_invoice_issued(context: dict[str, Any]) -> dict[str, Any]:
    values = _invoice_values(load(Invoice, context["invoice_id"]))
    period = values["invoice"].billing_period
    values["period"] = (format_date(date(int(period[:4]), int(period[5:7]), 1), "MMMM y")
                        if period else "")
    values["subject"] = _("Facture mensuelle %(number)s — %(period)s",
                          number=values["number"], period=values["period"])
    return values


@email_builder("credit_note_issued")
def _credit_note_issued(context: dict[str, Any]) -> dict[str, Any]:
    values = _invoice_values(load(Invoice, context["invoice_id"]))
    credited = values["invoice"].credited_invoice
    values["credited_number"] = credited.number if credited else ""
    values["subject"] = _("Avoir %(number)s — annulation de la facture %(credited)s",
                          number=values["number"], credited=values["credited_number"])
    return values


@email_builder("payment_received")
def _payment_received(context: dict[str, Any]) -> dict[str, Any]:
    values = _invoice_values(load(Invoice, context["invoice_id"]))
    payment = load(Payment, context["payment_id"])
    quote = values["invoice"].quote
    values.update(
        subject=_("Paiement reçu pour la facture %(number)s", number=values["number"]),
        amount=_amount(payment.amount_cents), received_on=format_date(payment.received_at, "long"),
        method=str(PROVIDER_LABELS.get(payment.provider, payment.provider.value)),
        credits=quote.total_credits if quote is not None else 0,
    )
    return values


@email_builder("request_received")
def _request_received(context: dict[str, Any]) -> dict[str, Any]:
    request = load(QuoteRequest, context["request_id"])
    return {
        "subject": _("Nouvelle demande de devis : %(organisation)s",
                     organisation=request.organisation.name),
        "request": request, "organisation": request.organisation.name,
        "requester": request.requester, "lines": request.lines,
        "created_at": format_datetime(request.created_at, "d MMMM y 'à' HH:mm"),
        "admin_url": admin_url(),
    }


# --- Transports -------------------------------------------------------------------------------


class DeliveryError(Exception):
    """A message was not delivered. `permanent`: retrying cannot help (bad address, 5xx refusal);
    `stop_pass`: the server or the directory is unusable, so the rest of the pass waits."""

    def __init__(self, reason: str, *, permanent: bool = False, stop_pass: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent
        self.stop_pass = stop_pass


class _SmtpConnection(Connection):
    """Flask-Mail's connection with a socket timeout, so a stuck server cannot outlive a claim."""

    def configure_host(self) -> smtplib.SMTP:
        timeout = current_app.config["MAIL_TIMEOUT"]
        smtp_class = smtplib.SMTP_SSL if self.mail.use_ssl else smtplib.SMTP
        host = smtp_class(self.mail.server, self.mail.port, timeout=timeout)
        host.set_debuglevel(int(self.mail.debug))
        if self.mail.use_tls:
            host.starttls()
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host


class _SmtpTransport:
    """One SMTP connection per pass, opened on the first message; settings read from the config."""

    def __init__(self) -> None:
        self.connection: _SmtpConnection | None = None

    def deliver(self, message: Message, email: OutboxEmail) -> None:
        if self.connection is None:
            state = flask_mail.init_mail(current_app.config, current_app.debug, testing=False)
            connection = _SmtpConnection(state)
            try:
                connection.host = connection.configure_host()
            except (OSError, smtplib.SMTPException) as error:
                raise DeliveryError(_describe(error), stop_pass=True) from error
            self.connection = connection
        try:
            self.connection.send(message)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _message in error.recipients.values()]
            raise DeliveryError(_describe(error), permanent=all(c >= 500 for c in codes)) from error
        except smtplib.SMTPDataError as error:
            raise DeliveryError(_describe(error), permanent=error.smtp_code >= 500) from error
        except (OSError, smtplib.SMTPException) as error:
            # Disconnection, sender refused, authentication…: a server or configuration matter.
            self.close()
            raise DeliveryError(_describe(error), stop_pass=True) from error

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None or connection.host is None:
            return
        try:
            connection.host.quit()
        except (OSError, smtplib.SMTPException):
            connection.host.close()


class _FileTransport:
    """The embedded default: each message becomes an .eml file (rewritten, not doubled, on retry)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def deliver(self, message: Message, email: OutboxEmail) -> None:
        path = self.directory / f"{email.created_at:%Y%m%d-%H%M%S}-{email.id:06d}.eml"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            partial.write_bytes(message.as_bytes())
            os.replace(partial, path)
        except OSError as error:
            raise DeliveryError(_describe(error), stop_pass=True) from error

    def close(self) -> None:
        pass


def _transport() -> _SmtpTransport | _FileTransport:
    if current_app.config.get("MAIL_SERVER"):
        return _SmtpTransport()
    return _FileTransport(current_app.config["MAIL_OUTBOX_DIR"])


def _describe(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{address} : {code} {_text(reply)}"
                         for address, (code, reply) in error.recipients.items())
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {_text(error.smtp_error)}"
    return f"{type(error).__name__}: {error}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# Flask-Mail sends UTF-8 bodies as 8bit, where one line over 998 bytes (a client's long message
# pasted into a request) makes SMTP servers refuse the whole email (RFC 5321 §4.5.3.1.6).
# Quoted-printable keeps every line short and the accents intact.
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


class _Message(Message):
    def _mimetext(self, text: str | None, subtype: str = "plain") -> MIMEText:
        return MIMEText(text or "", _subtype=subtype, _charset=_UTF8_QP)


def build_message(email: OutboxEmail, rendered: RenderedEmail) -> Message:
    """The Flask-Mail message of an outbox row (text and HTML alternatives, stable Message-ID)."""
    try:
        validate_email(email.recipient, check_deliverability=False, test_environment=True)
    except EmailNotValidError as error:
        raise DeliveryError(f"Adresse invalide : {error}", permanent=True) from error
    message = _Message(subject=rendered.subject, recipients=[email.recipient], body=rendered.text,
                      html=rendered.html, extra_headers={"Auto-Submitted": "auto-generated"})
    for filename, data in attachments(email):
        message.attach(filename, "application/pdf", data)
    domain = parseaddr(str(message.sender))[1].rpartition("@")[2] or "portail-devis.invalid"
    message.msgId = f"<outbox-{email.id}.{email.created_at:%Y%m%d%H%M%S}@{domain}>"
    return message


QUOTE_PDF_TEMPLATES = {"quote_sent", "quote_reminder"}
INVOICE_PDF_TEMPLATES = {"invoice_issued", "monthly_invoice_issued", "credit_note_issued"}


def attachments(email: OutboxEmail) -> list[tuple[str, bytes]]:
    """The PDFs an email carries: the quote for quote emails, the invoice for invoice emails.

    An invoice's PDF is its stored, frozen file (rendered and stored at first need)."""
    from . import documents  # documents imports quotes, which imports this module

    if email.template in QUOTE_PDF_TEMPLATES:
        quote = load(Quote, email.context["quote_id"])
        return [(f"{quote.reference}.pdf", documents.quote_pdf(quote))]
    if email.template in INVOICE_PDF_TEMPLATES:
        invoice = load(Invoice, email.context["invoice_id"])
        return [(f"{invoice.number}.pdf", documents.invoice_pdf(invoice))]
    return []


# --- Dispatch ---------------------------------------------------------------------------------


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
    transport = _transport()
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
         stop: threading.Event | None = None) -> None:
    """Dispatch passes until `stop` is set; a failing pass is logged, never fatal."""
    stop = stop or threading.Event()
    interval = current_app.config["MAIL_WORKER_INTERVAL"] if interval is None else interval
    while not stop.is_set():
        busy = False
        try:
            busy = send_pending(limit=limit, stop=stop).attempted >= limit
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


def _deliver_one(email_id: int, transport: _SmtpTransport | _FileTransport,
                 now: datetime) -> tuple[str, bool]:
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
