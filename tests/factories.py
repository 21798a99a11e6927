"""Factories with sensible defaults and `**overrides`; they flush, tests commit when they need to."""

from __future__ import annotations

import itertools
from datetime import datetime

from portal import quotes, validation
from portal.extensions import db
from portal.models import (
    BillingMode,
    ClientRole,
    Organisation,
    Product,
    Quote,
    SellerSettings,
    StaffRole,
    TermsVersion,
    User,
    UserKind,
    WebhookEndpoint,
)
from portal.quotes import LineInput

_sequence = itertools.count(1)


def _next() -> int:
    return next(_sequence)


def siren(n: int) -> str:
    """A valid SIREN (Luhn key) made of `n`: distinct for distinct n < 10**8."""
    base = f"{n:08d}"
    return next(f"{base}{key}" for key in range(10) if validation.luhn_valid(f"{base}{key}"))


def seller_settings(**overrides) -> SellerSettings:
    values = dict(
        id=1, company_name="Vendeur Test", legal_form="SAS", share_capital="10 000 €",
        address_line1="1 rue du Test", postal_code="75001", city="Paris", siren="123456789",
        rcs_city="Paris", vat_number="FR32123456789", iban="FR7630006000011234567890189",
        bic="AGRIFRPP", email="facturation@vendeur.test",
    )
    values.update(overrides)
    settings = SellerSettings(**values)
    db.session.add(settings)
    db.session.flush()
    return settings


def organisation(**overrides) -> Organisation:
    n = _next()
    values = dict(name=f"Organisation {n}", siren=siren(n), legal_form="SARL",
                  address_line1="2 avenue Client", postal_code="69001", city="Lyon",
                  billing_mode=BillingMode.PER_ORDER, payment_terms_days=30)
    values.update(overrides)
    org = Organisation(**values)
    db.session.add(org)
    db.session.flush()
    return org


def client_user(org: Organisation, role: ClientRole = ClientRole.GESTIONNAIRE, **overrides) -> User:
    n = _next()
    values = dict(email=f"client{n}@example.test", full_name=f"Client {n}", kind=UserKind.CLIENT,
                  client_role=role, organisation=org)
    values.update(overrides)
    user = User(**values)
    db.session.add(user)
    db.session.flush()
    return user


def staff(role: StaffRole = StaffRole.SALES, **overrides) -> User:
    n = _next()
    values = dict(email=f"staff{n}@vendeur.test", full_name=f"Staff {n}", kind=UserKind.STAFF,
                  staff_role=role)
    values.update(overrides)
    user = User(**values)
    db.session.add(user)
    db.session.flush()
    return user


def product(**overrides) -> Product:
    n = _next()
    values = dict(sku=f"SKU-{n}", name=f"Produit {n}", unit_price_cents=10000, vat_rate_bp=2000,
                  credits_per_unit=10, published=True)
    values.update(overrides)
    item = Product(**values)
    db.session.add(item)
    db.session.flush()
    return item


def terms(actor: User | None = None, publish: bool = True, **overrides) -> TermsVersion:
    n = _next()
    values = dict(version_label=f"v{n}", body=f"Conditions Générales de Vente, version {n}.")
    values.update(overrides)
    version = TermsVersion(**values)
    db.session.add(version)
    db.session.flush()
    if publish:
        quotes.publish_terms(version, actor=actor or staff())
    return version


def sent_quote(
    org: Organisation | None = None,
    *,
    actor: User | None = None,
    recipient: User | None = None,
    lines: list[LineInput] | None = None,
    now: datetime | None = None,
) -> Quote:
    """A sent quote with one product line (2 × 100,00 € HT, 20 % VAT, 10 credits a unit)."""
    org = org or organisation()
    actor = actor or staff()
    recipient = recipient or client_user(org)
    if lines is None:
        lines = [LineInput(product_id=product().id, quantity=2)]
    quote = quotes.create_draft(organisation=org, actor=actor, recipient=recipient, lines=lines)
    return quotes.send(quote, actor=actor, now=now)


def webhook_endpoint(url: str = "https://plateforme.example/webhooks/portail",
                     event_types: list[str] | None = None, **overrides) -> WebhookEndpoint:
    """An enabled endpoint subscribed to `event_types` (default: every type), secret `whsec_test_<n>`."""
    from portal import events

    values = dict(url=url, event_types=" ".join(event_types or events.EVENT_TYPES),
                  enabled=True, secret=f"whsec_test_{_next()}")
    values.update(overrides)
    endpoint = WebhookEndpoint(**values)
    db.session.add(endpoint)
    db.session.flush()
    return endpoint


def world(billing_mode: BillingMode = BillingMode.PER_ORDER, mandate: bool = False) -> dict:
    """Seller settings, a published CGV, an organisation with one user of each role, a sent quote."""
    if db.session.get(SellerSettings, 1) is None:
        seller_settings()
    admin = staff(StaffRole.ADMIN)
    cgv = terms(actor=admin)
    org = organisation(billing_mode=billing_mode)
    users = {role: client_user(org, role) for role in ClientRole}
    if mandate:
        quotes.set_mandate(org, allowed=True, actor=users[ClientRole.RESPONSABLE])
    quote = sent_quote(org, actor=admin, recipient=users[ClientRole.GESTIONNAIRE])
    return {"admin": admin, "terms": cgv, "org": org, "users": users, "quote": quote}
