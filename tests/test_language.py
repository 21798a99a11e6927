"""Language (issue 26, point 14): a visible « FR | EN » switch in the back office, the portal and
the sign-in pages (a CSRF-checked POST that comes back to the page), kept in the session and, for
a signed-in user, in their profile, which later sessions start from; without a choice, the
browser's Accept-Language, else French. Emails and quotes reach each recipient in their language;
invoices stay French, the legal language of invoicing."""

from __future__ import annotations

import re

import pytest
from babel.dates import format_date as babel_date
from babel.numbers import format_currency
from flask_babel import force_locale
from sqlalchemy import select

from portal import auth, documents, quotes
from portal.delivery import worker
from portal.extensions import db
from portal.models import Channel, ClientRole, Invoice, User
from portal.money import format_amount

from .test_documents import pdf_text, text_of
from .web import PASSWORD, csrf_from, page_text, sign_in

P = "/espace-client"
LANG = re.compile(r'<html lang="(\w+)"')
# A browser that prefers French: whatever a page shows in English comes from the visitor's choice.
FRENCH_BROWSER = {"Accept-Language": "fr-FR,fr;q=0.9"}


def _language_of(response) -> str:
    return LANG.search(response.get_data(as_text=True)).group(1)


def _switch(client, action: str, language: str, *, page: str, next_url: str | None = None):
    """Click « FR » or « EN » on `page`: POST its switch form (CSRF token, `next`) to `action`."""
    html = client.get(page, headers=FRENCH_BROWSER).get_data(as_text=True)
    assert f'action="{action}"' in html, f"no language switch on {page}"
    return client.post(action, data={"csrf_token": csrf_from(html), "language": language,
                                     "next": page if next_url is None else next_url})


