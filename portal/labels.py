"""French labels of every enum value shown to people, and the Jinja filters that use them."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from flask import Flask
from flask_babel import format_date, get_locale

from .dates import PARIS, period_bounds
from .exceptions import InvalidPeriod
from .i18n import gettext as _
from .i18n import lazy_gettext as _l
from .i18n import ngettext_raw
from .models import (
    BillingMode,
    Channel,
    ClientRole,
    CloseJobStatus,
    CreditEntryKind,
    DecisionKind,
    DeliveryStatus,
    InvoiceKind,
    InvoiceStatus,
    LifecycleSource,
    LifecycleStatus,
    OutboxStatus,
    PaymentProvider,
    QuoteRequestStatus,
    QuoteStatus,
    StaffRole,
)
from .money import format_amount

# Keyed by enum class: StrEnum members of different enums with the same value ("sent", "cancelled"…)
# are equal and hash alike, so one flat dict would mix them up.
LABELS_BY_ENUM: dict[type[enum.Enum], dict[enum.Enum, object]] = {
    QuoteStatus: {
        QuoteStatus.DRAFT: _l("Brouillon"),
        QuoteStatus.SENT: _l("En attente du client"),
        QuoteStatus.ACCEPTED: _l("Validé"),
        QuoteStatus.REFUSED: _l("Refusé"),
        QuoteStatus.EXPIRED: _l("Expiré"),
        QuoteStatus.CANCELLED: _l("Annulé"),
        QuoteStatus.SUPERSEDED: _l("Remplacé par une révision"),
    },
    BillingMode: {
        BillingMode.PER_ORDER: _l("Facturation à la commande"),
        BillingMode.MONTHLY: _l("Facturation consolidée mensuelle"),
    },
    ClientRole: {
        ClientRole.RESPONSABLE: _l("Responsable"),
        ClientRole.GESTIONNAIRE: _l("Gestionnaire"),
        ClientRole.MEMBRE: _l("Membre"),
    },
    StaffRole: {
        StaffRole.ADMIN: _l("Administrateur"),
        StaffRole.SALES: _l("Commercial"),
    },
    DecisionKind: {
        DecisionKind.ACCEPTED: _l("Validation"),
        DecisionKind.REFUSED: _l("Refus"),
    },
    Channel: {
        Channel.EMAIL_LINK: _l("Lien reçu par email"),
        Channel.PORTAL: _l("Espace client"),
        Channel.BACK_OFFICE: _l("Gestion courante (pour le compte du client)"),
    },
    QuoteRequestStatus: {
        QuoteRequestStatus.NEW: _l("Nouvelle"),
        QuoteRequestStatus.ANSWERED: _l("Devis établi"),
        QuoteRequestStatus.DECLINED: _l("Déclinée"),
    },
    InvoiceKind: {
        InvoiceKind.INVOICE: _l("Facture"),
        InvoiceKind.CREDIT_NOTE: _l("Avoir"),
    },
    InvoiceStatus: {
        InvoiceStatus.ISSUED: _l("À régler"),
        InvoiceStatus.PAID: _l("Payée"),
        InvoiceStatus.CANCELLED: _l("Annulée par avoir"),
    },
    LifecycleStatus: {
        LifecycleStatus.DEPOSITED: _l("Déposée"),
        LifecycleStatus.REJECTED: _l("Rejetée"),
        LifecycleStatus.REFUSED: _l("Refusée"),
        LifecycleStatus.APPROVED: _l("Approuvée"),
        LifecycleStatus.CASHED: _l("Encaissée"),
    },
    LifecycleSource: {
        LifecycleSource.PORTAL: _l("Paiement enregistré"),
        LifecycleSource.STAFF: _l("Saisi par l'équipe"),
        LifecycleSource.PLATFORM: _l("Plateforme agréée"),
    },
    PaymentProvider: {
        PaymentProvider.STRIPE: _l("Carte bancaire"),
        PaymentProvider.BANK_TRANSFER: _l("Virement bancaire"),
    },
    CreditEntryKind: {
        CreditEntryKind.GRANT: _l("Attribution"),
        CreditEntryKind.CONSUMPTION: _l("Consommation"),
        CreditEntryKind.ADJUSTMENT: _l("Ajustement"),
        CreditEntryKind.REVERSAL: _l("Annulation"),
    },
    DeliveryStatus: {
        DeliveryStatus.PENDING: _l("En attente"),
        DeliveryStatus.DELIVERED: _l("Livré"),
        DeliveryStatus.FAILED: _l("En échec"),
    },
    OutboxStatus: {
        OutboxStatus.PENDING: _l("En attente"),
        OutboxStatus.SENT: _l("Envoyé"),
        OutboxStatus.FAILED: _l("En échec"),
    },
    CloseJobStatus: {
        CloseJobStatus.QUEUED: _l("En file d'attente"),
        CloseJobStatus.RUNNING: _l("En cours"),
        CloseJobStatus.DONE: _l("Terminée"),
        CloseJobStatus.FAILED: _l("En échec"),
    },
}


# Where the client reads a status differently from staff: a sent quote waits for the client's own
# decision, so the client reads what to do, staff read whom it waits for.
CLIENT_LABELS: dict[enum.Enum, object] = {
    QuoteStatus.SENT: _l("À valider"),
}


def label(value: enum.Enum | None) -> str:
    """The French label of an enum value ('' for None)."""
    if value is None:
        return ""
    return str(LABELS_BY_ENUM.get(type(value), {}).get(value, value.value))


def client_label(value: enum.Enum | None) -> str:
    """The label a client user reads (templates/client/): the staff label unless it differs."""
    if isinstance(value, QuoteStatus) and value in CLIENT_LABELS:
        return str(CLIENT_LABELS[value])
    return label(value)


def plural(singular: str, plural_form: str, n: int, **variables) -> str:
    """ngettext through this request's catalogue; `%(count)s` is `n`, grouped (1 500), unless given."""
    variables.setdefault("count", format_number(n))
    return ngettext_raw(singular, plural_form, n) % variables


