"""The staff search bar in a real browser (issue 26, point 4): a name typed without its accents is
suggested, a quote's number is suggested as the quote itself, and pressing Enter on it opens it."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .conftest import screenshot

LEFEVRE = "Cabinet Lefèvre & Associés"


def test_a_name_without_accents_and_a_quote_number_lead_straight_to_them(staff_page: Page):
    page = staff_page
    navbar = page.locator("#admin-navbar-collapse")
    search = navbar.get_by_role("searchbox", name="Rechercher une organisation")
    suggestions = navbar.locator(".suggestions a")

    search.fill("lefevre & asso")
    expect(suggestions.filter(has_text=LEFEVRE)).to_be_visible()

    awaiting = page.locator(".queue-card").filter(has_text="Devis en attente du client")
    quote_link = awaiting.get_by_role("link", name=re.compile(r"^DV-\d{4}-\d{5}")).first
    reference, quote_url = quote_link.inner_text(), quote_link.get_attribute("href")
    search.fill(reference.lower())
    suggestion = suggestions.filter(has_text=f"Devis {reference} — ")
    expect(suggestion).to_be_visible()
    screenshot(page, "recherche-numero-de-devis")
    suggestion.click()
    expect(page).to_have_url(re.compile(re.escape(quote_url) + "$"))
    expect(page.get_by_role("heading", name=f"Devis {reference}", level=1)).to_be_visible()

    page.get_by_role("link", name="Gestion courante").first.click()
    page.get_by_placeholder("Nom, SIREN ou SIRET").fill(reference)
    page.get_by_role("button", name="Rechercher").click()
    expect(page).to_have_url(re.compile(re.escape(quote_url) + "$"))
