"""The journeys of the help text, in a real browser: staff in "Gestion courante", clients in their
"Espace client", acting only as a person would (the French labels they see, the emails they get).

The demo data (portal/demo.py) is the world: Atelier Dupont SARL (per order, no mandate),
Boulangeries Martin SAS (monthly, two quotes accepted last month, one revision awaiting), Cabinet
Lefèvre & Associés (per order, mandate given, the quote "Audit annuel" awaiting).
"""

from __future__ import annotations

import re
from datetime import date

from babel.dates import format_date
from playwright.sync_api import Page, expect

from .conftest import (
    ARTIFACTS,
    flash,
    link_in,
    open_organisation,
    screenshot,
    sign_in_client,
)

CGV = "J'ai lu et j'accepte les Conditions Générales de Vente"
REFERENCE = re.compile(r"DV-\d{4}-\d{5}(?:-R\d+)?")
NUMBER = re.compile(r"FA-\d{4}-\d{5}")


def _found(pattern: re.Pattern, text: str) -> str:
    match = pattern.search(text)
    assert match, text
    return match.group(0)


def _pending_quote(page: Page, text: str):
    """The link to a quote of Mon Organisation > Devis awaiting validation (not the history)."""
    return (
        page.get_by_role("listitem")
        .filter(has_text="valable jusqu’au")
        .filter(has_text=text)
        .get_by_role("link")
    )


def _tab(page: Page, name: str) -> None:
    """Open a tab of the organisation page."""
    page.get_by_role("tablist").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("tablist").get_by_role("link", name=name, exact=True)).to_have_attribute(
        "aria-current", "page"
    )


def _accept_quote(page: Page) -> None:
    """Read and accept the CGV, then Valider."""
    terms = page.get_by_role("heading", name="Conditions Générales de Vente — version 2026-01")
    expect(terms).to_be_visible()
    page.get_by_label(CGV).check()
    page.get_by_role("button", name="Valider", exact=True).click()


# The payment page's test-card hint, as a demo user reads it.
TEST_CARD_HINT = re.compile(r"carte (?P<number>\d{16}), mois (?P<month>\d\d), année sur deux chiffres "
                            r"(?P<year>\d\d) \(pour 20(?P=year)\), cryptogramme (?P<cvc>\d{3})")


def _pay_by_card(page: Page, number: str | None = None) -> None:
    """Type the card in the Stripe.js card element (localstripe's: number, month, two-digit year,
    CVC) exactly as the page's test-card hint says: the payment succeeding proves the hint right."""
    hint = TEST_CARD_HINT.search(page.get_by_text("Environnement de test (localstripe)").inner_text())
    assert hint, "the payment page tells the demo user which test card to type"
    card = page.locator("#card-element")
    card.get_by_placeholder("number").fill((number or hint["number"]).replace(" ", ""))
    card.get_by_placeholder("exp_month").fill(hint["month"])
    card.get_by_placeholder("exp_year").fill(hint["year"])
    card.get_by_placeholder("cvc").fill(hint["cvc"])
    page.get_by_role("button", name=re.compile(r"^Payer .* par carte$")).click()


# --- 1. A quote on demand, sent, accepted from the email's link, paid by card ----------------------


