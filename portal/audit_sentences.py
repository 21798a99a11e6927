"""Audit events told as sentences: « Devis DV-2026-00005 refusé par Marie Martin, motif : trop cher ».

The one place of their wording: a short name per action (the journal's filter) and a sentence per
action recorded anywhere in `portal/` (tests/test_audit_sentences.py finds every action written and
fails on one without a wording). A sentence reads the event's own columns and details, its actor
(loaded with it), and the quote references, invoice numbers and webhook URLs the page's events
name, fetched once for the whole page (`describe_all`: at most three queries, whatever its length).
An action without a wording, or details missing what its wording needs, reads as the action's code.

One module on purpose, longer than 450 lines: it is the catalogue of the journal's sentences, a few
lines for each action, kept beside the one loader that fetches what they name; split by theme, each
part would need that loader and the registry all the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from flask_babel import format_date, ngettext
from sqlalchemy import select

from .dates import period_bounds
from .extensions import db
from .i18n import gettext as _
from .i18n import lazy_gettext as _l
from .labels import french_date, label
from .models import AuditEvent, ClientRole, Invoice, LifecycleStatus, Quote, StaffRole, WebhookEndpoint
from .money import format_amount

ACTION_LABELS = {
    "quote.created": _l("Devis créé"), "quote.updated": _l("Devis modifié"),
    "quote.sent": _l("Devis envoyé"), "quote.revised": _l("Révision de devis"),
    "quote.superseded": _l("Devis remplacé"), "quote.cancelled": _l("Devis annulé"),
    "quote.expired": _l("Devis expiré"), "quote.accepted": _l("Devis validé"),
    "quote.refused": _l("Devis refusé"), "request.created": _l("Demande de devis reçue"),
    "request.answered": _l("Demande de devis traitée"), "request.declined": _l("Demande de devis déclinée"),
    "invoice.issued": _l("Facture émise"), "invoice.paid": _l("Facture payée"),
    "invoice.credited": _l("Facture annulée par avoir"), "credits.granted": _l("Crédits attribués"),
    "invoice.lifecycle": _l("Statut de cycle de vie"),
    "credits.consumption": _l("Crédits consommés"), "credits.adjustment": _l("Crédits ajustés"),
    "credits.reversal": _l("Crédits repris par avoir"),
    "api_key.created": _l("Clé d'API créée"), "api_key.revoked": _l("Clé d'API révoquée"),
    "organisation.mandate": _l("Autorisation de validation modifiée"),
    "terms.created": _l("CGV rédigées"), "terms.updated": _l("Brouillon de CGV modifié"),
    "terms.published": _l("CGV publiées"), "product.created": _l("Produit créé"),
    "product.updated": _l("Produit modifié"), "user.invited": _l("Utilisateur invité"),
    "email.retried": _l("Email renvoyé"), "seller.updated": _l("Paramètres vendeur modifiés"),
    "staff.created": _l("Compte de l'équipe créé"), "staff.role_changed": _l("Rôle modifié"),
    "user.deactivated": _l("Compte désactivé"), "user.reactivated": _l("Compte réactivé"),
    "user.signed_out_everywhere": _l("Déconnexion de tous les appareils"),
    "user.password_changed": _l("Mot de passe changé"), "user.password_set": _l("Mot de passe défini"),
    "webhook_endpoint.created": _l("Point de réception créé"),
    "webhook_endpoint.updated": _l("Point de réception modifié"),
    "webhook_endpoint.secret_rotated": _l("Secret de webhook renouvelé"),
    "webhook_endpoint.test_sent": _l("Événement de test envoyé"),
    "webhook_endpoint.failed_resent": _l("Envois en échec renvoyés"),
    "webhook_delivery.resent": _l("Envoi de webhook renvoyé"),
    "payment.flagged": _l("Paiement à vérifier"), "payment.failed": _l("Paiement par carte refusé"),
    "monthly_close.queued": _l("Clôture mensuelle demandée"),
}
# The same words as the staff's email about a flagged payment (portal/delivery/emails.py).
ANOMALY_REASONS = {
    "amount_mismatch": _l("le montant ou la devise diffère de la facture"),
    "unknown_invoice": _l("la facture indiquée n'existe pas"),
    "wrong_invoice": _l("le paiement a été créé pour une autre facture"),
    "unknown_intent": _l("le paiement n'a pas été créé par le portail"),
    "not_payable": _l("la facture était déjà réglée ou annulée"),
}


class Names(NamedTuple):
    """What a page's events name, by id: quote references, invoice numbers, webhook URLs."""

    quotes: dict[int, str]
    invoices: dict[int, str]
    endpoints: dict[int, str]


