"""The language switch in a real browser (issue 26, point 14): « FR | EN » in the back office's
navbar, which stays one row at 1366 px in either language, and in the portal's header, on the
sign-in page and on a 390×844 phone; the choice follows the person from page to page, and, kept in
their profile from « Mon compte », into their next session; the page's `lang` says which language
it is in."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import CLIENT_PASSWORD, box_of, middle_of, screenshot, sign_in_staff

LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
GESTIONNAIRE = "gestionnaire@dupont.example"


def _assert_navbar_on_one_row(page: Page) -> None:
    navbar = page.locator("#admin-navbar-collapse")
    switch = navbar.locator("form.language-switch")
    account = navbar.locator("#account-menu")
    row = {middle_of(navbar.locator(".navbar-brand")), middle_of(navbar.locator(".navbar-nav > li").first),
           middle_of(switch), middle_of(account)}
    assert max(row) - min(row) <= 1, row
    assert box_of(page.locator("nav.navbar"))["height"] < 70
    navbar_box, account_box = box_of(page.locator("nav.navbar")), box_of(account)
    # Nothing pushed out of the bar (and the window): the account menu ends inside it.
    assert account_box["x"] + account_box["width"] <= navbar_box["x"] + navbar_box["width"], account_box


def _no_horizontal_scroll(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_the_back_office_switch_is_in_the_one_row_navbar_and_sticks(new_context):
    page = new_context(viewport=LAPTOP).new_page()
    sign_in_staff(page)
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    switch = page.locator("#admin-navbar-collapse form.language-switch")
    expect(switch.get_by_role("button", name="Français")).to_have_attribute("aria-pressed", "true")
    _assert_navbar_on_one_row(page)

    page.goto("/admin/organisations/")
    switch.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.url.endswith("/admin/organisations/")  # back to the same page
    expect(switch.get_by_role("button", name="English")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("link", name="Daily operations").first.click()
    expect(page.get_by_role("heading", name="Daily operations", exact=True)).to_be_visible()
    _assert_navbar_on_one_row(page)
    screenshot(page, "langue-gestion-anglais-1366")

    switch.get_by_role("button", name="Français").click()
    expect(page.get_by_role("heading", name="Gestion courante", exact=True)).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "fr")


def test_on_a_phone_the_portal_switches_from_the_sign_in_page_and_keeps_it(new_context):
    phone = new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = phone.new_page()
    page.goto("/espace-client/connexion")
    header = page.locator("header.topbar")
    brand, switch = header.get_by_role("link", name="Espace client"), header.locator("form.language-switch")
    assert abs(middle_of(brand) - middle_of(switch)) <= 1  # one row: the brand, then « FR | EN »
    _no_horizontal_scroll(page)
    switch.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Sign in to your client area")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    screenshot(page, "langue-connexion-client-mobile-anglais")

    page.get_by_label("Email address").first.fill(GESTIONNAIRE)
    page.get_by_label("Password").fill(CLIENT_PASSWORD)
    page.get_by_role("button", name="Sign in").first.click()
    expect(page.get_by_role("heading", name="My organisation › Quotes")).to_be_visible()
    assert abs(middle_of(header.locator(".brand")) - middle_of(switch)) <= 1
    _no_horizontal_scroll(page)
    screenshot(page, "langue-devis-client-mobile-anglais")

    # Chosen before signing in, English lasts for this session; « My account » keeps it for the
    # next ones.
    header.get_by_role("link", name="My account").click()
    choice = page.locator("form.language-choice")
    choice.get_by_role("button", name="English").click()
    expect(choice.get_by_role("button", name="English")).to_have_attribute("aria-pressed", "true")
    _no_horizontal_scroll(page)
    screenshot(page, "langue-mon-compte-mobile")

    later = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    later.goto("/espace-client/connexion")
    expect(later.get_by_role("heading", name="Connexion à votre espace client")).to_be_visible()
    later.get_by_label("Adresse email").first.fill(GESTIONNAIRE)
    later.get_by_label("Mot de passe").fill(CLIENT_PASSWORD)
    later.get_by_role("button", name="Se connecter").click()
    expect(later.get_by_role("heading", name="My organisation › Quotes")).to_be_visible()
    expect(later.locator("html")).to_have_attribute("lang", "en")
