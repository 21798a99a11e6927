"""Demo data for `flask demo load`: built through the domain functions, like real use.

The data tells one story, dated back from the day it is loaded: the seller opens its portal, writes
then publishes its CGV (version 2026-01, in January 2026); its three clients join some four months
before the load, then order, pay, refuse, let an offer expire, accept on the monthly billing or
under a mandate. The steps run in date order, so quote and invoice numbers follow their dates; the
quotes awaiting a decision were sent in the last day, so their emails' links (valid 72 hours) still
open them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from typing import NamedTuple

from sqlalchemy import select

from . import billing, quote_expiry, quote_requests, quotes, validation
from .auth import hash_password
from .extensions import db
from .models import (
    BillingMode,
    Channel,
    ClientRole,
    Invoice,
    Organisation,
    PaymentProvider,
    Product,
    Quote,
    SellerSettings,
    StaffRole,
    TermsVersion,
    User,
    UserKind,
    utcnow,
)
from .quotes import LineInput

ADMIN_EMAIL = "admin@portail-devis.fr"
DEMO_STAFF_PASSWORD = "demo-admin-2026"
DEMO_CLIENT_PASSWORD = "demo-client-2026"

# Addresses reserved for documentation (RFC 5737): the clients' browsers in the decisions' evidence.
CLIENT_IPS = {"dupont": "203.0.113.24", "martin": "198.51.100.7", "lefevre": "192.0.2.45"}
# How the client asked staff to validate on its behalf (the note staff write, kept in the evidence).
ON_BEHALF_NOTE = "Demande par téléphone du responsable du cabinet, confirmée par email le jour même"


class DemoOrganisation(NamedTuple):
    name: str
    slug: str  # its users' email domain, and its external_id (compte-<slug>)
    legal_form: str
    billing_mode: BillingMode
    mandate: bool
    siren: str
    street: str
    postal_code: str
    city: str
    joined_days_ago: int


ORGANISATIONS = [
    DemoOrganisation("Atelier Dupont SARL", "dupont", "SARL", BillingMode.PER_ORDER, False, "552100554",
                     "27 rue Paul Bert", "69003", "Lyon", 120),
    DemoOrganisation("Boulangeries Martin SAS", "martin", "SAS", BillingMode.MONTHLY, False, "732829320",
                     "8 quai de la Fosse", "44000", "Nantes", 110),
    DemoOrganisation("Cabinet Lefèvre & Associés", "lefevre", "SELARL", BillingMode.PER_ORDER, True,
                     "480521996", "41 rue Nationale", "59000", "Lille", 100),
]

PRODUCTS = [
    # sku, name, price in cents, VAT (bp), credits per unit, published
    ("PACK-100", "Pack 100 crédits d'analyse", 9000, 2000, 100, True),
    ("PACK-500", "Pack 500 crédits d'analyse", 40000, 2000, 500, True),
    ("ABO-PRO", "Abonnement Pro (mensuel)", 4900, 2000, 0, True),
    ("FORM-J", "Journée de formation", 120000, 2000, 0, True),
    ("AUDIT-SUR-MESURE", "Audit sur mesure", 350000, 2000, 0, False),
    ("PACK-ENTREPRISE", "Pack Entreprise 5 000 crédits", 350000, 2000, 5000, False),
]

CGV_LABEL = "2026-01"
CGV_PUBLISHED = datetime(2026, 1, 15, 9, 0)  # its label's month (UTC, naive as every stored date)

# One clause a line: the portal shows the text as written (a line break is a new line).
CGV_BODY = "\n".join([
    "Conditions Générales de Vente — version 2026-01",
    "",
    "1. Objet. Les présentes conditions régissent les ventes de produits et services conclues sur "
        "devis entre le vendeur et ses clients professionnels.",
    "2. Devis. Un devis est valable jusqu'à sa date de validité. Sa validation en ligne vaut "
        "commande ferme aux prix, quantités et conditions qu'il indique.",
    "3. Facturation. Selon le mode convenu, la facture est émise à la validation du devis "
        "(facturation à la commande) ou au début du mois suivant (facturation consolidée mensuelle).",
    "4. Paiement. Les factures sont payables à l'échéance indiquée. Tout retard entraîne des "
        "pénalités au taux de trois fois le taux d'intérêt légal et une indemnité forfaitaire pour frais "
        "de recouvrement de 40 €.",
    "5. Crédits. Les crédits achetés sont attribués à l'organisation cliente et ne sont pas "
        "remboursables.",
]) + "\n"


def load_demo() -> bool:
    """Load the demo data; returns False (and changes nothing) if it is already there."""
    if db.session.scalar(select(User.id).where(User.email == ADMIN_EMAIL)) is not None:
        return False
    story = Story(utcnow())
    _opening(story)
    _organisations(story)
    _quotes(story)
    story.play()
    return True


class Story:
    """The demo's steps, each at its date, played in date order (steps of one date in the order
    they were written), so that every number (DV-, FA-) follows the dates."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.steps: list[tuple[datetime, int, Callable[[datetime], object]]] = []
        self.admin: User | None = None
        self.products: dict[str, Product] = {}
        self.terms: TermsVersion | None = None
        self.organisations: dict[str, Organisation] = {}
        self.quotes: dict[str, Quote] = {}
        self.slugs: dict[str, str] = {}  # each quote's organisation

    def ago(self, days: float = 0, hours: float = 0) -> datetime:
        return self.now - timedelta(days=days, hours=hours)

    def at(self, when: datetime, step: Callable[[datetime], object]) -> None:
        self.steps.append((when, len(self.steps), step))

    def play(self) -> None:
        for when, _order, step in sorted(self.steps, key=lambda item: item[:2]):
            step(when)

    def member(self, slug: str, role: ClientRole) -> User:
        return next(user for user in self.organisations[slug].users if user.client_role == role)

    def lines(self, items: list[tuple[str, int]]) -> list[LineInput]:
        return [LineInput(product_id=self.products[sku].id, quantity=quantity) for sku, quantity in items]

    def quote(self, key: str, slug: str, title: str, items: list[tuple[str, int]], *, created: datetime,
              sent: datetime | None = None, extra: tuple[LineInput, ...] = (),
              recipient: ClientRole = ClientRole.GESTIONNAIRE) -> None:
        """A draft written on `created`, and sent on `sent` if given."""
        def draft(when: datetime) -> None:
            quote = quotes.create_draft(organisation=self.organisations[slug], actor=self.admin,
                                        lines=[*self.lines(items), *extra], title=title,
                                        recipient=self.member(slug, recipient))
            quote.created_at = when
            self.quotes[key] = quote

        self.slugs[key] = slug
        self.at(created, draft)
        if sent is not None:
            self.at(sent, lambda when: quotes.send(self.quotes[key], actor=self.admin, now=when))

    def accept(self, key: str, when: datetime, *, by: ClientRole | None, channel: Channel) -> None:
        """The quote accepted by its organisation's `by`, or by staff under the mandate (None)."""
        def step(now: datetime) -> None:
            slug = self.slugs[key]
            actor = self.admin if by is None else self.member(slug, by)
            ip = CLIENT_IPS[slug] if channel == Channel.PORTAL else None
            quotes.accept(self.quotes[key], actor=actor, terms_version=self.terms, channel=channel,
                          ip=ip, now=now, note=ON_BEHALF_NOTE if by is None else None)

        self.at(when, step)


