"""What an outbox row says: its subject, text and HTML from templates/email/, in its recipient's
language, with absolute links and its PDF (the quote in that language, or the invoice's stored
file, French), as a Flask-Mail message.

One builder per template turns the row's context (ids, never objects) into the template's values.
The language is the one chosen by the user the email is addressed to (`User.language`, found by
the address when the email is sent), French for anyone else (a shared mailbox, an invoice contact
without an account).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from email.charset import QP, Charset
from email.mime.text import MIMEText
from email.utils import parseaddr
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app, render_template
from flask_babel import force_locale, format_date, format_decimal, format_time
from flask_babel import gettext as _
from flask_mail import Message
from sqlalchemy import select

from .. import auth, documents
from ..dates import paris_today, period_bounds
from ..extensions import db
from ..i18n import DEFAULT_LANGUAGE, supported_language
from ..i18n import lazy_gettext as _l
from ..labels import label
from ..models import (
    Channel,
    Decision,
    DecisionKind,
    Invoice,
    LoginToken,
    OutboxEmail,
    Payment,
    PaymentAnomaly,
    PaymentAnomalyKind,
    PaymentProvider,
    Quote,
    QuoteRequest,
    User,
)
from ..money import format_amount_for_reader
from ..outbox import (
    INVITE_SEED,
    INVITE_TEMPLATE,
    INVITE_TOKEN_ID,
    LINK_ID,
    LINK_SEED,
    MONTHLY_ACCEPTED_TEMPLATE,
    ON_BEHALF_TEMPLATE,
    load,
)
from ..seller import seller_settings
from .transports import DeliveryError


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    language: str = DEFAULT_LANGUAGE


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
ANOMALY_LABELS = {
    PaymentAnomalyKind.AMOUNT_MISMATCH: _l("le montant ou la devise diffère de la facture"),
    PaymentAnomalyKind.UNKNOWN_INVOICE: _l("la facture indiquée n'existe pas"),
    PaymentAnomalyKind.WRONG_INVOICE: _l("le paiement a été créé pour une autre facture"),
    PaymentAnomalyKind.UNKNOWN_INTENT: _l("le paiement n'a pas été créé par le portail"),
    PaymentAnomalyKind.NOT_PAYABLE: _l("la facture était déjà réglée ou annulée"),
}


def email_builder(*templates: str) -> Callable:
    def register(function: Callable) -> Callable:
        for template in templates:
            _BUILDERS[template] = function
        return function
    return register


def render(email: OutboxEmail) -> RenderedEmail:
    """Subject, plain text and HTML of an outbox row, in its recipient's language (dates and
    amounts too), with absolute links."""
    builder = _BUILDERS.get(email.template)
    if builder is None:
        raise LookupError(f"unknown email template {email.template!r}")
    language = recipient_language(email)
    with force_locale(language):
        values = builder(dict(email.context))
        values["subject"] = str(values["subject"])
        values["seller_name"] = seller_settings().company_name or "Portail Devis"
        values["portal_home"] = portal_url()
        return RenderedEmail(
            subject=values["subject"],
            text=render_template(f"email/{email.template}.txt", **values),
            html=render_template(f"email/{email.template}.html", **values),
            language=language,
        )


def recipient_language(email: OutboxEmail) -> str:
    """The language chosen by the user the email goes to, French if none (or no such user)."""
    chosen = db.session.scalar(select(User.language).where(User.email == email.recipient))
    return supported_language(chosen) or DEFAULT_LANGUAGE


def portal_url(*parts: object) -> str:
    """Absolute URL of a client-portal page, built from PORTAL_BASE_URL, never a request's Host."""
    config = current_app.config
    segments = [str(config["PORTAL_BASE_URL"]).rstrip("/")]
    segments += [s for s in str(config["PORTAL_URL_PREFIX"] or "").strip("/").split("/") if s]
    return "/".join(segments + [str(part).strip("/") for part in parts]) + ("" if parts else "/")


def admin_url(*parts: object) -> str:
    """Absolute URL of a back-office page (its home without `parts`), built from PORTAL_BASE_URL."""
    base = str(current_app.config["PORTAL_BASE_URL"]).rstrip("/") + "/admin/"
    return base + "/".join(str(part).strip("/") for part in parts)


def admin_invoice_url(invoice_id: int) -> str:
    """Absolute URL of an invoice's back-office page (Flask-Admin's details view)."""
    return admin_url("factures", f"details/?id={invoice_id}")


def _date(value: date | None) -> str:
    return format_date(value, "long") if value else ""


