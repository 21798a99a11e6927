"""A validation on the client's behalf is visible to the client (issue 26, point 6), in a real browser.

Cabinet Lefèvre & Associés has given the mandate. Staff validate its quote « Audit annuel » for it,
writing how the client asked (the note is required); the back office keeps the note in the
decision's evidence; the cabinet's responsable is emailed (which quote, by whom, the note, and the
link to withdraw the mandate); a client of the cabinet reads on the quote's page that the seller's
team validated it under the mandate its responsable granted, and when.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .conftest import flash, screenshot, sign_in_client

ORGANISATION = "Cabinet Lefèvre & Associés"
RESPONSABLE = "responsable@lefevre.example"
STAFF_NAME = "Claire Admin"
GRANTED_BY = "Responsable Cabinet"
NOTE = "Demande par téléphone de Mme Lefèvre le 3/12, confirmée par email"
REFERENCE = re.compile(r"DV-\d{4}-\d{5}")
DATE_TIME = r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}"
SETTINGS_LINK = re.compile(r"https?://\S+/espace-client/parametres")


def _validate_on_behalf(staff: Page) -> str:
    """Staff validate « Audit annuel » for the cabinet, with the note; its reference."""
    staff.goto("/admin/")
    staff.get_by_placeholder("Nom, SIREN ou SIRET").fill("Lefèvre")
    staff.get_by_role("button", name="Rechercher").click()
    staff.get_by_role("link", name=ORGANISATION, exact=True).first.click()
    staff.get_by_role("tablist").get_by_role("link", name="Devis", exact=True).click()
    row = staff.get_by_role("row").filter(has_text="Audit annuel")
    reference = REFERENCE.search(row.inner_text()).group(0)
    row.get_by_role("link", name="Valider pour le compte du client").click()
    note = staff.get_by_label("Comment le client a-t-il demandé cette validation ?")
    expect(note).to_have_attribute("required", "")
    expect(note).to_have_attribute("maxlength", "500")
    note.fill(NOTE)
    screenshot(staff, "mandat-1-note-de-validation")
    staff.get_by_role("button", name="Valider", exact=True).click()
    flash(staff, f"Devis {reference} validé pour le compte du client.")
    return reference


def test_a_validation_on_behalf_is_noted_shown_to_the_client_and_emailed(live, new_context, staff_page):
    staff = staff_page
    reference = _validate_on_behalf(staff)
    # The back office keeps how the client asked, next to the mandate, in the decision's evidence.
    expect(staff.get_by_text(re.compile(f"sous le mandat accordé par {GRANTED_BY} le"))).to_be_visible()
    expect(staff.locator(".decision-note")).to_have_text(f"Demande du client, notée par l'équipe : {NOTE}")
    screenshot(staff, "mandat-2-preuve-dans-le-back-office")

    # The responsable is told, with the note and the way to withdraw the mandate.
    live.deliver_emails()
    email = live.email_to(RESPONSABLE, "validé pour votre compte")
    assert reference in str(email.message["Subject"])
    text = email.part("text/plain")
    assert f"{STAFF_NAME}, de l'équipe de" in text and f"a validé le devis {reference}" in text
    assert f"sous le mandat accordé par {GRANTED_BY} le" in text and NOTE in text
    settings_link = SETTINGS_LINK.search(text).group(0)

    # The client reads who validated it, under whose mandate and since when, and how they asked.
    client = new_context().new_page()
    sign_in_client(client, RESPONSABLE)
    client.get_by_role("link", name=re.compile(reference)).first.click()
    expect(client.get_by_role("heading", name=re.compile(f"Devis {reference}"))).to_be_visible()
    expect(client.locator(".decision-on-behalf")).to_contain_text(re.compile(
        rf"Validé par l'équipe du vendeur \({STAFF_NAME}\) le {DATE_TIME}, "
        rf"sous le mandat accordé par {GRANTED_BY} le {DATE_TIME}\."))
    expect(client.get_by_text(f"Demande du client, notée par l'équipe : {NOTE}")).to_be_visible()
    screenshot(client, "mandat-3-devis-vu-par-le-client")

    # The email's link leads to the setting that withdraws the mandate.
    client.goto(settings_link)
    expect(client.get_by_role("heading", name="Mon Organisation › Paramètres")).to_be_visible()
    expect(client.get_by_role("checkbox")).to_be_checked()
    screenshot(client, "mandat-4-parametres-pour-retirer-le-mandat")


def test_the_sentence_reads_on_a_phone(live, new_context, staff_page):
    reference = _validate_on_behalf(staff_page)
    phone = new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True).new_page()
    sign_in_client(phone, RESPONSABLE)
    phone.get_by_role("link", name=re.compile(reference)).first.click()
    sentence = phone.locator(".decision-on-behalf")
    expect(sentence).to_contain_text(f"sous le mandat accordé par {GRANTED_BY}")
    expect(sentence).to_be_in_viewport()  # in the summary, before the lines
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone, "mandat-5-devis-sur-mobile")
