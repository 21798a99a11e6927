"""Vocabulary and table layouts of the benchmark dataset."""

from __future__ import annotations

import random
from dataclasses import dataclass

from portal.auth import hash_password

SURNAMES = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau",
    "Laurent", "Simon", "Michel", "Lefebvre", "Leroy", "Roux", "David", "Bertrand", "Morel",
    "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent",
    "Muller", "Lefevre", "Faure", "Andre", "Mercier", "Blanc", "Guerin", "Boyer", "Garnier",
    "Chevalier", "Francois", "Legrand", "Gauthier", "Garcia", "Perrin", "Robin", "Clement",
    "Morin", "Nicolas", "Henry", "Roussel", "Mathieu", "Gautier", "Masson", "Marchand", "Duval",
    "Denis", "Dumont", "Marie", "Lemaire", "Noel", "Meyer", "Dufour", "Meunier", "Brun",
    "Blanchard", "Giraud", "Joly", "Riviere", "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud",
    "Martinez", "Gerard", "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin", "Vidal", "Caron",
    "Picard", "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas", "Lacroix", "Olivier",
    "Philippe", "Bourgeois", "Pierre", "Benoit", "Rey", "Leclerc", "Payet", "Rolland", "Leclercq",
    "Guillaume", "Lecomte", "Lopez", "Jean", "Dupuy", "Guillot", "Hubert", "Berger", "Carpentier",
    "Sanchez", "Dupuis", "Moulin", "Louis", "Deschamps", "Huet", "Vasseur", "Perez", "Boucher",
    "Fleury", "Royer", "Klein", "Jacquet", "Adam", "Paris", "Poirier", "Marty", "Aubry", "Guyot",
    "Carre", "Charles", "Renault", "Charpentier", "Menard", "Maillard", "Baron", "Bertin",
    "Bailly", "Herve", "Schneider", "Fernandez", "Le", "Collet", "Leger", "Bouvier", "Julien",
    "Prevost", "Millet", "Perrot", "Daniel", "Cousin", "Germain", "Breton", "Besson", "Langlois",
    "Remy", "Pelletier", "Leveque", "Perrier", "Leblanc", "Barre", "Lebrun", "Marchal", "Weber",
    "Mallet", "Hamon", "Boulanger", "Jacob", "Monnier", "Michaud", "Rodriguez", "Guichard",
    "Gillet", "Etienne", "Grondin", "Poulain", "Tessier", "Chevallier", "Collin", "Chauvin",
    "Bouchet", "Gay", "Lemaitre", "Benard", "Marechal", "Humbert", "Reynaud", "Antoine", "Hoarau",
    "Perret", "Barthelemy", "Cordier", "Pichon", "Lejeune", "Gilbert", "Lamy", "Delaunay",
    "Pasquier", "Carlier", "Laporte",
)
ACTIVITIES = (
    "Conseil", "Transports", "Informatique", "Bâtiment", "Boulangerie", "Imprimerie", "Logistique",
    "Menuiserie", "Architecture", "Formation", "Communication", "Électricité", "Plomberie",
    "Paysages", "Ingénierie", "Distribution", "Services", "Traiteur", "Hôtellerie", "Immobilier",
    "Assurances", "Audit", "Expertise", "Mécanique", "Textile", "Agroalimentaire", "Pharmacie",
    "Optique", "Librairie", "Sécurité", "Nettoyage", "Événementiel", "Cosmétiques", "Énergie",
    "Télécoms", "Médias", "Santé", "Sport", "Voyages", "Vins",
)
PREFIXES = ("", "", "", "Atelier ", "Cabinet ", "Groupe ", "Maison ", "Ets ", "Société ")
CITIES = ("Paris", "Lyon", "Marseille", "Toulouse", "Nice", "Nantes", "Strasbourg", "Montpellier",
          "Bordeaux", "Lille", "Rennes", "Reims", "Le Havre", "Grenoble", "Dijon", "Angers", "Nîmes",
          "Brest", "Tours", "Limoges", "Amiens", "Metz", "Besançon", "Perpignan", "Orléans", "Rouen",
          "Caen", "Nancy", "Avignon", "Poitiers")
STREETS = ("de la République", "Victor Hugo", "Jean Jaurès", "Pasteur", "des Lilas", "du Moulin",
           "de l'Église", "Nationale", "de la Gare", "du Commerce", "des Écoles", "Gambetta")
FIRST_NAMES = ("Camille", "Léa", "Manon", "Chloé", "Inès", "Sarah", "Julie", "Emma", "Claire",
               "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules", "Nathan", "Thomas", "Paul",
               "Antoine", "Nicolas", "Sophie", "Marie", "Pierre", "Anne", "Julien")
QUOTE_TITLES = ("Renouvellement annuel", "Pack de démarrage", "Extension de licence",
                "Commande de crédits", "Formation des équipes", "Offre sur mesure",
                "Abonnement trimestriel", "Complément de crédits", "")