def _sign_in_client(client, user: User):
    """The portal's sign-in form (a fresh session, as a new visit gets)."""
    user.password_hash = auth.hash_password(PASSWORD)
    db.session.commit()
    html = client.get(f"{P}/connexion", headers=FRENCH_BROWSER).get_data(as_text=True)
    response = client.post(f"{P}/connexion", headers=FRENCH_BROWSER,
                           data={"csrf_token": csrf_from(html), "email": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)


def _stored_language(user: User) -> str | None:
    db.session.expire_all()
    return db.session.get(User, user.id).language


# --- Without a choice: the browser, else French ------------------------------------------------


def test_without_a_choice_the_browsers_language_decides_else_french(client):
    french = client.get(f"{P}/connexion")
    assert _language_of(french) == "fr" and "Connexion à votre espace client" in page_text(french)
    english = client.get(f"{P}/connexion", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert _language_of(english) == "en" and "Sign in to your client area" in page_text(english)
    assert "Connexion à votre espace client" not in page_text(english)
    staff_english = client.get("/admin/connexion", headers={"Accept-Language": "en"})
    assert _language_of(staff_english) == "en" and "Se connecter" not in page_text(staff_english)


def test_the_switch_shows_both_languages_and_marks_the_current_one(client):
    html = client.get(f"{P}/connexion", headers=FRENCH_BROWSER).get_data(as_text=True)
    form = re.search(rf'<form method="post" action="{P}/langue".*?</form>', html, re.S).group(0)
    assert 'name="csrf_token"' in form and f'name="next" value="{P}/connexion"' in form
    assert re.search(r'value="fr" lang="fr"\s+aria-pressed="true" title="Français"[^>]*>FR<', form)
    assert re.search(r'value="en" lang="en"\s+aria-pressed="false" title="English"[^>]*>EN<', form)


# --- The switch, for the session --------------------------------------------------------------


def test_the_sign_in_pages_switch_keeps_the_choice_for_the_session_over_the_browser(client):
    response = _switch(client, f"{P}/langue", "en", page=f"{P}/connexion?next=/espace-client/devis")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{P}/connexion?next=/espace-client/devis")
    for url in (f"{P}/connexion", "/admin/connexion", f"{P}/connexion"):  # one session, both sides
        page = client.get(url, headers=FRENCH_BROWSER)
        assert _language_of(page) == "en", url
        assert "Se connecter" not in page_text(page)
    assert "Sign in to your client area" in page_text(client.get(f"{P}/connexion", headers=FRENCH_BROWSER))

    _switch(client, "/admin/langue", "fr", page="/admin/connexion")
    back = client.get(f"{P}/connexion", headers={"Accept-Language": "en"})
    assert _language_of(back) == "fr" and "Connexion à votre espace client" in page_text(back)


def test_the_back_office_switch_sticks_and_is_kept_in_the_staff_users_profile(client, new_client, make):
    world = make.world()
    admin = world["admin"]
    sign_in(client, admin)
    home = client.get("/admin/", headers=FRENCH_BROWSER)
    assert _language_of(home) == "fr" and "Se déconnecter" in page_text(home)

    organisations = "/admin/organisations/?page=1"
    response = _switch(client, "/admin/langue", "en", page="/admin/", next_url=organisations)
    assert response.status_code == 303 and response.headers["Location"].endswith(organisations)
    assert _stored_language(admin) == "en"
    for url in ("/admin/", "/admin/compte/", "/admin/"):
        page = client.get(url, headers=FRENCH_BROWSER)
        assert _language_of(page) == "en", url
        assert "Sign out" in page_text(page) and "Se déconnecter" not in page_text(page)

    other_browser = new_client()
    sign_in(other_browser, admin)
    assert _language_of(other_browser.get("/admin/", headers=FRENCH_BROWSER)) == "en"


def test_a_clients_choice_is_kept_in_their_profile_and_starts_their_later_sessions(client, new_client, make):
    world = make.world()
    manager = world["users"][ClientRole.GESTIONNAIRE]
    _sign_in_client(client, manager)
    account = page_text(client.get(f"{P}/compte", headers=FRENCH_BROWSER))
    assert "Aucune langue enregistrée dans votre profil" in account

    response = _switch(client, f"{P}/langue", "en", page=f"{P}/compte")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"{P}/compte")
    assert _stored_language(manager) == "en"
    account = client.get(f"{P}/compte", headers=FRENCH_BROWSER)
    assert _language_of(account) == "en" and "My account" in page_text(account)
    assert ": English." in page_text(account)  # « Mon compte » shows the profile's choice
    chosen = r'value="en" lang="en" class="button"\s+aria-pressed="true">English<'
    assert re.search(chosen, page_text(account))
    quotes_page = client.get(f"{P}/devis", headers=FRENCH_BROWSER)
    assert _language_of(quotes_page) == "en" and "My organisation" in page_text(quotes_page)

    later = new_client()
    _sign_in_client(later, manager)
    assert _language_of(later.get(f"{P}/devis", headers=FRENCH_BROWSER)) == "en"
    html = later.get(f"{P}/devis", headers=FRENCH_BROWSER).get_data(as_text=True)
    later.post(f"{P}/deconnexion", data={"csrf_token": csrf_from(html)})
    signed_out = later.get(f"{P}/connexion", headers=FRENCH_BROWSER)
    assert _language_of(signed_out) == "en"  # signing out keeps the language of the browser's session

    _switch(later, f"{P}/langue", "fr", page=f"{P}/connexion")
    assert _stored_language(manager) == "en"  # signed out: the session's choice only


def test_a_choice_made_on_the_sign_in_page_survives_signing_in(client, make):
    world = make.world()
    _switch(client, f"{P}/langue", "en", page=f"{P}/connexion")
    _sign_in_client(client, world["users"][ClientRole.MEMBRE])
    assert _language_of(client.get(f"{P}/devis", headers=FRENCH_BROWSER)) == "en"
    assert _stored_language(world["users"][ClientRole.MEMBRE]) is None  # not clicked once signed in


# --- Refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["de", "", "EN", "english", "fr-FR"])
def test_an_unknown_language_is_refused_in_french_and_changes_nothing(client, make, language):
    world = make.world()
    manager = world["users"][ClientRole.GESTIONNAIRE]
    _sign_in_client(client, manager)
    response = _switch(client, f"{P}/langue", language, page=f"{P}/compte")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"{P}/compte")
    page = client.get(f"{P}/compte", headers=FRENCH_BROWSER)
    assert "Langue inconnue : choisissez français ou anglais." in page_text(page)
    assert _language_of(page) == "fr" and _stored_language(manager) is None


@pytest.mark.parametrize("next_url", ["https://ailleurs.example/", "//ailleurs.example/",
                                      "/\\ailleurs.example", "javascript:alert(1)", ""])
def test_the_switch_comes_back_to_a_page_of_this_site_only(client, next_url):
    for action, page, fallback in ((f"{P}/langue", f"{P}/connexion", f"{P}/"),
                                   ("/admin/langue", "/admin/connexion", "/admin/")):
        response = _switch(client, action, "en", page=page, next_url=next_url)
        assert response.status_code == 303
        assert response.headers["Location"] in (fallback, "http://localhost" + fallback), next_url


def test_the_switch_refuses_a_post_without_its_csrf_token(client, make):
    world = make.world()
    sign_in(client, world["admin"])
    for action in (f"{P}/langue", "/admin/langue"):
        response = client.post(action, data={"language": "en", "next": "/admin/"})
        assert response.status_code == 400
    assert _stored_language(world["admin"]) is None
    assert _language_of(client.get("/admin/", headers=FRENCH_BROWSER)) == "fr"


# --- Emails and documents in the recipient's language -------------------------------------------


def _english_amount(cents: int) -> str:
    return format_currency(cents / 100, "EUR", locale="en")