# --- The seller, its catalogue and its CGV ------------------------------------------------------


def _opening(story: Story) -> None:
    published = min(CGV_PUBLISHED, story.ago(days=90))
    story.at(published - timedelta(days=20), lambda when: _seller(story, when))
    story.at(published - timedelta(days=10), lambda when: _write_terms(story, when))
    story.at(published, lambda when: quotes.publish_terms(story.terms, actor=story.admin, now=when))


def _seller(story: Story, when: datetime) -> None:
    """The seller's identity, its two staff accounts and its catalogue."""
    db.session.add(SellerSettings(
        id=1, company_name="Portail Devis Démo", legal_form="SAS", share_capital="50 000 €",
        address_line1="12 rue de la République", postal_code="69002", city="Lyon",
        siren="912345675", rcs_city="Lyon", vat_number="FR65912345675",
        email="facturation@portail-devis.fr", phone="04 72 00 00 00",
        iban="FR7630006000011234567890189", bic="AGRIFRPP",
    ))
    story.admin = _staff(ADMIN_EMAIL, "Claire Admin", StaffRole.ADMIN, when)
    _staff("commercial@portail-devis.fr", "Hugo Commercial", StaffRole.SALES, when)
    story.products = {sku: _product(sku, *rest) for sku, *rest in PRODUCTS}
    db.session.flush()