def _moment(value: datetime) -> str:
    """A UTC datetime as the reader says it, in Paris time: « 12 mars 2026 à 14:05 »."""
    return _("%(date)s à %(time)s", date=format_date(value, "long"), time=format_time(value, "HH:mm"))


def _link_expires(token: LoginToken) -> str:
    return _moment(token.expires_at)


# --- Builders, one per template ---------------------------------------------------------------


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
        "organisation": quote.organisation.name, "total_ttc": format_amount_for_reader(quote.total_ttc_cents),
        "total_ht": format_amount_for_reader(quote.total_ht_cents), "valid_until": values["date"],
        "link_url": portal_url("lien", auth.raw_token_from_seed(context[LINK_SEED])),
        "link_expires": _link_expires(token),
        "quote_url": portal_url("devis", quote.id),
    }


@email_builder("login_link")
def _login_link(context: dict[str, Any]) -> dict[str, Any]:
    user, token = load(User, context["user_id"]), load(LoginToken, context[LINK_ID])
    return {
        "subject": _("Votre lien de connexion à l'espace client"), "user": user,
        "link_url": portal_url("lien", auth.raw_token_from_seed(context[LINK_SEED])),
        "link_expires": _link_expires(token),
    }


@email_builder("account_locked")
def _account_locked(context: dict[str, Any]) -> dict[str, Any]:
    user, until = load(User, context["user_id"]), datetime.fromisoformat(context["locked_until"])
    return {
        "subject": _("Votre compte est temporairement verrouillé"), "user": user,
        "locked_until": _moment(until),
        "sign_in_url": admin_url() if user.is_staff else portal_url("connexion"),
        "staff": user.is_staff,
    }


@email_builder(INVITE_TEMPLATE)
def _invitation_email(context: dict[str, Any]) -> dict[str, Any]:
    user = load(User, context["user_id"])
    token = load(LoginToken, context[INVITE_TOKEN_ID])
    organisation = user.organisation.name if user.organisation else ""
    return {
        "subject": _("Votre accès à l'espace client de %(organisation)s", organisation=organisation),
        "user": user, "organisation": organisation, "role": label(user.client_role),
        "invited_by": context.get("invited_by") or "",
        "link_url": portal_url("invitation", auth.raw_token_from_seed(context[INVITE_SEED])),
        "link_expires": _link_expires(token),
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
        "total_ttc": format_amount_for_reader(quote.total_ttc_cents),
        "decided_at": _moment(decision.created_at),
        "admin_url": admin_url("devis", quote.id),
    }


def _invoice_values(invoice: Invoice) -> dict[str, Any]:
    return {
        "invoice": invoice, "number": invoice.number,
        "total_ttc": format_amount_for_reader(invoice.total_ttc_cents),
        "total_ht": format_amount_for_reader(invoice.total_ht_cents), "issue_date": _date(invoice.issue_date),
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
    values["period"] = format_date(period_bounds(period)[0], "MMMM y") if period else ""
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
        amount=format_amount_for_reader(payment.amount_cents),
        received_on=format_date(payment.received_at, "long"),
        method=str(PROVIDER_LABELS.get(payment.provider, payment.provider.value)),
        credits=quote.total_credits if quote is not None else 0,
    )
    return values


@email_builder("payment_flagged")
def _payment_flagged(context: dict[str, Any]) -> dict[str, Any]:
    anomaly = load(PaymentAnomaly, context["anomaly_id"])
    number = anomaly.invoice.number if anomaly.invoice else "—"
    return {
        "subject": _("Paiement par carte à vérifier (facture %(number)s)", number=number),
        "number": number, "intent": anomaly.intent_id, "reason": str(ANOMALY_LABELS[anomaly.kind]),
        "amount": format_amount_for_reader(anomaly.amount_cents or 0) if anomaly.currency == "EUR"
        else f"{anomaly.amount_cents} {anomaly.currency}",
        "invoice_linked": anomaly.invoice_id is not None,
        "admin_url": admin_invoice_url(anomaly.invoice_id) if anomaly.invoice_id else admin_url(),
    }


@email_builder("request_received")
def _request_received(context: dict[str, Any]) -> dict[str, Any]:
    request = load(QuoteRequest, context["request_id"])
    return {
        "subject": _("Nouvelle demande de devis : %(organisation)s",
                     organisation=request.organisation.name),
        "request": request, "organisation": request.organisation.name,
        "requester": request.requester, "lines": request.lines,
        "created_at": _moment(request.created_at),
        "admin_url": admin_url("demandes", request.id),
    }


