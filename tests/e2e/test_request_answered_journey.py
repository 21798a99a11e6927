"""A quote request counts as answered when its quote is *sent*, not when a draft exists (issue 26,
point 3), in a real browser.

A membre of Atelier Dupont SARL (who may not decide) asks for a quote in the portal; staff answer
it with a draft that takes a title from the request and goes to the organisation's responsable; the
request stays in the home's queue, « Devis en préparation », until staff send that quote; then the
responsable gets the quote, the membre an email saying their request is answered, and the
membre's « Demandes de devis » page shows the quote.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from .conftest import flash, screenshot, sign_in_client

MEMBER = "membre@dupont.example"
RESPONSABLE = "responsable@dupont.example"
ORGANISATION = "Atelier Dupont SARL"
MESSAGE = "Deux jours de formation pour les nouveaux arrivants."
REFERENCE = re.compile(r"DV-\d{4}-\d{5}")
TITLE = re.compile(r"^Demande du \d{2}/\d{2}/\d{4} : Journée de formation$")
QUOTE_LINK = re.compile(r"https?://\S+/espace-client/devis/\d+")


def _requests_queue(page: Page) -> Locator:
    """The home's card of requests to answer."""
    page.get_by_role("link", name="Gestion courante").first.click()
    return page.locator(".queue-card").filter(has_text="Demandes de devis à traiter")


def _my_request(page: Page) -> Locator:
    """The membre's request on their « Demandes de devis » page."""
    page.get_by_role("link", name="Demandes de devis").click()
    return page.get_by_role("listitem").filter(has_text="2 × Journée de formation")


def test_a_request_is_answered_when_its_quote_is_sent(live, new_context, staff_page):
    client = new_context().new_page()
    sign_in_client(client, MEMBER)
    client.get_by_role("link", name="Demandes de devis").click()
    client.get_by_label("Journée de formation").fill("2")
    client.get_by_label("Votre message (facultatif)").fill(MESSAGE)
    client.get_by_role("button", name="Envoyer la demande").click()
    flash(client, "Votre demande de devis a été envoyée.")
    expect(_my_request(client).locator(".badge")).to_have_text("Nouvelle")

    # Staff answer it: a draft titled after the request, for the responsable (a membre may not decide).
    staff = staff_page
    _requests_queue(staff).get_by_role("link", name=ORGANISATION).click()
    expect(staff.get_by_text(MESSAGE)).to_be_visible()
    staff.get_by_role("button", name="Répondre").click()
    flash(staff, "Brouillon créé à partir de la demande")
    expect(staff.get_by_label("Objet")).to_have_value(TITLE)
    expect(staff.get_by_label("Destinataire").locator("option:checked")).to_contain_text(RESPONSABLE)
    expect(staff.get_by_label("Quantité").first).to_have_value("2")
    screenshot(staff, "demande-brouillon-pre-rempli")

    # A draft answers nothing yet: the request is still to answer, its draft one click away.
    queue = _requests_queue(staff)
    entry = queue.get_by_role("listitem").filter(has=staff.get_by_role("link", name=ORGANISATION))
    expect(entry.get_by_role("link", name="Devis en préparation")).to_be_visible()
    screenshot(staff, "demande-toujours-a-traiter")
    expect(_my_request(client).locator(".badge")).to_have_text("Devis en préparation")
    assert not any("demande de devis" in str(m.message["Subject"]) for m in live.deliver_emails()
                   if MEMBER in m.rcpt_tos)

    entry.get_by_role("link", name="Devis en préparation").click()
    send = staff.get_by_role("button", name="Envoyer", exact=True).or_(
        staff.get_by_role("link", name="Envoyer", exact=True))
    send.click()
    staff.get_by_role("button", name="Confirmer l’envoi").click()
    reference = REFERENCE.search(flash(staff, "envoyé au client")).group(0)

    # Sent: the request leaves the queue; the responsable gets the quote, the membre is told.
    expect(_requests_queue(staff).get_by_role("link", name=ORGANISATION)).to_have_count(0)
    live.deliver_emails()
    assert reference in str(live.email_to(RESPONSABLE, "Nouveau devis").message["Subject"])
    told = live.email_to(MEMBER, "Votre demande de devis")
    assert f"devis {reference} envoyé" in str(told.message["Subject"])
    assert "Responsable Atelier" in told.part("text/plain")
    link = QUOTE_LINK.search(told.part("text/plain")).group(0)

    request = _my_request(client)
    expect(request.locator(".badge")).to_have_text("Devis établi")
    screenshot(client, "demande-repondue-vue-du-membre")
    request.get_by_role("link", name=f"Devis {reference}").click()
    expect(client.get_by_role("heading", name=re.compile(reference))).to_be_visible()
    client.goto(link)  # the email's link opens the same quote
    expect(client.get_by_role("heading", name=re.compile(reference))).to_be_visible()