TERMS_BODY = ("Conditions Générales de Vente du banc d'essai.\n\n" + "Article. " * 300).strip()
PASSWORD_HASH = hash_password("banc-essai-mot-de-passe")

COLUMNS = {
    "seller_settings": (
        "id", "company_name", "legal_form", "share_capital", "address_line1", "address_line2",
        "postal_code", "city", "country", "siren", "rcs_city", "vat_number", "email", "phone", "iban",
        "bic", "early_payment_discount", "late_penalty_rate", "operation_category",
        "quote_validity_days"),
    "organisation": (
        "id", "name", "legal_form", "siren", "siret", "vat_number", "address_line1", "address_line2",
        "postal_code", "city", "country", "billing_email", "billing_mode", "payment_terms_days",
        "staff_validation_allowed", "staff_validation_changed_by_id", "staff_validation_changed_at",
        "created_at"),
    "user": ("id", "email", "full_name", "kind", "staff_role", "client_role", "organisation_id",
             "password_hash", "active", "created_at"),
    "product": ("id", "sku", "name", "description", "unit_price_cents", "vat_rate_bp",
                "credits_per_unit", "published"),
    "terms_version": ("id", "version_label", "body", "sha256", "published_at", "created_at"),
    "quote_request": ("id", "organisation_id", "requester_id", "message", "status", "decline_reason",
                      "handled_by_id", "handled_at", "created_at"),
    "quote_request_line": ("id", "request_id", "product_id", "quantity"),
    "quote": (
        "id", "organisation_id", "number", "revision", "title", "status", "recipient_id",
        "created_by_id", "request_id", "supersedes_id", "validity_days", "valid_until", "billing_mode",
        "total_ht_cents", "total_vat_cents", "total_ttc_cents", "total_credits", "billing_period",
        "monthly_invoice_id", "reminders_sent", "created_at", "sent_at", "decided_at"),
    "quote_line": ("id", "quote_id", "position", "product_id", "label", "quantity", "unit_price_cents",
                   "vat_rate_bp", "credits_per_unit", "total_ht_cents", "total_vat_cents"),
    "decision": ("id", "quote_id", "kind", "actor_id", "organisation_id", "channel", "terms_version_id",
                 "terms_sha256", "quote_sha256", "mandate_granted_by_id", "mandate_granted_at", "ip",
                 "user_agent", "reason", "created_at"),
    "number_counter": ("series", "year", "last_value"),
    "invoice": (
        "id", "kind", "number", "organisation_id", "quote_id", "billing_period", "credited_invoice_id",
        "status", "currency", "issue_date", "due_date", "sale_date", "total_ht_cents",
        "total_vat_cents", "total_ttc_cents", "seller", "buyer", "reason", "pdf", "pdf_sha256",
        "issued_at", "paid_at", "cancelled_at"),
    "invoice_line": ("id", "invoice_id", "position", "quote_id", "label", "quantity",
                     "unit_price_cents", "vat_rate_bp", "total_ht_cents", "total_vat_cents"),
    "payment": ("id", "invoice_id", "provider", "provider_reference", "amount_cents", "currency",
                "recorded_by_id", "received_at"),
    "credit_entry": ("id", "organisation_id", "kind", "amount", "quote_id", "actor_id", "reason",
                     "created_at"),
    "audit_event": ("id", "actor_id", "action", "object_type", "object_id", "organisation_id",
                    "details", "ip", "created_at"),
}


@dataclass(frozen=True)
class Product:
    id: int
    sku: str
    name: str
    price: int
    vat: int
    credits: int
    published: bool

    def row(self) -> tuple:
        return (self.id, self.sku, self.name, None, self.price, self.vat, self.credits, self.published)


def products() -> list[Product]:
    """40 products: credit packs (with credits), services and licences (without)."""
    rng = random.Random(40)
    items = []
    for n in range(1, 41):
        credits = (10, 50, 100, 250)[n % 4] if n % 5 < 3 else 0
        kind = "Pack de crédits" if credits else ("Licence" if n % 2 else "Prestation")
        items.append(Product(n, f"SKU-{n:03d}", f"{kind} n° {n}", rng.randint(9, 400) * 500 - 10,
                             (2000, 2000, 2000, 1000, 550)[n % 5], credits, n % 9 != 0))
    return items


def organisation(rng: random.Random, org_id: int) -> tuple[str, str, str]:
    """A company name (homonyms happen, as in life), its email domain slug and its city."""
    name = f"{rng.choice(PREFIXES)}{rng.choice(SURNAMES)} {rng.choice(ACTIVITIES)}"
    return name, f"org{org_id}", rng.choice(CITIES)


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"


def street(rng: random.Random) -> str:
    return rng.choice(STREETS)