class Facts:
    """One event as its wording reads it; a missing detail raises KeyError (the code is shown)."""

    def __init__(self, event: AuditEvent, names: Names) -> None:
        self.event, self.names = event, names
        self.details = event.details if isinstance(event.details, dict) else {}

    def __getitem__(self, key: str) -> Any:
        value = self.details[key]
        if value is None or value == "":
            raise KeyError(key)
        return value

    def get(self, key: str) -> Any:
        return self.details.get(key) or None

    @property
    def actor(self) -> str:
        actor = self.event.actor
        return (actor.full_name or actor.email) if actor else _("le système")

    def quote(self, quote_id: int | None = None) -> str:
        """The quote's reference (« DV-2026-00005 », « brouillon n° 13 »)."""
        quote_id = quote_id or self.event.object_id
        return self.names.quotes.get(quote_id) or _("n° %(id)s", id=quote_id)

    def invoice(self) -> str:
        return self.get("number") or self.names.invoices.get(self.event.object_id) or _(
            "n° %(id)s", id=self.event.object_id)

    def endpoint(self, endpoint_id: int | None = None) -> str:
        return self.get("url") or self.names.endpoints.get(endpoint_id or self.event.object_id) or _(
            "n° %(id)s", id=endpoint_id or self.event.object_id)


def credits_count(number: int) -> str:
    """1 234 (a narrow no-break space between thousands), without its sign."""
    return f"{abs(number):,}".replace(",", "\u202f")


def _period(period: str) -> str:
    return format_date(period_bounds(period)[0], "MMMM y")


def _with_reason(sentence: str, facts: Facts) -> str:
    reason = facts.get("reason")
    return _("%(sentence)s, motif : %(reason)s", sentence=sentence, reason=reason) if reason else sentence


def _api_key(facts: Facts) -> str:
    """« (clé pdk_ab12…, réf. analyse-1) »: the API key and the caller's reference, when given."""
    parts = [_("clé %(prefix)s…", prefix=facts["api_key"])]
    if facts.get("external_reference"):
        parts.append(_("réf. %(reference)s", reference=facts["external_reference"]))
    return ", ".join(parts)


def _role(value: str) -> str:
    for roles in (ClientRole, StaffRole):
        if value in {role.value for role in roles}:
            return label(roles(value)).lower()
    return value


WORDINGS: dict[str, Callable[[Facts], str]] = {}


def wording(*actions: str) -> Callable:
    """Register the sentence of `actions`."""
    def register(build: Callable[[Facts], str]) -> Callable[[Facts], str]:
        WORDINGS.update(dict.fromkeys(actions, build))
        return build
    return register


# --- Sentences -------------------------------------------------------------------------------

# Sentences of the event's own words: each %(name)s is one of PLAIN_VALUES, else the detail `name`.
PLAIN_SENTENCES = {
    "quote.created": _l("Devis %(quote)s créé par %(actor)s"),
    "quote.updated": _l("Devis %(quote)s modifié par %(actor)s"),
    "quote.cancelled": _l("Devis %(quote)s annulé par %(actor)s"),
    "quote.superseded": _l("Devis %(quote)s remplacé par sa révision, envoyée par %(actor)s"),
    "quote.expired": _l("Devis %(quote)s expiré sans décision du client"),
    "request.created": _l("Demande de devis n° %(id)s reçue de %(actor)s"),
    "user.deactivated": _l("Compte %(email)s désactivé par %(actor)s"),
    "user.reactivated": _l("Compte %(email)s réactivé par %(actor)s"),
    "user.signed_out_everywhere": _l("%(actor)s a fermé ses sessions sur tous les appareils"),
    "user.password_changed": _l("%(actor)s a changé son mot de passe"),
    "user.password_set": _l("%(actor)s a choisi son mot de passe"),
    "terms.created": _l("CGV %(version)s rédigées par %(actor)s"),
    "terms.updated": _l("Brouillon des CGV %(version)s modifié par %(actor)s"),
    "terms.published": _l("CGV %(version)s publiées par %(actor)s"),
    "email.retried": _l("Email à %(recipient)s remis en file d'envoi par %(actor)s"),
    "api_key.created": _l("Clé d'API « %(name)s » (%(prefix)s…) créée par %(actor)s"),
    "api_key.revoked": _l("Clé d'API « %(name)s » (%(prefix)s…) révoquée par %(actor)s"),
    "quote.revised": _l("Révision %(quote)s du devis %(revises)s ouverte par %(actor)s"),
    "user.invited": _l("%(email)s invité comme %(role)s par %(actor)s"),
    "staff.created": _l("Compte de l'équipe %(email)s (%(role)s) créé par %(actor)s"),
    "staff.role_changed": _l("Rôle de %(email)s changé de %(previous)s en %(role)s par %(actor)s"),
    "product.created": _l("Produit %(sku)s créé par %(actor)s (%(price)s HT)"),
    "product.updated": _l("Produit %(sku)s modifié par %(actor)s (%(price)s HT)"),
    "monthly_close.queued": _l("Clôture mensuelle de %(period)s demandée par %(actor)s"),
}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
PLAIN_VALUES: dict[str, Callable[[Facts], Any]] = {
    "actor": lambda facts: facts.actor, "quote": lambda facts: facts.quote(),
    "id": lambda facts: facts.event.object_id, "role": lambda facts: _role(facts["role"]),
    "previous": lambda facts: _role(facts["previous"]),
    "price": lambda facts: format_amount(facts["unit_price_cents"]),
    "period": lambda facts: _period(facts["period"]),
}