def _write_terms(story: Story, when: datetime) -> None:
    """The CGV written as a draft, published ten days later."""
    story.terms = TermsVersion(version_label=CGV_LABEL, body=CGV_BODY, created_at=when)
    db.session.add(story.terms)
    db.session.flush()


def _staff(email: str, name: str, role: StaffRole, when: datetime) -> User:
    user = User(email=email, full_name=name, kind=UserKind.STAFF, staff_role=role,
                password_hash=_hashed(DEMO_STAFF_PASSWORD), created_at=when)
    db.session.add(user)
    db.session.flush()
    return user


@cache
def _hashed(password: str) -> str:
    """One Argon2 hash per demo password, shared by the accounts that use it (each takes ~0.4 s)."""
    return hash_password(password)


def _product(sku: str, name: str, price: int, vat: int, credits: int, published: bool) -> Product:
    product = Product(sku=sku, name=name, unit_price_cents=price, vat_rate_bp=vat,
                      credits_per_unit=credits, published=published)
    db.session.add(product)
    return product


# --- The clients -------------------------------------------------------------------------------


def _organisations(story: Story) -> None:
    for demo in ORGANISATIONS:
        joined = story.ago(days=demo.joined_days_ago)
        story.at(joined, lambda when, demo=demo: _organisation(story, demo, when))
        if demo.mandate:  # granted by its responsable a few days after joining
            story.at(joined + timedelta(days=5), lambda when, slug=demo.slug: quotes.set_mandate(
                story.organisations[slug], allowed=True, actor=story.member(slug, ClientRole.RESPONSABLE),
                now=when))


def _organisation(story: Story, demo: DemoOrganisation, when: datetime) -> None:
    organisation = Organisation(
        name=demo.name, legal_form=demo.legal_form, siren=demo.siren, siret=_first_siret(demo.siren),
        vat_number=f"FR{(12 + 3 * (int(demo.siren) % 97)) % 97:02d}{demo.siren}",
        address_line1=demo.street, postal_code=demo.postal_code, city=demo.city,
        billing_mode=demo.billing_mode, payment_terms_days=30, created_at=when,
        # The example platform (examples/host_platform) finds its accounts' organisations by it.
        external_id=f"compte-{demo.slug}",
    )
    db.session.add(organisation)
    for role in ClientRole:
        db.session.add(User(
            email=f"{role.value}@{demo.slug}.example",
            full_name=f"{role.value.capitalize()} {demo.name.split()[0]}",
            kind=UserKind.CLIENT, client_role=role, organisation=organisation, created_at=when,
            password_hash=_hashed(DEMO_CLIENT_PASSWORD),
        ))
    db.session.flush()
    story.organisations[demo.slug] = organisation


def _first_siret(siren: str) -> str:
    """The SIRET of the establishment numbered 0001 (its last digit the Luhn key)."""
    return next(siret for siret in (f"{siren}0001{key}" for key in range(10)) if validation.luhn_valid(siret))


# --- Their quotes ------------------------------------------------------------------------------


def _quotes(story: Story) -> None:
    _dupont(story)
    _martin(story)
    _lefevre(story)


def _dupont(story: Story) -> None:
    """Per order: credits bought and paid by transfer, an audit refused, an offer awaiting, a draft."""
    ago = story.ago
    story.quote("recharge", "dupont", "Recharge de crédits", [("PACK-100", 2)],
                created=ago(days=42), sent=ago(days=41))
    story.accept("recharge", ago(days=40), by=ClientRole.GESTIONNAIRE, channel=Channel.PORTAL)
    story.at(ago(days=33), lambda when: _paid_by_transfer(story, story.quotes["recharge"], when))
    story.quote("audit-initial", "dupont", "Audit initial", [("AUDIT-SUR-MESURE", 1)],
                created=ago(days=36), sent=ago(days=35))
    story.at(ago(days=28), lambda when: quotes.refuse(
        story.quotes["audit-initial"], actor=story.member("dupont", ClientRole.RESPONSABLE),
        terms_version=story.terms, channel=Channel.PORTAL, ip=CLIENT_IPS["dupont"],
        reason="Budget reporté à l'an prochain.", now=when))
    story.quote("credits-formation", "dupont", "Crédits et formation", [("PACK-500", 1), ("FORM-J", 2)],
                created=ago(days=2), sent=ago(days=1))
    story.quote("formation-equipe", "dupont", "Formation équipe", [("FORM-J", 2)],
                created=ago(hours=3), recipient=ClientRole.RESPONSABLE)