def _pdf_of(received) -> bytes:
    [attachment] = [part for part in received.message.iter_attachments()
                    if part.get_content_type() == "application/pdf"]
    return attachment.get_content()


def test_an_english_speaking_client_gets_english_emails_and_quote_a_french_one_french(app, make, smtp_server):
    world = make.world()
    users, admin = world["users"], world["admin"]
    english, french = users[ClientRole.GESTIONNAIRE], users[ClientRole.RESPONSABLE]
    english.language = "en"
    french_quote = make.sent_quote(world["org"], actor=admin, recipient=french)
    db.session.commit()

    result = worker.send_pending()  # the worker's own path: render, attach, SMTP

    assert (result.sent, result.failed) == (2, 0)
    [to_english] = [m for m in smtp_server.messages if m.rcpt_tos == [english.email]]
    [to_french] = [m for m in smtp_server.messages if m.rcpt_tos == [french.email]]
    quote = world["quote"]
    assert to_english.message["Subject"] == f"New quote {quote.reference} to review"
    assert to_english.message["Content-Language"] == "en"
    for body in (to_english.part("text/plain"), to_english.part("text/html")):
        assert f"Hello {english.full_name}," in body and "View the quote" in body
        assert _english_amount(quote.total_ttc_cents) in body
        assert babel_date(quote.valid_until, "long", locale="en") in body  # « March 31, 2026 »
        assert "Bonjour" not in body and "Voir le devis" not in body
    assert '<html lang="en">' in to_english.part("text/html")
    quote_pdf = pdf_text(_pdf_of(to_english))
    assert "Quantity" in quote_pdf and "Quantité" not in quote_pdf
    assert text_of(_english_amount(quote.total_ttc_cents)) in quote_pdf

    assert to_french.message["Subject"] == f"Nouveau devis {french_quote.reference} à consulter"
    assert to_french.message["Content-Language"] == "fr"
    for body in (to_french.part("text/plain"), to_french.part("text/html")):
        assert f"Bonjour {french.full_name}," in body and "Voir le devis" in body
        assert format_amount(french_quote.total_ttc_cents) in body
        assert babel_date(french_quote.valid_until, "long", locale="fr") in body
    assert '<html lang="fr">' in to_french.part("text/html")
    french_pdf = pdf_text(_pdf_of(to_french))
    assert "Quantité" in french_pdf and text_of(format_amount(french_quote.total_ttc_cents)) in french_pdf


def test_the_quote_pdf_is_downloaded_in_the_readers_language(client, make):
    world = make.world()
    manager, quote = world["users"][ClientRole.GESTIONNAIRE], world["quote"]
    _sign_in_client(client, manager)
    french = pdf_text(client.get(f"{P}/devis/{quote.id}/pdf").data)
    assert "Quantité" in french and text_of(format_amount(quote.total_ttc_cents)) in french
    _switch(client, f"{P}/langue", "en", page=f"{P}/devis")
    english = pdf_text(client.get(f"{P}/devis/{quote.id}/pdf").data)
    assert "Quantity" in english and "Quantité" not in english
    assert text_of(_english_amount(quote.total_ttc_cents)) in english
    assert babel_date(quote.valid_until, "d MMM y", locale="en") in english  # never 03/31 or 31/03


def test_the_invoice_stays_french_whatever_the_language(app, client, make, smtp_server):
    world = make.world()
    manager = world["users"][ClientRole.GESTIONNAIRE]
    manager.language = "en"
    quotes.accept(world["quote"], actor=manager, terms_version=world["terms"], channel=Channel.PORTAL)
    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == world["quote"].id))
    db.session.commit()
    assert invoice.pdf is None  # rendered at first need: here, an English reader's download

    _sign_in_client(client, manager)
    assert _language_of(client.get(f"{P}/factures", headers=FRENCH_BROWSER)) == "en"
    downloaded = pdf_text(client.get(f"{P}/factures/{invoice.id}/pdf").data)
    with force_locale("en"):  # an English courtesy rendering is not offered: any rendering is French
        rendered = pdf_text(documents.render_invoice_pdf(invoice))
    worker.send_pending()
    [email] = [m for m in smtp_server.messages
               if m.rcpt_tos == [manager.email] and invoice.number in str(m.message["Subject"])]
    assert str(email.message["Subject"]).startswith(f"Invoice {invoice.number}:")  # the email: English
    attached = pdf_text(_pdf_of(email))
    for text in (downloaded, rendered, attached):
        assert "FACTURE" in text and "Date d'émission" in text and "Quantité" in text
        assert text_of(format_amount(invoice.total_ttc_cents)) in text
        assert "Invoice" not in text and "Quantity" not in text
        assert text_of(_english_amount(invoice.total_ttc_cents)) not in text
