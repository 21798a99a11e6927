"""Demo data for `flask demo load`: built through the domain functions, like real use."""

from __future__ import annotations

from datetime import timedelta

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

ORGANISATIONS = [
    # name, slug, billing mode, mandate, SIREN, city
    ("Atelier Dupont SARL", "dupont", BillingMode.PER_ORDER, False, "552100554", "Lyon"),
    ("Boulangeries Martin SAS", "martin", BillingMode.MONTHLY, False, "732829320", "Nantes"),
    ("Cabinet Lefèvre & Associés", "lefevre", BillingMode.PER_ORDER, True, "480521996", "Lille"),
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

CGV_BODY = """Conditions Générales de Vente — version 2026-01

1. Objet. Les présentes conditions régissent les ventes de produits et services conclues
sur devis entre le vendeur et ses clients professionnels.
2. Devis. Un devis est valable jusqu'à sa date de validité. Sa validation en ligne vaut
commande ferme aux prix, quantités et conditions qu'il indique.
3. Facturation. Selon le mode convenu, la facture est émise à la validation du devis (facturation
à la commande) ou au début du mois suivant (facturation consolidée mensuelle).
4. Paiement. Les factures sont payables à l'échéance indiquée. Tout retard entraîne des
pénalités au taux de trois fois le taux d'intérêt légal et une indemnité forfaitaire pour frais
de recouvrement de 40 €.
5. Crédits. Les crédits achetés sont attribués à l'organisation cliente et ne sont pas
remboursables.
"""


def load_demo() -> bool:
    """Load the demo data; returns False (and changes nothing) if it is already there."""
    if db.session.scalar(select(User.id).where(User.email == ADMIN_EMAIL)) is not None:
        return False
    _seller_settings()
    admin = _staff(ADMIN_EMAIL, "Claire Admin", StaffRole.ADMIN)
    _staff("commercial@portail-devis.fr", "Hugo Commercial", StaffRole.SALES)
    products = {sku: _product(sku, *rest) for sku, *rest in PRODUCTS}
    terms = TermsVersion(version_label="2026-01", body=CGV_BODY)
    db.session.add(terms)
    db.session.flush()
    quotes.publish_terms(terms, actor=admin, now=utcnow() - timedelta(days=90))
    organisations = {slug: _organisation(name, slug, mode, mandate, siren, city)
                     for name, slug, mode, mandate, siren, city in ORGANISATIONS}
    _quotes(admin, organisations, products, terms)
    return True


def _seller_settings() -> None:
    db.session.add(SellerSettings(
        id=1, company_name="Portail Devis Démo", legal_form="SAS", share_capital="50 000 €",
        address_line1="12 rue de la République", postal_code="69002", city="Lyon",
        siren="912345675", rcs_city="Lyon", vat_number="FR65912345675",
        email="facturation@portail-devis.fr", phone="04 72 00 00 00",
        iban="FR7630006000011234567890189", bic="AGRIFRPP",
    ))


def _staff(email: str, name: str, role: StaffRole) -> User:
    user = User(email=email, full_name=name, kind=UserKind.STAFF, staff_role=role,
                password_hash=hash_password(DEMO_STAFF_PASSWORD))
    db.session.add(user)
    db.session.flush()
    return user


def _product(sku: str, name: str, price: int, vat: int, credits: int, published: bool) -> Product:
    product = Product(sku=sku, name=name, unit_price_cents=price, vat_rate_bp=vat,
                      credits_per_unit=credits, published=published)
    db.session.add(product)
    return product


def _organisation(name: str, slug: str, mode: BillingMode, mandate: bool, siren: str,
                  city: str) -> Organisation:
    organisation = Organisation(
        name=name, legal_form="SAS", siren=siren, siret=_first_siret(siren),
        vat_number=f"FR{(12 + 3 * (int(siren) % 97)) % 97:02d}{siren}",
        address_line1="1 place de la Mairie", postal_code="69001", city=city,
        billing_mode=mode, payment_terms_days=30,
        # The example platform (examples/host_platform) finds its accounts' organisations by it.
        external_id=f"compte-{slug}",
    )
    db.session.add(organisation)
    for role in ClientRole:
        db.session.add(User(
            email=f"{role.value}@{slug}.example", full_name=f"{role.value.capitalize()} {name.split()[0]}",
            kind=UserKind.CLIENT, client_role=role, organisation=organisation,
            password_hash=hash_password(DEMO_CLIENT_PASSWORD),
        ))
    db.session.flush()
    if mandate:
        quotes.set_mandate(organisation, allowed=True, actor=_member(organisation, ClientRole.RESPONSABLE))
    return organisation


def _first_siret(siren: str) -> str:
    """The SIRET of the establishment numbered 0001 (its last digit the Luhn key)."""
    return next(siret for siret in (f"{siren}0001{key}" for key in range(10)) if validation.luhn_valid(siret))


def _member(organisation: Organisation, role: ClientRole) -> User:
    return next(user for user in organisation.users if user.client_role == role)


def _quotes(admin: User, orgs: dict[str, Organisation], products: dict[str, Product],
            terms: TermsVersion) -> None:
    now = utcnow()
    dupont, martin, lefevre = orgs["dupont"], orgs["martin"], orgs["lefevre"]

    def sent(org: Organisation, lines: list[LineInput], *, when=now, title: str = "") -> object:
        quote = quotes.create_draft(organisation=org, actor=admin, lines=lines, title=title,
                                    recipient=_member(org, ClientRole.GESTIONNAIRE))
        return quotes.send(quote, actor=admin, now=when)

    pack100 = LineInput(product_id=products["PACK-100"].id, quantity=2)
    pack500 = LineInput(product_id=products["PACK-500"].id, quantity=1)
    audit_line = LineInput(product_id=products["AUDIT-SUR-MESURE"].id, quantity=1)
    training = LineInput(product_id=products["FORM-J"].id, quantity=2)

    quotes.create_draft(organisation=dupont, actor=admin, lines=[training], title="Formation équipe",
                        recipient=_member(dupont, ClientRole.RESPONSABLE))
    sent(dupont, [pack500, training], title="Crédits et formation")
    sent(lefevre, [audit_line], title="Audit annuel")
    paid = sent(dupont, [pack100], title="Recharge de crédits")
    quotes.accept(paid, actor=_member(dupont, ClientRole.GESTIONNAIRE), terms_version=terms,
                  channel=Channel.PORTAL, ip="127.0.0.1")
    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == paid.id))
    billing.record_payment(invoice, provider=PaymentProvider.BANK_TRANSFER,
                           provider_reference=f"VIR-{invoice.number}",
                           amount_cents=invoice.total_ttc_cents, currency="EUR", actor=admin)
    unpaid = sent(lefevre, [pack100, LineInput(label="Frais de mise en service", quantity=1,
                                                unit_price_cents=15000, vat_rate_bp=2000)])
    quotes.accept(unpaid, actor=admin, terms_version=terms, channel=Channel.BACK_OFFICE)
    refused = sent(dupont, [audit_line], title="Audit initial")
    quotes.refuse(refused, actor=_member(dupont, ClientRole.RESPONSABLE), terms_version=terms,
                  channel=Channel.PORTAL, reason="Budget reporté à l'an prochain.")
    sent(martin, [pack500], when=now - timedelta(days=45), title="Offre expirée")
    quote_expiry.expire_overdue(now=now)
    cancelled = sent(martin, [training], title="Formation annulée")
    quotes.cancel(cancelled, actor=admin)
    original = sent(martin, [pack100], title="Crédits boulangeries")
    revision = quotes.revise(original, actor=admin)
    quotes.update_draft(revision, actor=admin, lines=[LineInput(product_id=products["PACK-100"].id,
                                                                quantity=3)])
    quotes.send(revision, actor=admin)
    last_month = now.replace(day=1) - timedelta(days=3)
    for quantity in (1, 2):
        monthly = sent(martin, [LineInput(product_id=products["PACK-100"].id, quantity=quantity)],
                       when=last_month - timedelta(days=5), title="Recharge mensuelle")
        quotes.accept(monthly, actor=_member(martin, ClientRole.GESTIONNAIRE), terms_version=terms,
                      channel=Channel.EMAIL_LINK, now=last_month)
    quote_requests.create_request(organisation=martin, requester=_member(martin, ClientRole.MEMBRE),
                                  items=[(products["PACK-500"].id, 2)],
                                  message="Bonjour, pourriez-vous nous faire une offre pour 1 000 crédits ?")
