"""Two defects a new user met, kept fixed in a real browser (issue 26, points 2 and 9):

- in the quote editor, "Envoyer" saves the edits before the send confirmation, and a draft without
  a recipient never reaches that confirmation: the editor says what is missing, next to the field;
- on a phone (390×844), a sent quote's total and Valider are on the first screen however many lines
  it has, and Valider without the CGV box ticked says so next to the box, before any request (and
  the server says the same when the page's script does not run).
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select

from portal import quotes
from portal.extensions import db
from portal.models import Organisation, Quote, User
from portal.money import format_amount

from .conftest import ARTIFACTS, STAFF_EMAIL, flash, open_organisation, screenshot, sign_in_client

CGV = "J'ai lu et j'accepte les Conditions Générales de Vente"
CGV_MISSING = "Cochez « J'ai lu et j'accepte les Conditions Générales de Vente » pour valider le devis."
RECIPIENT_MISSING = "Choisissez le destinataire avant d’envoyer le devis"
PHONE = {"width": 390, "height": 844}
GESTIONNAIRE = "gestionnaire@dupont.example"


def _quotes_tab(page: Page) -> None:
    open_organisation(page, "Dupont", "Atelier Dupont SARL")
    page.get_by_role("tablist").get_by_role("link", name="Devis", exact=True).click()


# --- Point 2: "Envoyer" in the quote editor ----------------------------------------------------------


def test_envoyer_saves_the_edited_lines_then_confirms_them(live, staff_page):
    staff = staff_page
    _quotes_tab(staff)
    staff.get_by_role("row").filter(has_text="Formation équipe").get_by_role("link", name="Modifier").click()
    staff.get_by_label("Libellé").first.fill("Journée de formation sur site")
    staff.get_by_label("Quantité").first.fill("3")
    staff.get_by_role("button", name="Envoyer", exact=True).click()  # no "Enregistrer" before it

    expect(staff.get_by_role("heading", name=re.compile(r"^Envoyer le devis .* \?$"))).to_be_visible()
    line = staff.get_by_role("row").filter(has_text="Journée de formation sur site")
    expect(line).to_contain_text("3\u202f600,00\u00a0€")  # 3 days at 1 200 € as saved, not the 2 before
    expect(staff.locator("p").filter(has_text="Total TTC")).to_contain_text("4\u202f320,00\u00a0€")
    screenshot(staff, "editeur-envoyer-confirmation")
    staff.get_by_role("button", name="Confirmer l’envoi").click()
    flash(staff, "envoyé au client.")

    live.deliver_emails()
    email = live.email_to("responsable@dupont.example", "Nouveau devis")
    assert "4\u202f320,00\u00a0€" in email.part("text/plain")


def test_a_draft_without_a_recipient_stays_in_the_editor_which_says_what_is_missing(live, staff_page):
    staff = staff_page
    _quotes_tab(staff)
    staff.get_by_role("link", name="Nouveau devis").click()
    staff.get_by_label("Objet").fill("Accompagnement au démarrage")
    staff.get_by_label("Libellé").first.fill("Accompagnement")
    staff.get_by_label("Quantité").first.fill("1")
    staff.get_by_label("Prix unitaire HT (€)").first.fill("500")
    staff.get_by_role("button", name="Enregistrer le brouillon").click()
    flash(staff, "enregistré")
    editor = staff.url

    staff.get_by_role("button", name="Envoyer", exact=True).click()
    _missing_recipient(staff)
    assert staff.url == editor
    screenshot(staff, "editeur-sans-destinataire")

    # The "Envoyer" of the organisation's quotes tab does not reach the confirmation either.
    _quotes_tab(staff)
    staff.get_by_role("row").filter(has_text="Accompagnement au démarrage").get_by_role(
        "link", name="Envoyer").click()
    _missing_recipient(staff)

    staff.get_by_label("Destinataire").select_option(label=f"Gestionnaire Atelier <{GESTIONNAIRE}>")
    staff.get_by_role("button", name="Envoyer", exact=True).click()
    expect(staff.get_by_role("heading", name=re.compile(r"^Envoyer le devis .* \?$"))).to_be_visible()
    expect(staff.get_by_text("destinataire : Gestionnaire Atelier")).to_be_visible()


def _missing_recipient(staff: Page) -> None:
    """The editor is shown again, its recipient field focused with the message beside it; no
    confirmation, no recipient role error."""
    error = staff.locator("#recipient-error")
    expect(error).to_contain_text(RECIPIENT_MISSING)
    expect(staff.get_by_label("Destinataire")).to_be_focused()
    field, message = staff.get_by_label("Destinataire").bounding_box(), error.bounding_box()
    assert 0 <= message["y"] - (field["y"] + field["height"]) < 30, (field, message)
    expect(staff.get_by_role("button", name="Confirmer l’envoi")).to_have_count(0)
    expect(staff.get_by_text("Le destinataire doit être")).to_have_count(0)


# --- Point 9: the quote page on a phone ---------------------------------------------------------


def _long_quote(live) -> tuple[int, str]:
    """A quote of fifteen lines sent to Atelier Dupont's gestionnaire: its id and its total TTC."""
    with live.app.app_context():
        organisation = db.session.scalar(select(Organisation).where(
            Organisation.external_id == "compte-dupont"))
        admin = db.session.scalar(select(User).where(User.email == STAFF_EMAIL))
        recipient = db.session.scalar(select(User).where(User.email == GESTIONNAIRE))
        lines = [quotes.LineInput(label=f"Prestation n° {number}", quantity=1,
                                  unit_price_cents=10_000 * number, vat_rate_bp=2000)
                 for number in range(1, 16)]
        quote = quotes.create_draft(organisation=organisation, actor=admin, recipient=recipient,
                                    title="Grand projet", lines=lines)
        quotes.send(quote, actor=admin)
        db.session.commit()
        found = db.session.get(Quote, quote.id)
        result = found.id, format_amount(found.total_ttc_cents)
        db.session.remove()
    return result