def _martin(story: Story) -> None:
    """Monthly billing: two quotes accepted last month (to invoice at the close), an offer expired,
    one cancelled, one revised and awaiting, and a request from a member."""
    ago = story.ago
    story.quote("automne", "martin", "Offre d'automne", [("PACK-500", 1)],
                created=ago(days=47), sent=ago(days=46))
    # The expiry job's pass the day after that offer's validity date (30 days).
    story.at(ago(days=15), lambda when: quote_expiry.expire_overdue(now=when))
    last_month = story.now.replace(day=1, hour=10, minute=0, second=0, microsecond=0) - timedelta(days=3)
    for key, title, quantity, sent_before in (("mensuelle", "Recharge mensuelle", 1, 9),
                                              ("complement", "Recharge complémentaire", 2, 4)):
        story.quote(key, "martin", title, [("PACK-100", quantity)],
                    created=last_month - timedelta(days=sent_before + 1),
                    sent=last_month - timedelta(days=sent_before))
        story.accept(key, last_month - timedelta(days=sent_before - 2), by=ClientRole.GESTIONNAIRE,
                     channel=Channel.EMAIL_LINK)
    story.quote("formations", "martin", "Journées de formation", [("FORM-J", 1)],
                created=ago(days=26), sent=ago(days=25))
    story.at(ago(days=22), lambda when: quotes.cancel(story.quotes["formations"], actor=story.admin))
    story.quote("credits", "martin", "Crédits boulangeries", [("PACK-100", 1)],
                created=ago(days=6), sent=ago(days=5))
    story.at(ago(days=1), lambda when: _revised(story, "credits", when))
    story.at(ago(hours=3), lambda when: quotes.send(story.quotes["credits-r2"], actor=story.admin, now=when))
    story.at(ago(hours=2), lambda when: _request(story, when))


def _lefevre(story: Story) -> None:
    """Per order, mandate given: a quote validated by staff on its behalf (unpaid), one awaiting."""
    ago = story.ago
    setup = LineInput(label="Frais de mise en service", quantity=1, unit_price_cents=15000, vat_rate_bp=2000)
    story.quote("mise-en-service", "lefevre", "Mise en service et crédits", [("PACK-100", 1)],
                extra=(setup,), created=ago(days=16), sent=ago(days=15))
    story.accept("mise-en-service", ago(days=12), by=None, channel=Channel.BACK_OFFICE)
    story.quote("audit-annuel", "lefevre", "Audit annuel", [("AUDIT-SUR-MESURE", 1)],
                created=ago(days=3), sent=ago(hours=20))


def _paid_by_transfer(story: Story, quote: Quote, when: datetime) -> None:
    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))
    billing.record_payment(invoice, provider=PaymentProvider.BANK_TRANSFER,
                           provider_reference=f"VIR-{invoice.number}", amount_cents=invoice.total_ttc_cents,
                           currency="EUR", actor=story.admin, now=when)


def _revised(story: Story, key: str, when: datetime) -> None:
    """A revision of a sent quote, with three packs instead of one (sent later)."""
    revision = quotes.revise(story.quotes[key], actor=story.admin)
    quotes.update_draft(revision, actor=story.admin, lines=story.lines([("PACK-100", 3)]))
    revision.created_at = when
    story.quotes[f"{key}-r2"] = revision
    story.slugs[f"{key}-r2"] = story.slugs[key]


def _request(story: Story, when: datetime) -> None:
    request = quote_requests.create_request(
        organisation=story.organisations["martin"], requester=story.member("martin", ClientRole.MEMBRE),
        items=[(story.products["PACK-500"].id, 2)],
        message="Bonjour, pourriez-vous nous faire une offre pour 1 000 crédits ?")
    request.created_at = when