@wording(*PLAIN_SENTENCES)
def _plain_sentence(facts: Facts) -> str:
    sentence = str(PLAIN_SENTENCES[facts.event.action])
    return sentence % {name: PLAIN_VALUES[name](facts) if name in PLAIN_VALUES else facts[name]
                       for name in PLACEHOLDER.findall(sentence)}


@wording("quote.sent")
def _quote_sent(facts: Facts) -> str:
    return _("Devis %(quote)s envoyé par %(actor)s (%(total)s TTC)", actor=facts.actor,
             quote=facts.get("number") or facts.quote(), total=format_amount(facts["total_ttc_cents"]))


def _decider(facts: Facts) -> str:
    if not facts.get("on_behalf"):
        return facts.actor
    return (_("%(actor)s pour le compte du client (« %(note)s »)", actor=facts.actor, note=facts["note"])
            if facts.get("note") else _("%(actor)s pour le compte du client", actor=facts.actor))


@wording("quote.accepted")
def _quote_accepted(facts: Facts) -> str:
    return _("Devis %(quote)s validé par %(actor)s (CGV %(terms)s)", quote=facts.quote(),
             actor=_decider(facts), terms=facts["terms"])


@wording("quote.refused")
def _quote_refused(facts: Facts) -> str:
    return _with_reason(_("Devis %(quote)s refusé par %(actor)s", quote=facts.quote(), actor=_decider(facts)),
                        facts)


@wording("request.answered")
def _request_answered(facts: Facts) -> str:
    return _("Demande de devis n° %(id)s traitée par %(actor)s : devis %(quote)s envoyé",
             id=facts.event.object_id, actor=facts.actor, quote=facts.quote(facts["quote_id"]))


@wording("request.declined")
def _request_declined(facts: Facts) -> str:
    return _with_reason(_("Demande de devis n° %(id)s déclinée par %(actor)s", id=facts.event.object_id,
                          actor=facts.actor), facts)


@wording("organisation.mandate")
def _mandate(facts: Facts) -> str:
    if facts.get("allowed"):
        return _("Validation pour le compte du client autorisée par %(actor)s", actor=facts.actor)
    return _("Validation pour le compte du client retirée par %(actor)s", actor=facts.actor)


# --- Invoices, payments, credits --------------------------------------------------------------


@wording("invoice.issued")
def _invoice_issued(facts: Facts) -> str:
    if facts.get("period"):
        count = len(facts.get("quotes") or [])
        return ngettext("Facture mensuelle %(number)s de %(period)s émise (%(num)d devis)",
                        "Facture mensuelle %(number)s de %(period)s émise (%(num)d devis)", count,
                        number=facts.invoice(), period=_period(facts["period"]))
    return _("Facture %(number)s émise pour le devis %(quote)s", number=facts.invoice(), quote=facts["quote"])


