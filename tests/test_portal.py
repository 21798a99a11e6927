"""Client portal: Mon Organisation > Devis, the quote page with its CGV, Valider / Refuser,
Factures, Crédits, Demandes de devis, Paramètres and the roles."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import func, select

from portal import quotes
from portal.client import quotes_views
from portal.extensions import db
from portal.models import (
    BillingMode,
    Channel,
    ClientRole,
    CreditEntry,
    Decision,
    Invoice,
    Quote,
    QuoteRequest,
    QuoteStatus,
)

from .web import csrf_from, form_tokens, sign_in_client

P = "/espace-client"


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def world(make):
    world = make.world()
    db.session.commit()
    return world


def _decide(client, quote, **fields):
    page = client.get(f"{P}/devis/{quote.id}").get_data(as_text=True)
    data = {"csrf_token": csrf_from(page), **fields}
    if "terms_version_id" not in data:
        data["terms_version_id"] = _hidden(page, "terms_version_id")
    return client.post(f"{P}/devis/{quote.id}/decision", data=data)


def _hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', html)
    return match.group(1) if match else ""


def test_devis_list_shows_pending_first_with_a_count(client, world, make):
    decider = world["users"][ClientRole.GESTIONNAIRE]
    refused = make.sent_quote(world["org"], actor=world["admin"], recipient=decider)
    quotes.refuse(refused, actor=decider, terms_version=world["terms"], channel=Channel.PORTAL)
    draft = quotes.create_draft(organisation=world["org"], actor=world["admin"], title="Brouillon secret",
                                lines=[quotes.LineInput(label="x", quantity=1, unit_price_cents=1)])
    db.session.commit()
    sign_in_client(client, decider)
    html = client.get(f"{P}/devis").get_data(as_text=True)
    assert "Mon Organisation" in html and "Devis" in html
    assert "1 devis en attente de validation" in html
    assert html.index(world["quote"].reference) < html.index("Historique") < html.index(refused.reference)
    assert "Brouillon secret" not in html
    assert client.get(f"{P}/devis/{draft.id}").status_code == 404


def test_quote_page_shows_lines_totals_billing_mode_and_cgv(client, world):
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    html = unescape(client.get(f"{P}/devis/{world['quote'].id}").get_data(as_text=True))
    for words in ("Conditions Générales de Vente", world["terms"].body, "Valider", "Refuser",
                  "J'ai lu et j'accepte les Conditions Générales de Vente",
                  "Facturation à la commande", "240,00", "Total TTC"):
        assert words in html, words
    full = client.get(f"{P}/cgv").get_data(as_text=True)
    assert world["terms"].body in full


def _line_table(html: str) -> str:
    return re.search(r'<table class="lines">.*?</table>', html, re.S).group(0)


def test_a_sent_quotes_line_table_follows_each_visitors_language(client, world):
    """The table is the same at every visit, in the visitor's language (the cache behind it:
    tests/perf/test_fragments.py)."""
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    url = f"{P}/devis/{world['quote'].id}"
    first = client.get(url).get_data(as_text=True)
    english = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    again = client.get(url).get_data(as_text=True)
    assert "Désignation" in _line_table(first) and "200,00" in _line_table(first)
    assert "Item" in _line_table(english) and "Désignation" not in _line_table(english)
    assert _line_table(again) == _line_table(first)


def test_a_sent_quotes_page_follows_the_visitors_role_and_the_quotes_state(app, client, world,
                                                                            monkeypatch):
    """A membre never gets a gestionnaire's decision form, the form's token is each visitor's own,
    and an expired or decided quote shows no form (the line table, kept, is the same)."""
    quote = world["quote"]
    url = f"{P}/devis/{quote.id}"
    decider, reader = app.test_client(), app.test_client()  # IsolatedClients: a browser each
    sign_in_client(decider, world["users"][ClientRole.GESTIONNAIRE])
    sign_in_client(reader, world["users"][ClientRole.MEMBRE])
    decider.get(url)
    again = decider.get(url).get_data(as_text=True)
    read = reader.get(url).get_data(as_text=True)
    assert csrf_from(again) != csrf_from(read)
    assert 'value="valider"' in again and 'value="valider"' not in read
    assert "Seuls le responsable et les gestionnaires" in read

    monkeypatch.setattr(quotes_views, "paris_today", lambda: quote.valid_until + timedelta(days=1))
    assert "a expiré" in decider.get(url).get_data(as_text=True)
    monkeypatch.undo()

    response = decider.post(f"{url}/decision", data={
        "csrf_token": csrf_from(again), "terms_version_id": str(world["terms"].id),
        "accept_terms": "y", "action": "valider"})
    assert response.status_code == 302 and _count(Decision) == 1
    decided = decider.get(url).get_data(as_text=True)
    assert "Validé le" in decided and 'value="valider"' not in decided


def test_valider_without_the_checkbox_changes_nothing(client, world):
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    response = _decide(client, world["quote"], action="valider", reason="<b>Budget</b> revu")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Cochez" in html
    assert "&lt;b&gt;Budget&lt;/b&gt; revu</textarea>" in html  # what was typed, shown again, escaped
    assert _count(Decision) == 0 and _count(Invoice) == 0


def test_valider_per_order_goes_to_the_payment_page(client, world):
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    response = _decide(client, world["quote"], action="valider", accept_terms="y")
    invoice = db.session.scalar(select(Invoice))
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"{P}/factures/{invoice.id}/payer")
    decision = db.session.scalar(select(Decision))
    assert decision.channel == Channel.PORTAL and decision.terms_version_id == world["terms"].id
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert invoice.number in page and "Virement bancaire" in page


def test_valider_monthly_confirms_credits_and_invoice_date(client, make):
    world = make.world(billing_mode=BillingMode.MONTHLY)
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.RESPONSABLE])
    response = _decide(client, world["quote"], action="valider", accept_terms="y")
    assert response.headers["Location"].endswith(f"{P}/devis/{world['quote'].id}/confirmation")
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "20 crédits ont été ajoutés" in html and "sera émise le 01/" in html
    assert _count(CreditEntry) == 1 and _count(Invoice) == 0


def test_refuser_with_a_reason(client, world):
    sign_in_client(client, world["users"][ClientRole.RESPONSABLE])
    response = _decide(client, world["quote"], action="refuser", reason="Hors budget")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Quote, world["quote"].id).status == QuoteStatus.REFUSED
    assert db.session.scalar(select(Decision.reason)) == "Hors budget"


def test_changed_cgv_are_refused_and_the_new_terms_shown(client, world, make):
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    page = client.get(f"{P}/devis/{world['quote'].id}").get_data(as_text=True)
    make.terms(actor=world["admin"], body="Nouvelles conditions 2027.")
    db.session.commit()
    response = client.post(f"{P}/devis/{world['quote'].id}/decision", data={
        "csrf_token": csrf_from(page), "terms_version_id": str(world["terms"].id),
        "accept_terms": "y", "action": "valider"})
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "ont changé" in html and "Nouvelles conditions 2027." in html
    assert _count(Decision) == 0


def test_a_quote_decided_meanwhile_gets_a_clear_message(client, world):
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    page = client.get(f"{P}/devis/{world['quote'].id}").get_data(as_text=True)
    quotes.refuse(db.session.get(Quote, world["quote"].id), actor=world["users"][ClientRole.RESPONSABLE],
                  terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    response = client.post(f"{P}/devis/{world['quote'].id}/decision", data={
        "csrf_token": csrf_from(page), "terms_version_id": str(world["terms"].id),
        "accept_terms": "y", "action": "valider"})
    assert response.status_code == 409
    assert "plus en attente de décision" in response.get_data(as_text=True)
    assert _count(Invoice) == 0


def test_an_expired_quote_cannot_be_decided(client, world):
    world["quote"].valid_until = world["quote"].valid_until.replace(year=2020)
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    html = client.get(f"{P}/devis/{world['quote'].id}").get_data(as_text=True)
    assert "a expiré" in html and 'value="valider"' not in html
    response = client.post(f"{P}/devis/{world['quote'].id}/decision", data={
        "csrf_token": csrf_from(html), "terms_version_id": str(world["terms"].id),
        "accept_terms": "y", "action": "valider"})
    assert response.status_code == 409 and _count(Decision) == 0


def test_a_tampered_form_is_refused(client, world):
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    page = client.get(f"{P}/devis/{world['quote'].id}").get_data(as_text=True)
    assert client.post(f"{P}/devis/{world['quote'].id}/decision",
                       data={"csrf_token": csrf_from(page), "action": "supprimer"}).status_code == 400
    assert client.post(f"{P}/devis/{world['quote'].id}/decision",
                       data={"action": "valider", "accept_terms": "y"}).status_code == 400
    forged = client.post(f"{P}/devis/{world['quote'].id}/decision", data={
        "csrf_token": csrf_from(page), "terms_version_id": "abc", "accept_terms": "y",
        "action": "valider"})
    assert forged.status_code == 409 and _count(Decision) == 0


def test_membre_reads_but_cannot_decide_or_pay(client, world):
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=world["terms"], channel=Channel.PORTAL)
    other = world["quote"]
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.MEMBRE])
    html = client.get(f"{P}/devis/{other.id}").get_data(as_text=True)
    assert 'value="valider"' not in html
    invoice = db.session.scalar(select(Invoice))
    assert "Payer" not in client.get(f"{P}/factures").get_data(as_text=True)
    assert client.get(f"{P}/factures/{invoice.id}/payer").status_code == 302


def test_membre_decision_is_refused_by_the_server(client, world):
    sign_in_client(client, world["users"][ClientRole.MEMBRE])
    page = client.get(f"{P}/devis/{world['quote'].id}").get_data(as_text=True)
    response = client.post(f"{P}/devis/{world['quote'].id}/decision", data={
        "csrf_token": csrf_from(page), "terms_version_id": str(world["terms"].id),
        "accept_terms": "y", "action": "valider"})
    assert response.status_code == 409
    assert "responsable ou un gestionnaire" in response.get_data(as_text=True)
    assert _count(Decision) == 0


def test_factures_and_credits(client, world):
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.RESPONSABLE])
    invoice = db.session.scalar(select(Invoice))
    html = client.get(f"{P}/factures").get_data(as_text=True)
    assert invoice.number in html and "Payer" in html
    assert client.get(f"{P}/factures/{invoice.id}").status_code == 200
    credits = client.get(f"{P}/credits").get_data(as_text=True)
    assert "Solde : 0 crédits" in credits or "Solde : 0 crédit" in credits


def test_demandes_de_devis(client, world, make):
    product = make.product(name="Pack Découverte")
    hidden = make.product(name="Offre cachée", published=False)
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.MEMBRE])
    page = client.get(f"{P}/demandes").get_data(as_text=True)
    assert "Pack Découverte" in page and "Offre cachée" not in page
    tokens = form_tokens(client, f"{P}/demandes")
    data = {**tokens, f"quantity-{product.id}": "4", "message": "Merci !"}
    assert client.post(f"{P}/demandes", data=data).status_code == 302
    assert client.post(f"{P}/demandes", data=data).status_code == 200  # double submit
    assert _count(QuoteRequest) == 1
    bad = client.post(f"{P}/demandes", data={**form_tokens(client, f"{P}/demandes"),
                                              f"quantity-{product.id}": "deux"})
    assert "Quantité invalide" in bad.get_data(as_text=True)
    nothing = client.post(f"{P}/demandes", data=form_tokens(client, f"{P}/demandes"))
    assert "au moins un produit" in nothing.get_data(as_text=True)
    forged = client.post(f"{P}/demandes", data={**form_tokens(client, f"{P}/demandes"),
                                                 f"quantity-{hidden.id}": "1"})
    assert "au moins un produit" in forged.get_data(as_text=True)
    assert _count(QuoteRequest) == 1
    listing = client.get(f"{P}/demandes").get_data(as_text=True)
    assert "4 × Pack Découverte" in listing


def test_parametres_mandate_switch(client, world):
    responsable = world["users"][ClientRole.RESPONSABLE]
    sign_in_client(client, responsable)
    html = client.get(f"{P}/parametres").get_data(as_text=True)
    assert "Autoriser l’équipe commerciale à valider vos devis pour votre compte" in html
    for user in world["users"].values():
        assert user.email in html
    client.post(f"{P}/parametres", data={"csrf_token": csrf_from(html), "allowed": "y"})
    db.session.expire_all()
    org = world["org"]
    assert org.staff_validation_allowed and org.staff_validation_changed_by_id == responsable.id
    client.post(f"{P}/parametres", data={"csrf_token": csrf_from(html)})
    db.session.expire_all()
    assert not world["org"].staff_validation_allowed


def test_only_the_responsable_sees_parametres(client, world):
    for role in (ClientRole.GESTIONNAIRE, ClientRole.MEMBRE):
        sign_in_client(client, world["users"][role])
        assert "Paramètres" not in client.get(f"{P}/devis").get_data(as_text=True)
        assert client.get(f"{P}/parametres").status_code == 404
    sign_in_client(client, world["users"][ClientRole.RESPONSABLE])
    assert "Paramètres" in client.get(f"{P}/devis").get_data(as_text=True)


def test_anonymous_is_sent_to_sign_in_with_the_destination(client, world):
    response = client.get(f"{P}/devis/{world['quote'].id}")
    assert response.status_code == 302
    assert f"{P}/connexion?next=" in response.headers["Location"]
    assert f"devis/{world['quote'].id}" in response.headers["Location"]


def test_quote_pdf_download(client, world):
    sign_in_client(client, world["users"][ClientRole.MEMBRE])
    response = client.get(f"{P}/devis/{world['quote'].id}/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")


def test_the_navigation_shows_each_client_its_own_organisation_and_signs_it_out(app, client, world, make):
    """The organisation's name (escaped) and the sign-out form's CSRF token are each client's own."""
    other_org = make.organisation(name="Dupont & <Fils>")
    other = make.client_user(other_org, ClientRole.GESTIONNAIRE)
    db.session.commit()
    pages = {}
    for user in (world["users"][ClientRole.GESTIONNAIRE], other):
        browser = app.test_client()  # an IsolatedClient, as `client`: one browser each
        sign_in_client(browser, user)
        pages[user.id] = (browser, browser.get(f"{P}/devis").get_data(as_text=True))
    (_, my_page), (_, their_page) = pages.values()
    assert f"· {world['org'].name}</span>" in my_page and "Dupont" not in my_page
    assert "· Dupont &amp; &lt;Fils&gt;</span>" in their_page
    for browser, page in pages.values():
        logout = re.search(r'action="[^"]*/deconnexion".*?name="csrf_token" value="([^"]+)"', page, re.S)
        assert browser.post(f"{P}/deconnexion", data={"csrf_token": logout.group(1)}).status_code == 302
        assert browser.get(f"{P}/devis").status_code == 302  # signed out
