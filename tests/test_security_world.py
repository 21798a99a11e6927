"""The data the security tests run against: two complete per-order organisations ("mine" and
"theirs") and a monthly one, with an object of every kind a route can name, and a chosen text in
every field a user types. The test below keeps the list of those fields complete."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from sqlalchemy import Enum, String, Text, select

from portal import accounts, api_keys, billing, credits, monthly, outbox, quote_expiry, quote_requests, quotes
from portal.dates import period_bounds
from portal.delivery import emails
from portal.extensions import db
from portal.models import (
    ApiKey,
    BillingMode,
    Channel,
    ClientRole,
    CreditEntry,
    Invoice,
    Organisation,
    OutboxEmail,
    PaymentProvider,
    Product,
    QuoteRequest,
    SellerSettings,
    StaffRole,
    TermsVersion,
    User,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from portal.quotes import LineInput

from . import factories

PAYLOAD = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'

# Every text column a person types (staff or client), shown back in pages, emails or PDFs.
USER_TEXT_FIELDS = {
    "organisation": {"name", "legal_form", "address_line1", "address_line2", "city", "billing_email"},
    "user": {"full_name"},
    "product": {"sku", "name", "description"},
    "terms_version": {"version_label", "body"},
    "quote": {"title"},
    "quote_line": {"label"},
    "decision": {"reason", "user_agent", "on_behalf_note"},
    "quote_request": {"message", "decline_reason"},
    "invoice": {"reason"},
    "invoice_line": {"label"},
    "payment": {"provider_reference"},
    "invoice_lifecycle_event": {"note"},  # the payment's reference, or what staff wrote
    "credit_entry": {"reason", "external_reference"},
    "api_key": {"name"},
    "webhook_endpoint": {"url", "description"},
    # What the platform's server answered a delivery: not typed by our users, but not ours either.
    "webhook_attempt": {"response_excerpt"},
    "seller_settings": {"company_name", "legal_form", "share_capital", "address_line1", "address_line2",
                        "city", "rcs_city", "phone", "early_payment_discount", "late_penalty_rate"},
}
# Text columns nobody types freely: validated formats, numbers, hashes, system or Stripe values.
SYSTEM_TEXT_FIELDS = {
    # folded_name and email_domain: search keys the model derives from the name and the email,
    # never shown; language: a code chosen by a button (fr, en).
    "organisation": {"siren", "siret", "vat_number", "postal_code", "country", "external_id", "folded_name"},
    "user": {"email", "password_hash", "language", "email_domain"},
    "terms_version": {"sha256"},
    "quote": {"number", "billing_period"},
    "decision": {"terms_sha256", "quote_sha256", "ip", "actor_role"},
    "number_counter": {"series"},
    "invoice": {"number", "billing_period", "currency", "pdf_sha256"},
    "quote_document": {"state_key", "pdf_sha256"},
    "invoice_document": {"state_key", "pdf_sha256"},
    "monthly_close_job": {"period", "error"},
    "payment": {"currency"},
    "outbox_email": {"recipient", "template", "dedupe_key", "last_error"},
    "audit_event": {"action", "object_type", "ip"},
    "login_token": {"token_hash", "purpose", "next_path"},
    "api_key": {"prefix", "secret_hash", "scopes"},
    "event": {"public_id", "type", "body"},
    "webhook_delivery": {"last_error"},
    "webhook_endpoint": {"event_types", "secret", "previous_secret"},
    "webhook_attempt": {"error"},
    "api_idempotency_key": {"key", "request_hash", "response_body"},
    "seller_settings": {"postal_code", "country", "siren", "vat_number", "email", "iban", "bic",
                        "operation_category"},
    "submitted_form": {"token"},
    "processed_stripe_event": {"event_id", "event_type", "outcome"},
    "payment_anomaly": {"intent_id", "currency", "event_id"},
    "stripe_payment_intent": {"intent_id", "currency", "status"},
}

# Email templates build_world does not produce (each says why).
EMAILS_NOT_IN_WORLD = {
    "payment_flagged",  # a staff alert about a Stripe event; tested with Stripe in its own tests
}


@dataclass
class Side:
    """One per-order organisation and an object of every kind the portal's URLs name."""

    org: object
    users: dict
    pending: object
    accepted: object
    invoice: object
    refused: object
    draft: object
    credited_invoice: object
    credit_note: object
    paid_invoice: object
    request: object
    declined_request: object
    invited: object


@dataclass
class World:
    admin: User
    sales: User
    terms: object
    product: Product
    hidden_product: Product
    mine: Side
    theirs: Side
    endpoint: WebhookEndpoint | None = None
    monthly_org: object = None
    monthly_invoice: Invoice | None = None
    text: str = ""
    emails: list = field(default_factory=list)


_unique = itertools.count(1)
SCRIPT = "<script>alert(1)</script>"  # the part of PAYLOAD that fits even the shortest field


def fit(model, column: str, value: str) -> str:
    """`value` cut to the column's length, as the forms' validators cut what users type."""
    length = getattr(model.__table__.c[column].type, "length", None)
    return value[:length] if length else value