def _first_screen(page: Page, name: str) -> None:
    """What the phone shows without scrolling (the full page: `screenshot`)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-premier-ecran.png"))


def _on_first_screen(page: Page, locator) -> None:
    box = locator.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box


def test_on_a_phone_the_total_and_valider_come_first_and_valider_says_what_is_missing(live, new_context):
    quote_id, total = _long_quote(live)
    phone = new_context(viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True).new_page()
    refused: list[str] = []  # CSP violations and script errors (a missing favicon is not this test's)
    phone.on("console", lambda message: refused.append(message.text)
             if "Content Security Policy" in message.text else None)
    phone.on("pageerror", lambda error: refused.append(str(error)))
    sign_in_client(phone, GESTIONNAIRE)
    phone.goto(f"/espace-client/devis/{quote_id}")
    expect(phone.get_by_role("heading", name=re.compile(r"^Devis DV-"))).to_be_visible()
    assert phone.evaluate("window.scrollY") == 0

    summary = phone.locator(".quote-summary")
    expect(summary).to_contain_text(f"Total TTC {total}")
    _on_first_screen(phone, summary.get_by_text(total, exact=True))
    valider = phone.get_by_role("button", name="Valider", exact=True)
    _on_first_screen(phone, valider)
    _on_first_screen(phone, phone.get_by_text("Refuser ce devis"))
    last_line = phone.get_by_role("row").filter(has_text="Prestation n° 15")
    assert last_line.bounding_box()["y"] > PHONE["height"]  # the lines do come after the actions
    _first_screen(phone, "telephone-devis")
    screenshot(phone, "telephone-devis")

    url, posts = phone.url, []
    phone.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    valider.click()
    error = phone.get_by_role("alert").filter(has_text=CGV_MISSING)
    expect(error).to_be_visible()
    expect(phone.get_by_label(CGV)).to_be_focused()
    box, message = phone.get_by_label(CGV).bounding_box(), error.bounding_box()
    assert 0 <= message["y"] - (box["y"] + box["height"]) < 40, (box, message)  # right below the box
    assert posts == [] and phone.url == url  # said before any round trip
    _first_screen(phone, "telephone-devis-cgv-manquantes")
    screenshot(phone, "telephone-devis-cgv-manquantes")

    phone.get_by_label(CGV).check()
    expect(error).to_be_hidden()
    valider.click()
    expect(phone.get_by_role("heading", name=re.compile("Règlement de la facture"))).to_be_visible()
    assert refused == []  # the page's script runs under the CSP, without an error


def test_without_the_pages_script_the_server_says_the_same_next_to_the_box(live, new_context):
    quote_id, _total = _long_quote(live)
    phone = new_context(viewport=PHONE, is_mobile=True, java_script_enabled=False).new_page()
    sign_in_client(phone, GESTIONNAIRE)
    phone.goto(f"/espace-client/devis/{quote_id}")
    phone.get_by_role("button", name="Valider", exact=True).click()
    error = phone.get_by_role("alert").filter(has_text=CGV_MISSING)
    expect(error).to_be_visible()
    expect(phone.get_by_label(CGV)).to_be_focused()  # autofocus, no script needed
    expect(phone.get_by_label(CGV)).to_have_attribute("aria-invalid", "true")
    _on_first_screen(phone, error)
    screenshot(phone, "telephone-devis-cgv-manquantes-sans-script")
