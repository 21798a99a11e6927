"""The layout a new user meets, kept fixed in a real browser (issue 26, point 12):

- at 1366×768 the back office's navbar holds on one row with a search box wide enough for its
  placeholder, and the search suggestions open below the box, not over it;
- no page of the journey logs a Content-Security-Policy error (the menus open without
  `javascript:` links) nor a script error;
- a missing page says so in the layout of its part of the site, with a way back; /favicon.ico exists;
- the sign-in pages are cards of reasonable width under the product's name.
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import box_of, middle_of, open_organisation, screenshot, sign_in_client, sign_in_staff

LAPTOP = {"width": 1366, "height": 768}
GESTIONNAIRE = "gestionnaire@dupont.example"


def _watch(page: Page) -> list[str]:
    """Console errors about the Content-Security-Policy and uncaught script errors, as they come."""
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda error: refused.append(str(error)))
    return refused


def test_at_1366_the_navbar_is_one_row_and_suggestions_open_below_the_search(new_context):
    page = new_context(viewport=LAPTOP).new_page()
    sign_in_staff(page)
    navbar = page.locator("#admin-navbar-collapse")
    items = navbar.locator(".navbar-nav > li")
    assert items.count() >= 6
    assert len({round(box_of(items.nth(i))["y"]) for i in range(items.count())}) == 1  # tops equal
    search = navbar.get_by_role("searchbox", name="Rechercher une organisation")
    account = navbar.locator("#account-menu")  # the signed-in person’s name
    row = {middle_of(element) for element in (navbar.locator(".navbar-brand"), items.first, search, account)}
    assert max(row) - min(row) <= 1, row  # brand, menu, search and account menu on the same row
    assert box_of(page.locator("nav.navbar"))["height"] < 70  # one row of a Bootstrap navbar
    # The placeholder is shown whole: its text is narrower than the box's inside.
    room = search.evaluate("""input => {
        const style = getComputedStyle(input), context = document.createElement('canvas').getContext('2d');
        context.font = style.font;
        return input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)
               - context.measureText(input.placeholder).width; }""")
    assert room > 0, room

    search.fill("dup")
    suggestion = navbar.locator(".suggestions a").filter(has_text="Atelier Dupont SARL")
    expect(suggestion).to_be_visible()
    search_box, suggestions = box_of(search), box_of(navbar.locator(".suggestions"))
    assert suggestions["y"] >= search_box["y"] + search_box["height"], (search_box, suggestions)
    screenshot(page, "mise-en-page-barre-1366")
    suggestion.click()
    expect(page.get_by_role("heading", name="Atelier Dupont SARL", level=1)).to_be_visible()


def test_no_content_security_policy_error_on_the_journeys_pages(new_context):
    staff = new_context(viewport=LAPTOP).new_page()
    refused = _watch(staff)
    sign_in_staff(staff)
    for category in ("Catalogue", "Facturation", "Administration"):
        staff.get_by_role("button", name=category).click()  # a `href="#"` toggle, role button
        expect(staff.locator(".dropdown-menu.show")).to_be_visible()
        staff.keyboard.press("Escape")
    staff.locator("#account-menu").click()
    expect(staff.get_by_role("link", name="Mon compte")).to_be_visible()
    staff.keyboard.press("Escape")
    screenshot(staff, "mise-en-page-accueil")
    open_organisation(staff, "Dupont", "Atelier Dupont SARL")
    screenshot(staff, "mise-en-page-organisation")
    staff.goto("/admin/cgv/")
    staff.get_by_role("link", name="Liste").first.click()  # Flask-Admin's tab (a javascript: link before)
    staff.get_by_role("button", name="Catalogue").click()
    expect(staff.get_by_role("link", name="Produits")).to_be_visible()

    client = new_context(viewport=LAPTOP).new_page()
    refused += _watch(client)
    sign_in_client(client, GESTIONNAIRE)
    screenshot(client, "mise-en-page-devis-client")
    assert refused == []


def test_a_missing_page_keeps_its_sites_layout_and_a_way_back(new_context):
    client = new_context(viewport=LAPTOP).new_page()
    sign_in_client(client, GESTIONNAIRE)
    response = client.goto("/espace-client/nulle-part")
    assert response is not None and response.status == 404
    expect(client.get_by_role("heading", name="Page introuvable")).to_be_visible()
    expect(client.locator("header.topbar").get_by_role("link", name="Espace client")).to_be_visible()
    screenshot(client, "mise-en-page-404-espace-client")
    client.get_by_role("link", name="Retour à votre espace client").click()
    expect(client.get_by_role("heading", name="Mon Organisation › Devis")).to_be_visible()

    staff = new_context(viewport=LAPTOP).new_page()
    sign_in_staff(staff)
    response = staff.goto("/admin/nulle-part")
    assert response is not None and response.status == 404
    expect(staff.get_by_role("heading", name="Page introuvable")).to_be_visible()
    expect(staff.locator("nav.navbar").get_by_role("link", name="Portail Devis")).to_be_visible()
    screenshot(staff, "mise-en-page-404-gestion")
    staff.get_by_role("link", name="Retour à la gestion courante").click()
    expect(staff.get_by_role("heading", name="Gestion courante", exact=True)).to_be_visible()

    icon = staff.request.get("/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"] == "image/vnd.microsoft.icon"


def test_the_sign_in_pages_are_cards_under_the_products_name(new_context):
    page = new_context(viewport=LAPTOP).new_page()
    page.goto("/admin/connexion")
    card = page.locator(".signin-card")
    expect(card.get_by_role("heading", name="Portail Devis — Gestion courante")).to_be_visible()
    assert 300 < box_of(card)["width"] <= 420  # 26rem at most
    screenshot(page, "mise-en-page-connexion-gestion")

    page.goto("/espace-client/connexion")
    column = page.locator(".signin")
    expect(column.get_by_text("Portail Devis", exact=True)).to_be_visible()
    expect(column.get_by_role("heading", name="Connexion à votre espace client")).to_be_visible()
    assert 300 < box_of(column)["width"] <= 450  # 28rem at most
    screenshot(page, "mise-en-page-connexion-client")