def test_quote_on_demand_from_email_link_to_card_payment(live, new_context, staff_page):
    staff = staff_page
    open_organisation(staff, "Dupont", "Atelier Dupont SARL")
    _tab(staff, "Devis")
    staff.get_by_role("link", name="Nouveau devis").click()
    staff.get_by_label("Objet").fill("Offre Entreprise sur mesure")
    recipient = "Gestionnaire Atelier <gestionnaire@dupont.example>"
    staff.get_by_label("Destinataire").select_option(label=recipient)
    staff.get_by_label("Produit").first.select_option(label="Pack Entreprise 5 000 crédits (non publié)")
    staff.get_by_label("Quantité").first.fill("1")
    expect(staff.locator("#total-ttc")).to_have_text("4\u202f200,00\u00a0€")
    staff.get_by_role("button", name="Enregistrer le brouillon").click()
    flash(staff, "enregistré")
    staff.get_by_role("button", name="Envoyer", exact=True).click()
    expect(staff.get_by_role("heading", name=re.compile(r"^Envoyer le devis .* \?$"))).to_be_visible()
    staff.get_by_role("button", name="Confirmer l’envoi").click()
    reference = _found(REFERENCE, flash(staff, "envoyé au client."))  # numbered when sent

    live.deliver_emails()
    email = live.email_to("gestionnaire@dupont.example", f"Nouveau devis {reference}")
    client = new_context().new_page()
    client.goto(link_in(email))
    client.get_by_role("button", name="Continuer vers le devis").click()
    expect(client.get_by_role("heading", name=re.compile(f"Devis {reference}"))).to_be_visible()
    expect(client.get_by_text("Pack Entreprise 5 000 crédits").first).to_be_visible()
    _accept_quote(client)

    number = _found(NUMBER, flash(client, "est prête à être réglée"))
    expect(client.get_by_role("heading", name=f"Règlement de la facture {number}")).to_be_visible()
    expect(client.get_by_text("Montant à régler : 4\u202f200,00\u00a0€")).to_be_visible()
    _pay_by_card(client)
    flash(client, f"Paiement reçu, merci : la facture {number} est réglée.")
    expect(client.get_by_role("heading", name=f"Facture {number} Payée")).to_be_visible()
    expect(client.get_by_text("Carte bancaire")).to_be_visible()

    open_organisation(staff, "Dupont", "Atelier Dupont SARL")
    _tab(staff, "Factures")
    expect(staff.get_by_role("row").filter(has_text=number)).to_contain_text("Payée")
    _tab(staff, "Crédits")
    # 200 credits from the demo's paid quote, and the 5 000 of this one, granted at payment.
    expect(staff.get_by_text("Solde : 5\u202f200 crédits")).to_be_visible()
    # Credits are grouped by thousands with a narrow no-break space: « +5 000 ».
    expect(staff.get_by_role("row").filter(has_text=re.compile(r"\+5\s000"))).to_contain_text("Attribution")
    screenshot(client, "1-client-facture-payee")
    screenshot(staff, "1-gestion-courante-credits")


# --- 2. Monthly billing: credits at once, the consolidated invoice after the monthly close --------