@wording("invoice.paid")
def _invoice_paid(facts: Facts) -> str:
    values = {"number": facts.invoice(), "reference": facts["reference"]}
    if facts["provider"] == "stripe":
        return _("Facture %(number)s payée par carte (réf. %(reference)s)", **values)
    if facts.event.actor is None:
        return _("Facture %(number)s payée par virement (réf. %(reference)s)", **values)
    return _("Facture %(number)s payée par virement (réf. %(reference)s), paiement enregistré par %(actor)s",
             actor=facts.actor, **values)


@wording("invoice.credited")
def _invoice_credited(facts: Facts) -> str:
    return _with_reason(_("Facture %(number)s annulée par l'avoir %(credit_note)s, émis par %(actor)s",
                          number=facts.invoice(), credit_note=facts["credit_note"], actor=facts.actor), facts)


@wording("invoice.lifecycle")
def _invoice_lifecycle(facts: Facts) -> str:
    status = label(LifecycleStatus(facts["status"]))
    if facts["source"] == "staff":
        return _("Facture %(number)s : statut « %(status)s » enregistré par %(actor)s",
                 number=facts.invoice(), status=status, actor=facts.actor)
    if facts["source"] == "platform":
        return _("Facture %(number)s : statut « %(status)s » reçu de la plateforme", number=facts.invoice(),
                 status=status)
    return _("Facture %(number)s : statut « %(status)s »", number=facts.invoice(), status=status)


@wording("payment.failed")
def _payment_failed(facts: Facts) -> str:
    return _("Paiement par carte de la facture %(number)s refusé (code %(code)s)", number=facts.invoice(),
             code=facts.get("code") or "?")


@wording("payment.flagged")
def _payment_flagged(facts: Facts) -> str:
    reason = ANOMALY_REASONS.get(facts["kind"], facts["kind"])
    amount = format_amount(facts["amount_cents"])
    if facts.get("invoice"):
        return _("Paiement par carte de %(amount)s à vérifier (facture %(number)s) : %(reason)s",
                 amount=amount, number=facts["invoice"], reason=reason)
    return _("Paiement par carte de %(amount)s à vérifier : %(reason)s", amount=amount, reason=reason)


@wording("credits.granted")
def _credits_granted(facts: Facts) -> str:
    amount = facts["amount"]
    return ngettext("%(count)s crédit attribué pour le devis %(quote)s",
                    "%(count)s crédits attribués pour le devis %(quote)s", abs(amount),
                    count=credits_count(amount), quote=facts["quote"])


@wording("credits.consumption")
def _credits_consumed(facts: Facts) -> str:
    amount, count = facts["amount"], credits_count(facts["amount"])
    if facts.get("api_key"):
        return ngettext("%(count)s crédit consommé via l'API (%(key)s)",
                        "%(count)s crédits consommés via l'API (%(key)s)", abs(amount), count=count,
                        key=_api_key(facts))
    return ngettext("%(count)s crédit consommé par %(actor)s", "%(count)s crédits consommés par %(actor)s",
                    abs(amount), count=count, actor=facts.actor)


@wording("credits.adjustment")
def _credits_adjusted(facts: Facts) -> str:
    amount = facts["amount"]
    values = {"count": credits_count(amount), "actor": facts.actor}
    if facts.get("api_key"):
        values["actor"] = _("l'API (%(key)s)", key=_api_key(facts))
    if amount > 0:
        sentence = ngettext("%(count)s crédit ajouté par %(actor)s",
                            "%(count)s crédits ajoutés par %(actor)s", amount, **values)
    else:
        sentence = ngettext("%(count)s crédit retiré par %(actor)s",
                            "%(count)s crédits retirés par %(actor)s", -amount, **values)
    return _with_reason(sentence, facts)


@wording("credits.reversal")
def _credits_reversed(facts: Facts) -> str:
    amount = facts["amount"]
    return ngettext("%(count)s crédit du devis %(quote)s repris par l'avoir %(credit_note)s",
                    "%(count)s crédits du devis %(quote)s repris par l'avoir %(credit_note)s", abs(amount),
                    count=credits_count(amount), quote=facts["quote"], credit_note=facts["credit_note"])


@wording("seller.updated")
def _seller_updated(facts: Facts) -> str:
    count = len(facts.get("fields") or [])
    return ngettext("%(num)d paramètre du vendeur modifié par %(actor)s",
                    "%(num)d paramètres du vendeur modifiés par %(actor)s", count, actor=facts.actor)


# --- The API and webhooks ---------------------------------------------------------------------


