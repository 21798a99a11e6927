"""Typed SQLAlchemy models of DESIGN.md §3: state and constraints, no business flow.

Money is stored in integer cents; VAT rates in basis points (2000 = 20 %).
Datetimes are naive UTC; calendar dates (validity, issue, due) are Europe/Paris dates.

One module on purpose, longer than the ~400 lines of DESIGN.md §6: it is declarations only (columns,
constraints, indexes), and the models name one another both ways (quote ↔ invoice, organisation ↔
user), so split modules would import each other. What guards the rows beyond their constraints
(the flush guard, the database triggers, the name search table) lives in `schema_guards`.
"""

from __future__ import annotations

import enum
import unicodedata
from datetime import UTC, date, datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    and_,
    false,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from .extensions import db


def utcnow() -> datetime:
    """Current time as naive UTC, the storage convention of every datetime column."""
    return datetime.now(UTC).replace(tzinfo=None)


class QuoteStatus(enum.StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"


class BillingMode(enum.StrEnum):
    PER_ORDER = "per_order"
    MONTHLY = "monthly"


class UserKind(enum.StrEnum):
    STAFF = "staff"
    CLIENT = "client"


class StaffRole(enum.StrEnum):
    ADMIN = "admin"
    SALES = "sales"


class ClientRole(enum.StrEnum):
    RESPONSABLE = "responsable"
    GESTIONNAIRE = "gestionnaire"
    MEMBRE = "membre"


class DecisionKind(enum.StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"


class Channel(enum.StrEnum):
    EMAIL_LINK = "email_link"
    PORTAL = "portal"
    BACK_OFFICE = "back_office"


class QuoteRequestStatus(enum.StrEnum):
    NEW = "new"
    ANSWERED = "answered"
    DECLINED = "declined"


class InvoiceKind(enum.StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class InvoiceStatus(enum.StrEnum):
    ISSUED = "issued"
    PAID = "paid"
    CANCELLED = "cancelled"


class PaymentProvider(enum.StrEnum):
    STRIPE = "stripe"
    BANK_TRANSFER = "bank_transfer"


class CreditEntryKind(enum.StrEnum):
    GRANT = "grant"
    CONSUMPTION = "consumption"
    ADJUSTMENT = "adjustment"
    REVERSAL = "reversal"


class SupplyKind(enum.StrEnum):
    """What a product (and each line that sells it) supplies: it makes an invoice's « catégorie de
    l'opération » (goods, services, or mixed when both)."""

    GOODS = "goods"
    SERVICES = "services"


class LifecycleStatus(enum.StrEnum):
    """An issued invoice's statuses in the e-invoicing reform's life cycle (the mandatory ones and
    « approuvée »); lifecycle.STATUS_CODES gives the reform's codes."""

    DEPOSITED = "deposited"
    REJECTED = "rejected"
    REFUSED = "refused"
    APPROVED = "approved"
    CASHED = "cashed"


class LifecycleSource(enum.StrEnum):
    """Who told us a status: the portal itself (a payment), staff (by hand), or an approved platform."""

    PORTAL = "portal"
    STAFF = "staff"
    PLATFORM = "platform"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class CloseJobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def _enum(enum_class: type[enum.Enum]) -> Enum:
    """Enums are stored as their string values in a VARCHAR (portable, readable in SQL)."""
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=20,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


# Letters NFKD does not decompose, written as a French reader types them; typographic apostrophes
# as the keyboard's.
_SEARCH_SPELLINGS = str.maketrans({"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ø": "o", "Ø": "o",
                                   "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "’": "'", "‘": "'"})


def fold_for_search(text: str) -> str:
    """`text` as the name search compares it: lower case, without accents (NFKD less its
    combining marks, œ → oe, ß → ss…), its spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SEARCH_SPELLINGS))
    bare = "".join(character for character in decomposed if not unicodedata.combining(character))
    return " ".join(bare.casefold().split())


def email_domain(email: str | None) -> str | None:
    """The domain of an address, lower case ("lefevre-associes.fr"); None without an "@"."""
    local, at, domain = (email or "").rpartition("@")
    return domain.strip().lower() or None if at and local else None


class Organisation(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    # The name folded for the search bar (fold_for_search), set with the name (_fold_name below):
    # "lefevre" finds « Cabinet Lefèvre », through an index, on PostgreSQL and SQLite alike.
    # Text: folding may lengthen a name (œ → oe).
    folded_name: Mapped[str] = mapped_column(Text)
    legal_form: Mapped[str | None] = mapped_column(String(50))
    siren: Mapped[str | None] = mapped_column(String(9), index=True)
    siret: Mapped[str | None] = mapped_column(String(14), index=True)
    vat_number: Mapped[str | None] = mapped_column(String(20))
    address_line1: Mapped[str | None] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    city: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2), default="FR")
    billing_email: Mapped[str | None] = mapped_column(String(254))
    # The platform's own id of this organisation (its API names organisations by it).
    external_id: Mapped[str | None] = mapped_column(String(100))
    billing_mode: Mapped[BillingMode] = mapped_column(_enum(BillingMode), default=BillingMode.PER_ORDER)
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    staff_validation_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    staff_validation_changed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", use_alter=True)
    )
    staff_validation_changed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The sequence number of this organisation's latest event (webhooks): incremented in the
    # transaction that writes the event, so the platform can order one organisation's events.
    event_sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The sum of this organisation's credit entries, kept by the database itself (a trigger on each
    # entry's insert, schema_guards.CREDIT_BALANCE_TRIGGERS), so a consumption reads it with its lock
    # instead of summing the ledger. Deferred: an organisation loaded earlier in the transaction
    # would hold a stale copy; credits.credit_balance() reads it from the database.
    credit_balance: Mapped[int] = mapped_column(Integer, default=0, server_default="0", deferred=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    users: Mapped[list[User]] = relationship(
        back_populates="organisation", foreign_keys="User.organisation_id"
    )
    staff_validation_changed_by: Mapped[User | None] = relationship(
        foreign_keys=[staff_validation_changed_by_id], post_update=True
    )

    __table_args__ = (
        CheckConstraint("payment_terms_days >= 0 AND payment_terms_days <= 60", name="payment_terms"),
        # The search bar's "name contains" (LIKE '%…%' on the folded name) on PostgreSQL: a trigram
        # index (pg_trgm, created with the table: schema_guards). SQLite has its FTS5 table instead.
        Index("ix_organisation_folded_name_trgm", "folded_name", postgresql_using="gin",
              postgresql_ops={"folded_name": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
        # SQLite only: search results come in folded_name order, LIMIT n, and read in this index's
        # order SQLite stops at the n-th match instead of testing and sorting every name.
        # PostgreSQL finds the matches faster through the trigram index, then sorts the few found.
        Index("ix_organisation_folded_name", "folded_name").ddl_if(dialect="sqlite"),
        Index("uq_organisation_external_id", "external_id", unique=True),
    )

    @validates("name")
    def _fold_name(self, _key: str, name: str) -> str:
        self.folded_name = fold_for_search(name or "")
        return name

    def __str__(self) -> str:
        return self.name


class User(UserMixin, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    # What follows the "@", set with the email (_keep_email_domain): the search bar finds an
    # organisation by its members' domain through this index.
    email_domain: Mapped[str | None] = mapped_column(String(254), index=True)
    full_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[UserKind] = mapped_column(_enum(UserKind))
    staff_role: Mapped[StaffRole | None] = mapped_column(_enum(StaffRole))
    client_role: Mapped[ClientRole | None] = mapped_column(_enum(ClientRole))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Copied into each session at sign-in; raising it (logout, new password, deactivation,
    # "Se déconnecter partout") ends every session carrying an older value (auth.load_user).
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The language of this user's pages, emails and documents; None is French, the default.
    language: Mapped[str | None] = mapped_column(String(2))

    organisation: Mapped[Organisation | None] = relationship(
        back_populates="users", foreign_keys=[organisation_id]
    )

    __table_args__ = (
        CheckConstraint(
            "(kind = 'staff' AND staff_role IS NOT NULL AND client_role IS NULL"
            " AND organisation_id IS NULL) OR (kind = 'client' AND client_role IS NOT NULL"
            " AND staff_role IS NULL AND organisation_id IS NOT NULL)",
            name="kind_roles",
        ),
    )

    @validates("email")
    def _keep_email_domain(self, _key: str, email: str) -> str:
        self.email_domain = email_domain(email)
        return email

    @property
    def is_active(self) -> bool:  # Flask-Login: a deactivated user cannot sign in
        return self.active

    @property
    def is_staff(self) -> bool:
        return self.kind == UserKind.STAFF

    def __str__(self) -> str:
        return f"{self.full_name} <{self.email}>"


class Product(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)
    vat_rate_bp: Mapped[int] = mapped_column(Integer, default=2000)
    credits_per_unit: Mapped[int] = mapped_column(Integer, default=0)
    published: Mapped[bool] = mapped_column(Boolean, default=True)
    supply_kind: Mapped[SupplyKind] = mapped_column(_enum(SupplyKind), default=SupplyKind.SERVICES,
                                                    server_default=SupplyKind.SERVICES.value)

    __table_args__ = (
        CheckConstraint("unit_price_cents >= 0", name="price_positive"),
        CheckConstraint("credits_per_unit >= 0", name="credits_positive"),
    )

    def __str__(self) -> str:
        return f"{self.sku} — {self.name}"


class TermsVersion(db.Model):
    """A version of the CGV: a draft while `published_at` is empty, immutable once published (the
    ORM's guard and the database triggers of `schema_guards`)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    version_label: Mapped[str] = mapped_column(String(50), unique=True)
    body: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    published_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def __str__(self) -> str:
        return f"CGV {self.version_label}"


class QuoteRequest(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    message: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[QuoteRequestStatus] = mapped_column(
        _enum(QuoteRequestStatus), default=QuoteRequestStatus.NEW, index=True
    )
    decline_reason: Mapped[str | None] = mapped_column(Text)
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    handled_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    organisation: Mapped[Organisation] = relationship()
    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    lines: Mapped[list[QuoteRequestLine]] = relationship(
        back_populates="request", cascade="all, delete-orphan", order_by="QuoteRequestLine.id"
    )
    quote: Mapped[Quote | None] = relationship(back_populates="request", uselist=False)

    # The home's queue: new requests, oldest first.
    __table_args__ = (Index("ix_quote_request_status_created", "status", "created_at"),)

    def __str__(self) -> str:
        return f"Demande #{self.id}"


class QuoteRequestLine(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("quote_request.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    quantity: Mapped[int] = mapped_column(Integer)

    request: Mapped[QuoteRequest] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship()

    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)


def quote_reference(quote_id: int, number: str | None, revision: int) -> str:
    """A quote's reference from its columns (Quote.reference, and lists that read columns only)."""
    if not number:
        return f"Brouillon n° {quote_id}"
    return number if revision == 1 else f"{number}-R{revision}"


class Quote(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    number: Mapped[str | None] = mapped_column(String(20), index=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    title: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[QuoteStatus] = mapped_column(_enum(QuoteStatus), default=QuoteStatus.DRAFT)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("quote_request.id"), unique=True)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("quote.id"), index=True)
    validity_days: Mapped[int | None] = mapped_column(Integer)
    valid_until: Mapped[date | None] = mapped_column(Date)
    billing_mode: Mapped[BillingMode | None] = mapped_column(_enum(BillingMode))
    total_ht_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    total_vat_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    total_ttc_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    total_credits: Mapped[int] = mapped_column(Integer, default=0)
    billing_period: Mapped[str | None] = mapped_column(String(7))
    monthly_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoice.id", use_alter=True))
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)

    organisation: Mapped[Organisation] = relationship()
    recipient: Mapped[User | None] = relationship(foreign_keys=[recipient_id])
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    request: Mapped[QuoteRequest | None] = relationship(back_populates="quote")
    supersedes: Mapped[Quote | None] = relationship(remote_side=[id])
    lines: Mapped[list[QuoteLine]] = relationship(
        back_populates="quote", cascade="all, delete-orphan", order_by="QuoteLine.position"
    )
    decision: Mapped[Decision | None] = relationship(back_populates="quote", uselist=False)

    __table_args__ = (
        UniqueConstraint("number", "revision"),
        Index("ix_quote_organisation_status", "organisation_id", "status"),
        # Sent quotes by expiry: the expiry job, and the home's queue in its order (id last).
        Index("ix_quote_status_valid_until", "status", "valid_until", "id"),
        Index("ix_quote_monthly_unbilled", "organisation_id", "billing_period", "monthly_invoice_id"),
        # Lists newest first: an organisation's quotes (Devis tab, portal), every quote by status.
        Index("ix_quote_organisation_newest", "organisation_id", "id"),
        Index("ix_quote_status_id", "status", "id"),
        # Every quote newest first, filtered by owner (the list's organisation search): PostgreSQL
        # reads the index alone backwards until a page is found, no row fetched for the quotes
        # skipped. SQLite reads its table in id order as fast.
        Index("ix_quote_newest_owner", "id", "organisation_id").ddl_if(dialect="postgresql"),
        # Accepted monthly quotes not yet invoiced: the home's queue and the monthly close.
        Index("ix_quote_to_invoice", "status", "billing_mode", "monthly_invoice_id", "billing_period",
              "organisation_id"),
    )

    @property
    def reference(self) -> str:
        """The number shown to people: DV-2026-00012, or DV-2026-00012-R2 for a revision."""
        return quote_reference(self.id, self.number, self.revision)

    def __str__(self) -> str:
        return self.reference


class QuoteLine(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quote.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"))
    label: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)
    vat_rate_bp: Mapped[int] = mapped_column(Integer)
    credits_per_unit: Mapped[int] = mapped_column(Integer, default=0)
    total_ht_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    total_vat_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    # The product's, when the line was written (a line without a product supplies services).
    supply_kind: Mapped[SupplyKind] = mapped_column(_enum(SupplyKind), default=SupplyKind.SERVICES,
                                                    server_default=SupplyKind.SERVICES.value)

    quote: Mapped[Quote] = relationship(back_populates="lines")
    product: Mapped[Product | None] = relationship()

    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_cents >= 0", name="price_positive"),
    )


class Decision(db.Model):
    """Evidence of an acceptance or a refusal; exactly one per quote."""

    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quote.id"), unique=True)
    kind: Mapped[DecisionKind] = mapped_column(_enum(DecisionKind))
    actor_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    terms_version_id: Mapped[int] = mapped_column(ForeignKey("terms_version.id"))
    terms_sha256: Mapped[str] = mapped_column(String(64))
    quote_sha256: Mapped[str] = mapped_column(String(64))
    mandate_granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    mandate_granted_at: Mapped[datetime | None] = mapped_column(DateTime)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    reason: Mapped[str | None] = mapped_column(Text)
    # The actor's role when deciding (a ClientRole or StaffRole value): roles change, evidence not.
    # Empty for the decisions recorded before the column existed.
    actor_role: Mapped[str | None] = mapped_column(String(20))
    # A decision taken by staff on the client's behalf: how the client asked for it, in staff's words.
    on_behalf_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    quote: Mapped[Quote] = relationship(back_populates="decision")
    actor: Mapped[User] = relationship(foreign_keys=[actor_id])
    terms_version: Mapped[TermsVersion] = relationship()
    mandate_granted_by: Mapped[User | None] = relationship(foreign_keys=[mandate_granted_by_id])

    @property
    def role(self) -> ClientRole | StaffRole | None:
        """`actor_role` as its enum, for its label (the two enums share no value)."""
        if self.actor_role is None:
            return None
        if self.actor_role in {role.value for role in StaffRole}:
            return StaffRole(self.actor_role)
        return ClientRole(self.actor_role)


class NumberCounter(db.Model):
    """Gapless counters: the row is locked by the UPDATE that increments it, until commit."""

    series: Mapped[str] = mapped_column(String(4), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer, default=0)


class Invoice(db.Model):
    """An issued invoice or credit note; never modified beyond its status, never deleted."""

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[InvoiceKind] = mapped_column(_enum(InvoiceKind))
    number: Mapped[str] = mapped_column(String(20), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quote.id"), unique=True)
    billing_period: Mapped[str | None] = mapped_column(String(7))
    credited_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoice.id"), unique=True)
    status: Mapped[InvoiceStatus] = mapped_column(_enum(InvoiceStatus), default=InvoiceStatus.ISSUED)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    sale_date: Mapped[date | None] = mapped_column(Date)
    total_ht_cents: Mapped[int] = mapped_column(BigInteger)
    total_vat_cents: Mapped[int] = mapped_column(BigInteger)
    total_ttc_cents: Mapped[int] = mapped_column(BigInteger)
    seller: Mapped[dict[str, Any]] = mapped_column(JSON)
    buyer: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime)

    organisation: Mapped[Organisation] = relationship()
    quote: Mapped[Quote | None] = relationship(foreign_keys=[quote_id])
    credited_invoice: Mapped[Invoice | None] = relationship(remote_side=[id])
    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.position"
    )
    payments: Mapped[list[Payment]] = relationship(back_populates="invoice")

    __table_args__ = (
        UniqueConstraint("organisation_id", "billing_period"),
        Index("ix_invoice_organisation_status", "organisation_id", "status"),
        Index("ix_invoice_organisation_newest", "organisation_id", "id"),
        # Unpaid invoices by due date (the home's queue), counted from the index alone.
        Index("ix_invoice_unpaid", "status", "kind", "due_date", "id", "quote_id"),
        CheckConstraint("total_ttc_cents = total_ht_cents + total_vat_cents", name="totals"),
    )

    def __str__(self) -> str:
        return self.number

    @hybrid_property
    def is_payable(self) -> bool:
        """An invoice (not a credit note) issued and neither paid nor cancelled: the one rule of
        what a client may pay, staff record a transfer for, or cancel by a credit note; in Python on
        an instance, and in SQL on the class (`select(Invoice).where(Invoice.is_payable)`)."""
        return self.kind == InvoiceKind.INVOICE and self.status == InvoiceStatus.ISSUED

    @is_payable.inplace.expression
    @classmethod
    def _is_payable_expression(cls):
        return and_(cls.kind == InvoiceKind.INVOICE, cls.status == InvoiceStatus.ISSUED)


class QuoteDocument(db.Model):
    """A quote's PDF, rendered once for each state it is shown in (its status and the CGV it is
    under) and served from here ever after: a quote's PDF is downloaded far more than it changes."""

    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quote.id"))
    state_key: Mapped[str] = mapped_column(String(64))
    pdf: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    pdf_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("quote_id", "state_key"),)


class InvoiceDocument(db.Model):
    """Another rendering of an issued invoice than its frozen original (`Invoice.pdf`): the paid
    one (« acquittée »), rendered once at its first download and served from here ever after."""

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"))
    state_key: Mapped[str] = mapped_column(String(64))
    pdf: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    pdf_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("invoice_id", "state_key"),)


class InvoiceLine(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quote.id"))
    label: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)
    vat_rate_bp: Mapped[int] = mapped_column(Integer)
    total_ht_cents: Mapped[int] = mapped_column(BigInteger)
    total_vat_cents: Mapped[int] = mapped_column(BigInteger)
    # Its quote line's; None on the lines issued before each line had one (their invoice's category
    # is then the seller's setting frozen with it).
    supply_kind: Mapped[SupplyKind | None] = mapped_column(_enum(SupplyKind))

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class InvoiceLifecycleEvent(db.Model):
    """One status of an issued invoice's life cycle, when it happened and who told it; evidence:
    never modified nor deleted (schema_guards)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"), index=True)
    status: Mapped[LifecycleStatus] = mapped_column(_enum(LifecycleStatus))
    source: Mapped[LifecycleSource] = mapped_column(_enum(LifecycleSource))
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    note: Mapped[str | None] = mapped_column(Text)

    actor: Mapped[User | None] = relationship()


class Payment(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"), index=True)
    provider: Mapped[PaymentProvider] = mapped_column(_enum(PaymentProvider))
    provider_reference: Mapped[str] = mapped_column(String(255), unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    invoice: Mapped[Invoice] = relationship(back_populates="payments")


class CreditEntry(db.Model):
    """Append-only credit ledger; the balance is the sum of `amount` (stored on the organisation,
    kept by the database: Organisation.credit_balance)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    kind: Mapped[CreditEntryKind] = mapped_column(_enum(CreditEntryKind))
    amount: Mapped[int] = mapped_column(Integer)
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quote.id"))
    # The credit note whose reversal this is.
    credit_note_id: Mapped[int | None] = mapped_column(ForeignKey("invoice.id"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # A consumption through the API: the key, and the platform's reference of what used the credits.
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_key.id"))
    external_reference: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    quote: Mapped[Quote | None] = relationship()
    credit_note: Mapped[Invoice | None] = relationship()
    actor: Mapped[User | None] = relationship()
    api_key: Mapped[ApiKey | None] = relationship()

    # One grant (and at most one reversal) per quote; NULL quote ids never collide.
    __table_args__ = (
        UniqueConstraint("quote_id", "kind"),
        # An organisation's ledger summed from this index alone (PostgreSQL's index-only scan; 2 ms →
        # 0.15 ms at 1,000 entries), not from its rows: the stored balance's checks and backfill.
        Index("ix_credit_entry_organisation_amount", "organisation_id", "amount"),
    )


class OutboxEmail(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(254))
    template: Mapped[str] = mapped_column(String(100))
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_outbox_email_status_next", "status", "next_attempt_at"),)


class MonthlyCloseJob(db.Model):
    """A monthly close asked for from the back office and run by the outbox worker (`flask outbox
    work`), never inside a web request; one period has at most one job queued or running."""

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7))
    status: Mapped[CloseJobStatus] = mapped_column(_enum(CloseJobStatus), default=CloseJobStatus.QUEUED)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    requested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    issued_count: Mapped[int] = mapped_column(Integer, default=0)
    already_billed_count: Mapped[int] = mapped_column(Integer, default=0)
    failures_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    requested_by: Mapped[User | None] = relationship()

    __table_args__ = (
        # At most one job queued or running per period: a second click is refused by the database.
        Index("uq_monthly_close_job_active", "period", unique=True,
              sqlite_where=text("status IN ('queued', 'running')"),
              postgresql_where=text("status IN ('queued', 'running')")),
        Index("ix_monthly_close_job_status", "status", "id"),
    )

    def __str__(self) -> str:
        return self.period


class AuditEvent(db.Model):
    """Append-only trail of every state change."""

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    action: Mapped[str] = mapped_column(String(60))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[int | None] = mapped_column(Integer)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    actor: Mapped[User | None] = relationship()

    __table_args__ = (
        Index("ix_audit_event_object", "object_type", "object_id"),
        Index("ix_audit_event_organisation", "organisation_id", "id"),
    )


class LoginToken(db.Model):
    """A magic link: only the SHA-256 of the token is stored."""

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quote.id"))
    quote_revision: Mapped[int | None] = mapped_column(Integer)
    # Where a single sign-on link from the API leads (a path inside the portal).
    next_path: Mapped[str | None] = mapped_column(String(500))
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ApiKey(db.Model):
    """A key of the platform API. Only the SHA-256 of the secret is stored; `prefix`, the secret's
    first characters, names it on screen. Revoked, never deleted (the ledger names it)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(20))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Space-separated scopes, e.g. "credits:read credits:consume".
    scopes: Mapped[str] = mapped_column(String(300))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    revoked_by: Mapped[User | None] = relationship(foreign_keys=[revoked_by_id])

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ApiIdempotencyKey(db.Model):
    """An API write's `Idempotency-Key` with the response it got, written in the same transaction as
    the write: a retry of the same request gets that response again, a concurrent one waits on the
    unique key and then reads it."""

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_key.id"))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the method, path and body: the same key with another request is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("api_key_id", "key"),)


class SellerSettings(db.Model):
    """The seller's legal identity and mentions; a single row (id 1)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    company_name: Mapped[str] = mapped_column(String(200), default="")
    legal_form: Mapped[str] = mapped_column(String(50), default="")
    share_capital: Mapped[str] = mapped_column(String(50), default="")
    address_line1: Mapped[str] = mapped_column(String(200), default="")
    address_line2: Mapped[str] = mapped_column(String(200), default="")
    postal_code: Mapped[str] = mapped_column(String(10), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    country: Mapped[str] = mapped_column(String(2), default="FR")
    siren: Mapped[str] = mapped_column(String(9), default="")
    rcs_city: Mapped[str] = mapped_column(String(100), default="")
    vat_number: Mapped[str] = mapped_column(String(20), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(30), default="")
    iban: Mapped[str] = mapped_column(String(34), default="")
    bic: Mapped[str] = mapped_column(String(11), default="")
    early_payment_discount: Mapped[str] = mapped_column(String(200), default="néant")
    late_penalty_rate: Mapped[str] = mapped_column(
        String(200), default="trois fois le taux d'intérêt légal"
    )
    operation_category: Mapped[str] = mapped_column(String(20), default="services")
    # « Option pour le paiement de la taxe d'après les débits » (CGI art. 269, 2-c): a seller of
    # services who opted pays VAT at invoicing, not at payment, and its invoices must say so.
    vat_on_debits: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    quote_validity_days: Mapped[int] = mapped_column(Integer, default=30)

    def __str__(self) -> str:
        return self.company_name or "Paramètres vendeur"


class SubmittedForm(db.Model):
    """Tokens of forms already submitted: a double submit of a OnceForm is refused by this key."""

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# --- Card payments (Stripe) -------------------------------------------------------------------


class StripePaymentIntent(db.Model):
    """A PaymentIntent the portal created for an invoice, one per attempt: how the return page,
    the webhook and `flask payments reconcile` know which intents belong to which invoice."""

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    intent_id: Mapped[str] = mapped_column(String(255), unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # The last status read from the Stripe API (never from a webhook, which may be stale).
    status: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    invoice: Mapped[Invoice] = relationship()

    __table_args__ = (UniqueConstraint("invoice_id", "attempt"),)

    def __str__(self) -> str:
        return self.intent_id


class ProcessedStripeEvent(db.Model):
    """A Stripe event already handled: a second delivery of the same event id changes nothing."""

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    event_type: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PaymentAnomalyKind(enum.StrEnum):
    AMOUNT_MISMATCH = "amount_mismatch"
    UNKNOWN_INVOICE = "unknown_invoice"
    WRONG_INVOICE = "wrong_invoice"
    UNKNOWN_INTENT = "unknown_intent"
    NOT_PAYABLE = "not_payable"


class PaymentAnomaly(db.Model):
    """A card payment Stripe reports as succeeded that the portal refused to record: staff check it
    (and refund or record it by hand). One row per intent and kind, however often it is reported."""

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[PaymentAnomalyKind] = mapped_column(_enum(PaymentAnomalyKind))
    intent_id: Mapped[str] = mapped_column(String(255))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoice.id"), index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    event_id: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    invoice: Mapped[Invoice | None] = relationship()

    __table_args__ = (UniqueConstraint("intent_id", "kind"),)

    def __str__(self) -> str:
        return f"{self.kind.value} {self.intent_id}"


class WebhookEndpoint(db.Model):
    """An address of the platform that receives the events of `event_types`, signed with `secret`.

    The secret is kept in clear: it signs every delivery (HMAC), so it cannot be a hash. It is shown
    once, when created or rotated; after a rotation the previous one still signs for 24 hours."""

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(200))
    # Space-separated event types, e.g. "quote.accepted invoice.paid".
    event_types: Mapped[str] = mapped_column(String(1000))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    created_by: Mapped[User | None] = relationship()

    @property
    def event_type_list(self) -> list[str]:
        return self.event_types.split()

    def __str__(self) -> str:
        return self.url


class Event(db.Model):
    """Something that happened, told to the platform's webhook endpoints. Written in the transaction
    of the change it tells, with the exact JSON body every delivery sends (signed as it is stored)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(50))
    # None for the test events sent from the back office.
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    sequence: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    organisation: Mapped[Organisation | None] = relationship()

    __table_args__ = (UniqueConstraint("organisation_id", "sequence"),)

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"


class WebhookDelivery(db.Model):
    """One event for one endpoint: delivered at most once (unique pair), retried until it is."""

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoint.id"), index=True)
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)

    event: Mapped[Event] = relationship()
    endpoint: Mapped[WebhookEndpoint] = relationship()
    attempt_log: Mapped[list[WebhookAttempt]] = relationship(
        back_populates="delivery", order_by="WebhookAttempt.id")

    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        Index("ix_webhook_delivery_status_next", "status", "next_attempt_at"),
    )


class WebhookAttempt(db.Model):
    """One try of a delivery: the answer's status code, how long it took, its first characters."""

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_delivery.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)

    delivery: Mapped[WebhookDelivery] = relationship(back_populates="attempt_log")
