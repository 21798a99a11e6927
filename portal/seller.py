"""The seller: its identity (SellerSettings, printed on every quote and invoice) and the terms of
sale (CGV) in force."""

from __future__ import annotations

from sqlalchemy import Select, select

from .exceptions import SellerSettingsIncomplete
from .extensions import db
from .models import SellerSettings, SupplyKind, TermsVersion

# Seller fields without which an invoice would lack a mandatory mention (Code de commerce L441-9).
MANDATORY_SELLER_FIELDS = {
    "company_name": "la raison sociale",
    "legal_form": "la forme juridique",
    "share_capital": "le capital social",
    "address_line1": "l'adresse",
    "postal_code": "le code postal",
    "city": "la ville",
    "siren": "le SIREN",
    "rcs_city": "la ville du RCS",
    "vat_number": "le numéro de TVA intracommunautaire",
}


def seller_settings() -> SellerSettings:
    """The seller's settings row (an empty one if never saved)."""
    return db.session.get(SellerSettings, 1) or SellerSettings(id=1)


SNAPSHOT_SELLER_FIELDS = list(MANDATORY_SELLER_FIELDS) + [
    "address_line2", "country", "email", "phone", "iban", "bic",
    "early_payment_discount", "late_penalty_rate", "operation_category", "vat_on_debits",
]
# Read as a plain row: every invoice reads it, and loading the model object (and flushing the
# session's pending rows first) cost more than the query.
SELLER_SNAPSHOT_ROW = select(*(getattr(SellerSettings, field) for field in SNAPSHOT_SELLER_FIELDS)
                             ).where(SellerSettings.id == 1).execution_options(autoflush=False)


def seller_snapshot() -> dict[str, str]:
    """The seller identity frozen onto an invoice; refuses to issue if a mention is missing."""
    row = db.session.execute(SELLER_SNAPSHOT_ROW).mappings().one_or_none() or {}
    missing = [label for field, label in MANDATORY_SELLER_FIELDS.items() if not row.get(field)]
    if missing:
        raise SellerSettingsIncomplete(fields=", ".join(missing))
    return {field: row[field] or "" for field in SNAPSHOT_SELLER_FIELDS}


def default_supply_kind() -> SupplyKind:
    """A new product's nature: the seller's category of operations, when it is goods or services
    (services for « mixte »)."""
    category = seller_settings().operation_category
    return SupplyKind.GOODS if category == SupplyKind.GOODS.value else SupplyKind.SERVICES


# --- Terms of sale (CGV) ----------------------------------------------------------------------


def current_terms() -> TermsVersion | None:
    """The CGV version in force: the most recently published one."""
    return db.session.scalar(current_terms_query())


def current_terms_query() -> Select:
    """The statement of the CGV version in force (quotes check it in their transitions)."""
    return (select(TermsVersion).where(TermsVersion.published_at.is_not(None))
            .order_by(TermsVersion.published_at.desc(), TermsVersion.id.desc()).limit(1))