def build_world(text: str = "") -> World:
    """Everything committed; `text` is put in every user-typed field (e.g. an XSS payload)."""
    n = next(_unique)
    factories.seller_settings(**{name: fit(SellerSettings, name, f"{text}{name}")
                                 for name in sorted(USER_TEXT_FIELDS["seller_settings"])})
    admin = factories.staff(StaffRole.ADMIN, full_name=f"{text}Admin {n}")
    sales = factories.staff(StaffRole.SALES, full_name=f"{text}Commercial {n}")
    endpoint = _webhook_endpoint(text, n)
    terms = factories.terms(actor=admin, version_label=fit(TermsVersion, "version_label", f"v{n} {text}"),
                            body=f"{text} CGV {n}")
    product = factories.product(name=f"{text}Produit {n}", sku=fit(Product, "sku", f"SKU-{n} {text}"),
                                description=f"{text}desc")
    hidden = factories.product(name=f"{text}Caché {n}", sku=fit(Product, "sku", f"HID-{n} {text}"),
                               published=False)
    world = World(admin=admin, sales=sales, terms=terms, product=product, hidden_product=hidden,
                  mine=_side(f"{text}Mine {n}", text, admin, terms, product, mandate=True),
                  theirs=_side(f"{text}Theirs {n}", text, admin, terms, product), text=text,
                  endpoint=endpoint)
    _monthly(world, text, n)
    _platform(world, text, n)
    _webhook_attempts(world, text)
    quote_expiry.remind_expiring(now=utcnow() + timedelta(days=24))
    outbox.enqueue_login_link(world.mine.users[ClientRole.MEMBRE])
    outbox.enqueue_account_locked(world.mine.users[ClientRole.GESTIONNAIRE], utcnow() + timedelta(minutes=15))
    db.session.commit()
    world.emails = db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()
    return world


def _side(name: str, text: str, admin: User, terms, product: Product, mandate: bool = False) -> Side:
    """With the `mandate`, its quote is refused by staff on the client's behalf, with their note."""
    org = factories.organisation(name=name, legal_form=fit(Organisation, "legal_form", f"{text}SARL"),
                                 address_line1=f"{text}1 rue",
                                 address_line2=f"{text}bât. B", city=f"{text}Lyon",
                                 billing_email=None)
    org.external_id = f"plateforme-{org.id}"
    users = {role: factories.client_user(org, role, full_name=f"{text}{role.value} {org.id}")
             for role in ClientRole}
    decider = users[ClientRole.GESTIONNAIRE]
    if mandate:
        quotes.set_mandate(org, allowed=True, actor=users[ClientRole.RESPONSABLE])

    def quote(**extra):
        lines = [LineInput(product_id=product.id, quantity=2),
                 LineInput(label=f"{text}ligne libre", quantity=1, unit_price_cents=5000,
                           vat_rate_bp=2000)]
        draft = quotes.create_draft(organisation=org, actor=admin, recipient=decider, lines=lines,
                                    title=f"{text}Objet", **extra)
        return draft

    pending = quotes.send(quote(), actor=admin)
    accepted = quotes.send(quote(), actor=admin)
    quotes.accept(accepted, actor=decider, terms_version=terms, channel=Channel.PORTAL,
                  user_agent=f"{text}Mozilla")
    refused = quotes.send(quote(), actor=admin)
    quotes.refuse(refused, actor=admin if mandate else decider, terms_version=terms,
                  channel=Channel.BACK_OFFICE if mandate else Channel.PORTAL, reason=f"{text}trop cher",
                  note=f"{text}demande par téléphone" if mandate else None)
    credited = quotes.send(quote(), actor=admin)
    quotes.accept(credited, actor=decider, terms_version=terms, channel=Channel.PORTAL)
    credited_invoice = _invoice_of(credited)
    credit_note = billing.issue_credit_note(credited_invoice, actor=admin, reason=f"{text}erreur")
    paid = quotes.send(quote(), actor=admin)
    quotes.accept(paid, actor=decider, terms_version=terms, channel=Channel.PORTAL)
    paid_invoice = _invoice_of(paid)
    billing.record_payment(paid_invoice, provider=PaymentProvider.BANK_TRANSFER,
                           provider_reference=f"{text}VIR-{paid_invoice.id}",
                           amount_cents=paid_invoice.total_ttc_cents, currency="EUR", actor=admin)
    credits.adjust_credits(org, 5, actor=admin, reason=f"{text}geste commercial")
    request = quote_requests.create_request(organisation=org, requester=users[ClientRole.MEMBRE],
                                            items=[(product.id, 3)], message=f"{text}message")
    declined = quote_requests.create_request(organisation=org, requester=users[ClientRole.MEMBRE],
                                             items=[(product.id, 1)], message=f"{text}autre")
    quote_requests.decline_request(declined, actor=admin, reason=f"{text}indisponible")
    answered = quote_requests.create_request(organisation=org, requester=users[ClientRole.MEMBRE],
                                             items=[(product.id, 2)], message=f"{text}réponse")
    # Its quote goes to the responsable: the membre who asked gets the request_answered email.
    quotes.send(quote_requests.answer_request(answered, actor=admin), actor=admin)
    invited = accounts.invite_client_user(organisation=org, email=f"invite{org.id}@example.test",
                                          full_name=f"{text}Invité {org.id}", role=ClientRole.MEMBRE,
                                          actor=admin)
    return Side(org=org, users=users, pending=pending, accepted=accepted, invoice=_invoice_of(accepted),
                refused=refused, draft=quote(), credited_invoice=credited_invoice,
                credit_note=credit_note, paid_invoice=paid_invoice, request=request,
                declined_request=declined, invited=invited)