def test_monthly_client_credits_then_consolidated_invoice(live, new_context, staff_page):
    # The monthly close refuses the current month; the month it closes is the previous one, where
    # the demo has Boulangeries Martin accept two quotes (100 and 200 credits). The quote the client
    # accepts here, this month, grants its credits at once and waits for next month's invoice.
    client = new_context().new_page()
    sign_in_client(client, "gestionnaire@martin.example")
    _pending_quote(client, "Crédits boulangeries").click()
    expect(
        client.get_by_text(
            "Facturation consolidée mensuelle : à la validation, les crédits de ce devis "
            "vous sont attribués immédiatement"
        )
    ).to_be_visible()
    _accept_quote(client)
    expect(client.get_by_role("heading", name=re.compile(r"Devis .* validé"))).to_be_visible()
    expect(client.get_by_text("300 crédits ont été ajoutés à votre solde.")).to_be_visible()
    client.get_by_role("link", name="Voir mes crédits").click()
    expect(client.get_by_text("Solde : 600 crédits")).to_be_visible()

    staff = staff_page
    staff.locator(".queue-card").filter(has_text="Organisations mensuelles à facturer").get_by_role(
        "link", name="Clôture mensuelle"
    ).click()
    expect(staff.get_by_role("heading", name="Clôture mensuelle")).to_be_visible()
    period = staff.get_by_label("Mois à clôturer").input_value()
    preview = staff.get_by_role("row").filter(has_text="Boulangeries Martin SAS")
    expect(preview).to_contain_text("324,00\u00a0€")  # 3 × 90,00 € HT + 20 % VAT
    staff.get_by_label("Je confirme l'émission des factures mensuelles de cette période.").check()
    staff.get_by_role("button", name="Émettre 1 facture mensuelle").click()
    # The close is queued, not run in the request: the outbox worker's next pass runs it, then
    # sends the invoice's email; the page, reloaded, shows the close done.
    expect(staff.get_by_role("heading", name=re.compile("En file d.attente"))).to_be_visible()
    live.deliver_emails()
    staff.reload()
    expect(staff.get_by_role("heading", name=re.compile("Terminée"))).to_be_visible()
    expect(staff.get_by_text("Avancement : 1 facture émise sur 1")).to_be_visible()
    number = live.email_to("responsable@martin.example", "Facture mensuelle").message["Subject"]
    number = NUMBER.search(str(number)).group(0)
    # A consolidated invoice goes to the organisation's invoice contacts: here, its responsable.
    live.email_to("responsable@martin.example", f"Facture mensuelle {number}")
    client.get_by_role("link", name="Factures", exact=True).click()
    unpaid = client.get_by_role("listitem").filter(has_text=number)
    with client.expect_download() as download_info:
        unpaid.get_by_role("link", name="Télécharger (PDF)").click()
    download = download_info.value
    path = ARTIFACTS / f"2-{download.suggested_filename}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    download.save_as(path)
    assert download.suggested_filename == f"{number}.pdf"
    assert path.read_bytes().startswith(b"%PDF")
    unpaid.get_by_role("link", name=number).click()
    year, month = map(int, period.split("-"))
    month_name = format_date(date(year, month, 1), "MMMM y", locale="fr")  # « novembre 2026 »
    expect(client.get_by_text(f"période {month_name}")).to_be_visible()
    screenshot(client, "2-client-facture-mensuelle")


# --- 3. A quote request answered by staff, refused by the client with a reason ------------------


def test_quote_request_answered_then_refused_with_a_reason(live, new_context, staff_page):
    client = new_context().new_page()
    sign_in_client(client, "gestionnaire@dupont.example")
    client.get_by_role("link", name="Demandes de devis").click()
    client.get_by_label("Journée de formation").fill("3")
    client.get_by_label("Votre message (facultatif)").fill("Formation de trois jours pour l'équipe.")
    client.get_by_role("button", name="Envoyer la demande").click()
    flash(client, "Votre demande de devis a été envoyée.")

    staff = staff_page
    staff.get_by_role("link", name="Gestion courante").first.click()
    staff.locator(".queue-card").filter(has_text="Demandes de devis à traiter").get_by_role(
        "link", name="Atelier Dupont SARL"
    ).click()
    expect(staff.get_by_text("Formation de trois jours pour l'équipe.")).to_be_visible()
    staff.get_by_role("button", name="Répondre").click()
    flash(staff, "Brouillon créé à partir de la demande")
    expect(staff.get_by_label("Quantité").first).to_have_value("3")
    staff.get_by_role("button", name="Envoyer", exact=True).click()
    staff.get_by_role("button", name="Confirmer l’envoi").click()
    reference = _found(REFERENCE, flash(staff, "envoyé au client"))

    client.get_by_role("link", name="Devis", exact=True).click()
    _pending_quote(client, reference).click()
    client.get_by_text("Refuser ce devis").click()
    client.get_by_label("Motif du refus (facultatif)").fill("Nous préférons attendre le budget de janvier.")
    client.get_by_role("button", name="Refuser").click()
    flash(client, f"Vous avez refusé le devis {reference}.")
    client.get_by_role("link", name="Demandes de devis").click()
    expect(client.get_by_role("listitem").filter(has_text="3 × Journée de formation")).to_contain_text(
        f"Devis {reference}"
    )

    staff.reload()
    expect(staff.get_by_role("heading", name=re.compile(f"Devis {reference} Refusé"))).to_be_visible()
    reason = staff.get_by_text("Motif du refus : Nous préférons attendre le budget de janvier.")
    expect(reason).to_be_visible()
    screenshot(staff, "3-gestion-courante-devis-refuse")