def _request_values(request: QuoteRequest) -> dict[str, Any]:
    return {
        "request": request, "user": request.requester, "organisation": request.organisation.name,
        "lines": request.lines, "created_on": _date(paris_today(request.created_at)),
        "requests_url": portal_url("demandes"),
    }


@email_builder("request_answered")
def _request_answered(context: dict[str, Any]) -> dict[str, Any]:
    values = _request_values(load(QuoteRequest, context["request_id"]))
    quote = load(Quote, context["quote_id"])
    values.update(subject=_("Votre demande de devis : devis %(reference)s envoyé", reference=quote.reference),
                  quote=quote, recipient=quote.recipient, quote_url=portal_url("devis", quote.id))
    return values


@email_builder("request_declined")
def _request_declined(context: dict[str, Any]) -> dict[str, Any]:
    values = _request_values(load(QuoteRequest, context["request_id"]))
    values["subject"] = _("Votre demande de devis du %(date)s a été déclinée", date=values["created_on"])
    return values


@email_builder(MONTHLY_ACCEPTED_TEMPLATE)
def _monthly_quote_accepted(context: dict[str, Any]) -> dict[str, Any]:
    quote = load(Quote, context["quote_id"])
    first_day, invoice_day = period_bounds(quote.billing_period)
    return {
        "subject": _("Devis %(reference)s accepté : facturation le %(date)s",
                     reference=quote.reference, date=_date(invoice_day)),
        "quote": quote, "organisation": quote.organisation.name,
        "credits": quote.total_credits, "credits_text": format_decimal(quote.total_credits),
        "total_ht": format_amount_for_reader(quote.total_ht_cents),
        "total_ttc": format_amount_for_reader(quote.total_ttc_cents),
        "period": format_date(first_day, "MMMM y"), "invoice_date": _date(invoice_day),
        "quote_url": portal_url("devis", quote.id), "invoices_url": portal_url("factures"),
        "credits_url": portal_url("credits"),
    }


@email_builder(ON_BEHALF_TEMPLATE)
def _decided_on_behalf(context: dict[str, Any]) -> dict[str, Any]:
    quote, decision = load(Quote, context["quote_id"]), load(Decision, context["decision_id"])
    accepted = decision.kind == DecisionKind.ACCEPTED
    subject = (_("Devis %(reference)s validé pour votre compte par l'équipe du vendeur",
                 reference=quote.reference) if accepted
               else _("Devis %(reference)s refusé pour votre compte par l'équipe du vendeur",
                      reference=quote.reference))
    granted_by = decision.mandate_granted_by
    return {
        "subject": subject, "quote": quote, "decision": decision, "accepted": accepted,
        "organisation": quote.organisation.name, "actor": decision.actor.full_name,
        "total_ttc": format_amount_for_reader(quote.total_ttc_cents),
        "decided_at": _moment(decision.created_at),
        "granted_by": granted_by.full_name if granted_by else "",
        "granted_on": _date(decision.mandate_granted_at),
        "note": decision.on_behalf_note or "", "reason": decision.reason or "",
        "quote_url": portal_url("devis", quote.id), "settings_url": portal_url("parametres"),
    }


# --- The message ------------------------------------------------------------------------------


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
                      html=rendered.html, extra_headers={"Auto-Submitted": "auto-generated",
                                                         "Content-Language": rendered.language})
    for filename, data in attachments(email, language=rendered.language):
        message.attach(filename, "application/pdf", data)
    domain = parseaddr(str(message.sender))[1].rpartition("@")[2] or "portail-devis.invalid"
    message.msgId = f"<outbox-{email.id}.{email.created_at:%Y%m%d%H%M%S}@{domain}>"
    return message


QUOTE_PDF_TEMPLATES = {"quote_sent", "quote_reminder"}
INVOICE_PDF_TEMPLATES = {"invoice_issued", "monthly_invoice_issued", "credit_note_issued"}


def attachments(email: OutboxEmail, *, language: str = DEFAULT_LANGUAGE) -> list[tuple[str, bytes]]:
    """The PDFs an email carries: the quote for quote emails (in `language`, the email's), the
    invoice for invoice emails.

    An invoice's PDF is its stored, frozen file (rendered and stored at first need), in French
    whatever the email's language: French is the legal language of the invoice."""
    if email.template in QUOTE_PDF_TEMPLATES:
        quote = load(Quote, email.context["quote_id"])
        with force_locale(language):
            return [(f"{quote.reference}.pdf", documents.quote_pdf(quote))]
    if email.template in INVOICE_PDF_TEMPLATES:
        invoice = load(Invoice, email.context["invoice_id"])
        return [(f"{invoice.number}.pdf", documents.invoice_pdf(invoice))]
    return []