def format_number(value: int | None) -> str:
    """1 500, -12 000: thousands grouped by a narrow no-break space, as amounts are (money.py)."""
    if value is None:
        return ""
    grouped = f"{abs(value):,}".replace(",", "\u202f")
    return f"-{grouped}" if value < 0 else grouped


def format_signed(value: int) -> str:
    """+1 500, -3, 0: a movement of credits."""
    return ("+" if value > 0 else "") + format_number(value)


def credits_text(count: int, signed: bool = False) -> str:
    """« 1 crédit », « 1 500 crédits », « -2 crédits » (« +3 crédits » if `signed`)."""
    shown = format_signed(count) if signed else format_number(count)
    return plural("%(count)s crédit", "%(count)s crédits", abs(count), count=shown)


def french_count(count: int, singular: str, plural_form: str) -> str:
    """The command line's French (it is not translated): « 1 facture émise », « 0 facture émise »,
    « 1 500 factures émises »; French takes the singular below two."""
    return f"{format_number(count)} {singular if abs(count) < 2 else plural_form}"


def quote_reference_label(quote) -> str:
    """A quote's name as people read it: its number, or « Brouillon n° 13 » before it has one.
    Takes anything with `id`, `number` and `revision` (a Quote, a list's row)."""
    if not quote.number:
        return _("Brouillon n° %(id)s", id=quote.id)
    return quote.number if quote.revision == 1 else f"{quote.number}-R{quote.revision}"


def period_label(period: str | None) -> str:
    """A billing period 2026-11 as « novembre 2026 » (in the reader's language)."""
    if not period:
        return ""
    try:
        first, _next = period_bounds(period)
    except InvalidPeriod:
        return period  # a mistyped period is shown as typed, in the refusal that names it
    return format_date(first, "MMMM y")


def vat_rate(basis_points: int) -> str:
    """20 %, 5,5 %, 2,1 %."""
    whole, rest = divmod(basis_points, 100)
    return f"{whole}\u00a0%" if not rest else f"{whole},{rest:02d}".rstrip("0") + "\u00a0%"


def french_date(value: date | datetime | None) -> str:
    """27/11/2026 (a datetime, stored in UTC, is shown in Paris time)."""
    if value is None:
        return ""
    # Written by hand: strftime costs three times as much, on lists of hundreds of dates.
    if isinstance(value, datetime):
        value += _paris_offset(value.replace(minute=0, second=0, microsecond=0))
        return f"{value.day:02d}/{value.month:02d}/{value.year:04d} {value.hour:02d}:{value.minute:02d}"
    return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"


@lru_cache(maxsize=4096)
def _paris_offset(utc_hour: datetime) -> timedelta:
    """Paris's offset from UTC during an hour of UTC time. Paris changes offset on whole UTC hours
    (01:00 UTC), so the offset found once holds for the hour; converting each datetime through
    its time zone was most of a date's formatting time."""
    return utc_hour.replace(tzinfo=UTC).astimezone(PARIS).utcoffset()


def register(app: Flask) -> None:
    """Jinja filters `label`, `client_label`, `money` (cents), `vat`, `fdate`, `number`, `signed`, `credits`,
    `quote_ref`, `period`; the global `get_locale`."""
    app.jinja_env.filters.update(label=label, client_label=client_label, money=format_amount,
                                 vat=vat_rate, fdate=french_date, number=format_number,
                                 signed=format_signed,
                                 credits=credits_text, quote_ref=quote_reference_label,
                                 period=period_label)
    app.jinja_env.globals["get_locale"] = get_locale