# --- 4. Validation on behalf of the client: under the mandate only ------------------------------


def test_validation_on_behalf_only_under_the_clients_mandate(live, staff_page):
    staff = staff_page
    open_organisation(staff, "Lefèvre", "Cabinet Lefèvre & Associés")
    expect(staff.get_by_text("Validation pour le compte autorisée")).to_be_visible()
    _tab(staff, "Devis")
    row = staff.get_by_role("row").filter(has_text="Audit annuel")
    reference = _found(REFERENCE, row.inner_text())
    row.get_by_role("link", name="Valider pour le compte du client").click()
    expect(
        staff.get_by_role("heading", name=f"Valider le devis {reference} pour le compte du client ?")
    ).to_be_visible()
    expect(
        staff.get_by_text(
            "La validation sera enregistrée sous les Conditions Générales de Vente en "
            "vigueur : version 2026-01"
        )
    ).to_be_visible()
    staff.get_by_label("Comment le client a-t-il demandé cette validation ?").fill("Demande par téléphone")
    staff.get_by_role("button", name="Valider", exact=True).click()
    flash(staff, f"Devis {reference} validé pour le compte du client.")
    expect(staff.get_by_text("Gestion courante (pour le compte du client)")).to_be_visible()

    live.deliver_emails()
    email = live.email_to("gestionnaire@lefevre.example", "Facture FA-")
    text = email.part("text/plain")
    assert f"devis {reference} accepté" in text and "4\u202f200,00\u00a0€" in text
    number = _found(NUMBER, str(email.message["Subject"]))
    staff.get_by_role("link", name="Cabinet Lefèvre & Associés").click()
    _tab(staff, "Factures")
    expect(staff.get_by_role("row").filter(has_text=number)).to_contain_text("À régler")

    # Atelier Dupont has not given the mandate: the action is not offered, its URL is refused.
    open_organisation(staff, "Dupont", "Atelier Dupont SARL")
    expect(staff.get_by_text("Validation pour le compte non autorisée")).to_be_visible()
    _tab(staff, "Devis")
    row = staff.get_by_role("row").filter(has_text="Crédits et formation")
    expect(row).to_contain_text("En attente du client")
    expect(staff.get_by_role("link", name="Valider pour le compte du client")).to_have_count(0)
    reference = _found(REFERENCE, row.inner_text())
    row.get_by_role("link", name=reference).click()
    expect(staff.get_by_role("heading", name=f"Devis {reference} En attente du client")).to_be_visible()
    expect(staff.get_by_role("link", name="Valider pour le compte du client")).to_have_count(0)
    staff.goto(staff.url + "/valider")
    flash(
        staff,
        "Ce client n'a pas autorisé la validation de devis pour son compte : "
        "la validation par l'équipe commerciale est impossible.",
    )
    expect(staff.get_by_role("heading", name=f"Devis {reference} En attente du client")).to_be_visible()
    screenshot(staff, "4-validation-pour-le-compte-refusee")


# --- 5. On a phone: no horizontal scrolling -----------------------------------------------------


def _no_horizontal_scrolling(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url}: {width} px wide on a 390 px screen"


def test_quote_and_payment_pages_fit_a_phone(live, new_context):
    phone = new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=3, is_mobile=True, has_touch=True
    ).new_page()
    sign_in_client(phone, "gestionnaire@dupont.example")
    _pending_quote(phone, "Crédits et formation").click()
    expect(phone.get_by_label(CGV)).to_be_visible()
    _no_horizontal_scrolling(phone)
    screenshot(phone, "5-telephone-devis")
    _accept_quote(phone)
    expect(phone.get_by_role("heading", name=re.compile("Règlement de la facture"))).to_be_visible()
    expect(phone.locator("#card-element").get_by_placeholder("number")).to_be_visible()
    expect(phone.get_by_role("button", name=re.compile(r"^Payer .* par carte$"))).to_be_enabled()
    _no_horizontal_scrolling(phone)
    screenshot(phone, "5-telephone-paiement")