def _platform(world: World, text: str, n: int) -> None:
    """The platform's key, and one consumption of ours through it, with its reference."""
    key, _secret = api_keys.create_key(fit(ApiKey, "name", f"{text}Plateforme {n}"), api_keys.SCOPES,
                                       actor=world.admin)
    credits.consume_credits(world.mine.org, 1, actor=None, api_key=key, reason=f"{text}analyse",
                            external_reference=fit(CreditEntry, "external_reference", f"{text}réf-{n}"))


def _webhook_endpoint(text: str, n: int) -> WebhookEndpoint:
    """An endpoint subscribed to every event, so that the world's actions write events."""
    description = fit(WebhookEndpoint, "description", f"{text}Plateforme {n}")
    return factories.webhook_endpoint(url=f"https://plateforme{n}.example/{text}hook",
                                      description=description)


def _webhook_attempts(world: World, text: str) -> None:
    """One failed attempt of each delivery, the platform's answer carrying `text`."""
    deliveries = db.session.scalars(select(WebhookDelivery)
                                    .where(WebhookDelivery.endpoint_id == world.endpoint.id))
    for delivery in deliveries:
        delivery.attempts = 1
        delivery.last_status_code = 500
        db.session.add(WebhookAttempt(delivery_id=delivery.id, status_code=500, duration_ms=12,
                                      response_excerpt=f"{text}Internal Server Error"))


def _invoice_of(quote) -> Invoice:
    return db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))


def _monthly(world: World, text: str, n: int) -> None:
    """A monthly organisation whose last month is closed: its consolidated invoice and email."""
    org = factories.organisation(name=f"{text}Mensuel {n}", billing_mode=BillingMode.MONTHLY,
                                 billing_email=f"{text}compta{n}@example.test")
    decider = factories.client_user(org, ClientRole.GESTIONNAIRE, full_name=f"{text}Gestionnaire mensuel")
    period = monthly.previous_period()
    first, _next = period_bounds(period)
    when = datetime.combine(first, time(10, 0))
    quote = quotes.create_draft(organisation=org, actor=world.admin, recipient=decider, title=f"{text}Mois",
                                lines=[LineInput(product_id=world.product.id, quantity=1)])
    quotes.send(quote, actor=world.admin, now=when)
    quotes.accept(quote, actor=decider, terms_version=world.terms, channel=Channel.PORTAL, now=when)
    world.monthly_org = org
    world.monthly_invoice = monthly.close_organisations_month([org.id], period, actor=world.admin)[org.id]


def database_snapshot() -> dict[str, list[tuple]]:
    """Every row of every table, in a comparable form (what a refused request must not change)."""
    db.session.expire_all()
    snapshot = {}
    with db.engine.connect() as connection:
        for table in db.metadata.sorted_tables:
            rows = connection.execute(select(table).order_by(*table.primary_key.columns)).all()
            snapshot[table.name] = [tuple(row) for row in rows]
    return snapshot


def test_the_text_fields_lists_cover_every_text_column():
    """A new text column must be classified: typed by users (then the XSS tests fill it) or not."""
    unclassified = []
    for table in db.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, String | Text) and not isinstance(column.type, Enum):
                known = USER_TEXT_FIELDS.get(table.name, set()) | SYSTEM_TEXT_FIELDS.get(table.name, set())
                if column.name not in known:
                    unclassified.append(f"{table.name}.{column.name}")
    assert not unclassified, f"classify these columns in tests/test_security_world.py: {unclassified}"


def test_the_world_has_every_kind_of_object_and_the_text_everywhere():
    world = build_world(PAYLOAD)
    assert world.monthly_invoice is not None
    templates = {email.template for email in world.emails}
    missing = set(emails._BUILDERS) - templates - EMAILS_NOT_IN_WORLD
    assert not missing, f"add an email of each template to build_world: {missing}"
    for table in db.metadata.sorted_tables:
        for column_name in USER_TEXT_FIELDS.get(table.name, ()):
            values = db.session.scalars(select(table.c[column_name])).all()
            assert any(SCRIPT in (value or "") for value in values), f"{table.name}.{column_name}"
    assert db.session.scalar(select(QuoteRequest.decline_reason).where(
        QuoteRequest.id == world.mine.declined_request.id)).startswith(PAYLOAD)