def _by_someone(facts: Facts, sentence: str) -> str:
    """`sentence`, followed by « par <actor> » when a person did it (the CLI acts as no one)."""
    if facts.event.actor is None:
        return sentence
    return _("%(sentence)s par %(actor)s", sentence=sentence, actor=facts.actor)


@wording("webhook_endpoint.created")
def _endpoint_created(facts: Facts) -> str:
    return _by_someone(facts, _("Point de réception %(url)s créé", url=facts.endpoint()))


@wording("webhook_endpoint.updated")
def _endpoint_updated(facts: Facts) -> str:
    if facts.details.get("enabled") is False:
        return _by_someone(facts, _("Point de réception %(url)s modifié et désactivé", url=facts.endpoint()))
    return _by_someone(facts, _("Point de réception %(url)s modifié", url=facts.endpoint()))


@wording("webhook_endpoint.secret_rotated")
def _secret_rotated(facts: Facts) -> str:
    until = french_date(datetime.fromisoformat(facts["previous_valid_until"]))
    return _by_someone(facts, _("Secret du point de réception %(url)s renouvelé (l'ancien reste valable "
                                "jusqu'au %(until)s)", url=facts.endpoint(), until=until))


@wording("webhook_endpoint.test_sent")
def _test_sent(facts: Facts) -> str:
    return _by_someone(facts, _("Événement de test envoyé au point de réception %(url)s",
                                url=facts.endpoint()))


@wording("webhook_endpoint.failed_resent")
def _failed_resent(facts: Facts) -> str:
    return _by_someone(facts, ngettext("%(num)d envoi en échec renvoyé au point de réception %(url)s",
                                       "%(num)d envois en échec renvoyés au point de réception %(url)s",
                                       facts["count"], url=facts.endpoint()))


@wording("webhook_delivery.resent")
def _delivery_resent(facts: Facts) -> str:
    return _by_someone(facts, _("Envoi n° %(id)s renvoyé au point de réception %(url)s",
                                id=facts.event.object_id, url=facts.endpoint(facts["endpoint_id"])))


# --- A page of events -------------------------------------------------------------------------


def action_label(action: str) -> str:
    """The short name of an action (« Devis refusé »), else its code."""
    return str(ACTION_LABELS.get(action, action))


def describe(event: AuditEvent, names: Names) -> str:
    """The event's sentence, from its columns, its actor and `names`; its action's code when
    there is no wording for it or its details lack what the wording needs."""
    build = WORDINGS.get(event.action)
    if build is None:
        return event.action
    try:
        return build(Facts(event, names))
    except (KeyError, TypeError, ValueError):  # an older or hand-written event: shown, not fatal
        return event.action


def describe_all(events: Sequence[AuditEvent]) -> dict[int, str]:
    """Each event's sentence by event id, with what they name fetched in at most three queries."""
    names = load_names(events)
    return {event.id: describe(event, names) for event in events}


def load_names(events: Sequence[AuditEvent]) -> Names:
    """The references, numbers and URLs `events` name, one query per kind of object named."""
    quote_ids, invoice_ids, endpoint_ids = set(), set(), set()
    for event in events:
        details = event.details if isinstance(event.details, dict) else {}
        if event.object_type == "quote":
            quote_ids.add(event.object_id)
        elif event.object_type == "invoice":
            invoice_ids.add(event.object_id)
        elif event.object_type == "webhookendpoint":
            endpoint_ids.add(event.object_id)
        _add_id(quote_ids, details.get("quote_id"))
        _add_id(endpoint_ids, details.get("endpoint_id"))
    return Names(quotes=_quote_references(quote_ids),
                 invoices=_by_id(Invoice.id, Invoice.number, invoice_ids),
                 endpoints=_by_id(WebhookEndpoint.id, WebhookEndpoint.url, endpoint_ids))


def _add_id(ids: set[int], value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        ids.add(value)


def _by_id(key, column, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(db.session.execute(select(key, column).where(key.in_(ids))).all())


def _quote_references(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = db.session.execute(select(Quote.id, Quote.number, Quote.revision).where(Quote.id.in_(ids)))
    return {quote_id: _quote_reference(quote_id, number, revision) for quote_id, number, revision in rows}


def _quote_reference(quote_id: int, number: str | None, revision: int) -> str:
    if not number:
        return _("brouillon n° %(id)s", id=quote_id)
    return number if revision == 1 else f"{number}-R{revision}"
