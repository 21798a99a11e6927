"""Back office: organisation page, quote editor, requests, validation on behalf (the home:
tests/test_admin_home.py)."""

from __future__ import annotations

import html
import logging
import re

import pytest
from sqlalchemy import func, select

from portal import quote_requests, quotes
from portal.extensions import db
from portal.models import (
    BillingMode,
    Channel,
    ClientRole,
    CreditEntry,
    Decision,
    Invoice,
    OutboxEmail,
    Quote,
    QuoteRequestStatus,
    QuoteStatus,
)

from .web import form_tokens, page_text, sign_in


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.parametrize("tab", ["informations", "utilisateurs", "devis", "factures", "credits",
                                 "historique"])
def test_organisation_tabs(staff_client, tab):
    org = staff_client.world["org"]
    response = staff_client.get(f"/admin/organisation/{org.id}/{tab}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Devis" in html and org.name in html
    if tab == "devis":
        assert staff_client.world["quote"].reference in html and "Réviser" in html


def test_unknown_organisation_or_tab_is_404(staff_client):
    assert staff_client.get("/admin/organisation/999999/").status_code == 404
    org = staff_client.world["org"]
    assert staff_client.get(f"/admin/organisation/{org.id}/secret").status_code == 404


def _new_quote_form(client, org, **fields):
    tokens = form_tokens(client, f"/admin/devis/nouveau/{org.id}")
    data = {**tokens, "title": "Offre test", "validity_days": "15"}
    data.update(fields)
    return tokens, data


def test_create_a_quote_with_an_unpublished_product_and_a_free_line(staff_client, make):
    world = staff_client.world
    hidden = make.product(published=False, name="Audit confidentiel", unit_price_cents=150000)
    db.session.commit()
    page = staff_client.get(f"/admin/devis/nouveau/{world['org'].id}").get_data(as_text=True)
    assert "Audit confidentiel (non publié)" in page
    _, data = _new_quote_form(staff_client, world["org"], **{
        "recipient_id": str(world["users"][ClientRole.RESPONSABLE].id),
        "lines-0-product_id": str(hidden.id), "lines-0-quantity": "2", "lines-0-unit_price": "1 200,50",
        "lines-1-label": "Déplacement", "lines-1-quantity": "1", "lines-1-unit_price": "80",
        "lines-1-vat_rate_bp": "2000",
    })
    response = staff_client.post(f"/admin/devis/nouveau/{world['org'].id}", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    quote = db.session.scalar(select(Quote).where(Quote.title == "Offre test"))
    assert [(line.label, line.quantity, line.unit_price_cents) for line in quote.lines] == [
        ("Audit confidentiel", 2, 120050), ("Déplacement", 1, 8000)]
    assert quote.validity_days == 15 and quote.status == QuoteStatus.DRAFT
    again = staff_client.post(f"/admin/devis/nouveau/{world['org'].id}", data=data)
    assert "déjà été envoyé" in again.get_data(as_text=True)  # a double submit creates nothing
    assert _count(Quote, Quote.title == "Offre test") == 1


@pytest.mark.parametrize(("fields", "message"), [
    ({}, "au moins une ligne"),
    ({"lines-0-label": "x", "lines-0-quantity": "0", "lines-0-unit_price": "10"}, "quantité"),
    ({"lines-0-label": "x", "lines-0-quantity": "1", "lines-0-unit_price": "-5"}, "Montant invalide"),
    ({"lines-0-label": "x", "lines-0-quantity": "1", "lines-0-unit_price": "1",
      "lines-0-vat_rate_bp": "1960"}, "Taux de TVA"),
])
def test_bad_quote_input_shows_a_message_and_creates_nothing(staff_client, fields, message):
    world = staff_client.world
    before = _count(Quote)
    _, data = _new_quote_form(staff_client, world["org"], **fields)
    response = staff_client.post(f"/admin/devis/nouveau/{world['org'].id}", data=data)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert _count(Quote) == before


BEYOND_REASON = ["9" * 5000, "NaN", "Infinity", "-1", str(2**63), "1e5", "١٢", "²"]


@pytest.mark.parametrize("value", BEYOND_REASON)
@pytest.mark.parametrize(("field", "message"), [
    ("lines-0-product_id", "Produit inconnu."),
    ("lines-0-vat_rate_bp", "Taux de TVA non autorisé : choisissez 0 %, 2,1 %, 5,5 %, 10 % ou 20 %."),
    ("recipient_id", "Le destinataire doit être un responsable ou un gestionnaire"),
    ("lines-0-quantity", "La quantité doit être un nombre entier compris entre 1 et 1\u202f000\u202f000."),
    ("validity_days", "Nombre invalide : saisissez un nombre entier compris entre 1 et 365."),
])
def test_numbers_beyond_reason_in_the_quote_editor_are_refused_in_french(staff_client, make, field, value,
                                                                         message, caplog):
    world = staff_client.world
    product = make.product()
    db.session.commit()
    _, data = _new_quote_form(staff_client, world["org"], **{
        "recipient_id": str(world["users"][ClientRole.RESPONSABLE].id), "lines-0-product_id": str(product.id),
        "lines-0-quantity": "2", "lines-0-vat_rate_bp": "2000", field: value})
    caplog.set_level(logging.WARNING)
    response = staff_client.post(f"/admin/devis/nouveau/{world['org'].id}", data=data)
    assert response.status_code == 200
    assert message in html.unescape(response.get_data(as_text=True))
    assert _count(Quote) == 1  # the world's quote only
    logged = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(logged) <= 1 and not any(record.exc_info for record in logged)
    assert not any(value[:20] in record.getMessage() for record in logged if len(value) > 3)


@pytest.mark.parametrize(("fields", "message"), [
    ({"lines-0-quantity": "1000001", "lines-0-unit_price": "1"},
     "La quantité doit être un nombre entier compris entre 1 et 1\u202f000\u202f000."),
    ({"lines-0-quantity": "1000000", "lines-0-unit_price": "999 999 999,99"},
     "Montant ou nombre de crédits trop élevé"),
    ({"lines-0-quantity": "1000000", "lines-0-unit_price": "999 999 999,999"}, "Montant invalide"),
    ({"lines-0-quantity": "1", "lines-0-unit_price": "9" * 5000}, "Montant invalide"),
])
def test_a_quote_beyond_the_quantity_and_amount_limits_is_refused(staff_client, fields, message):
    world = staff_client.world
    _, data = _new_quote_form(staff_client, world["org"], **{"lines-0-label": "x", **fields})
    response = staff_client.post(f"/admin/devis/nouveau/{world['org'].id}", data=data)
    assert response.status_code == 200
    assert message in html.unescape(response.get_data(as_text=True))
    assert _count(Quote) == 1


def test_a_quote_beyond_the_credit_limit_is_refused(staff_client, make):
    world = staff_client.world
    product = make.product(credits_per_unit=1_000_000)
    db.session.commit()
    _, data = _new_quote_form(staff_client, world["org"], **{
        "lines-0-product_id": str(product.id), "lines-0-quantity": "10000"})
    response = staff_client.post(f"/admin/devis/nouveau/{world['org'].id}", data=data)
    assert "Montant ou nombre de crédits trop élevé" in html.unescape(response.get_data(as_text=True))
    assert _count(Quote) == 1


def test_validating_on_behalf_with_a_huge_terms_id_is_refused_cleanly(client, make, caplog):
    world = make.world(mandate=True)
    sign_in(client, world["admin"])
    quote = world["quote"]
    caplog.set_level(logging.WARNING)
    for terms_id in ("9" * 5000, str(2**63), "NaN", "-1"):
        data = {**form_tokens(client, f"/admin/devis/{quote.id}/valider"), "terms_version_id": terms_id,
                "on_behalf_note": "Demande par téléphone"}
        response = client.post(f"/admin/devis/{quote.id}/valider", data=data, follow_redirects=True)
        assert response.status_code == 200
        assert "Conditions Générales de Vente" in html.unescape(response.get_data(as_text=True))
    assert _count(Decision) == 0 and _count(Invoice) == 0
    assert not any(record.exc_info for record in caplog.records)


def test_a_recipient_from_another_organisation_is_refused(staff_client, make):
    world = staff_client.world
    stranger = make.client_user(make.organisation(), ClientRole.RESPONSABLE)
    db.session.commit()
    _, data = _new_quote_form(staff_client, world["org"], recipient_id=str(stranger.id),
                              **{"lines-0-label": "x", "lines-0-quantity": "1",
                                 "lines-0-unit_price": "10"})
    response = staff_client.post(f"/admin/devis/nouveau/{world['org'].id}", data=data)
    assert "Le destinataire doit être" in response.get_data(as_text=True)
    assert _count(Quote) == 1


def test_send_after_confirmation_then_revise_and_cancel(staff_client):
    world = staff_client.world
    draft = quotes.create_draft(organisation=world["org"], actor=world["admin"],
                                recipient=world["users"][ClientRole.GESTIONNAIRE],
                                lines=[quotes.LineInput(label="Conseil", quantity=3, unit_price_cents=5000)])
    db.session.commit()
    confirm = staff_client.get(f"/admin/devis/{draft.id}/envoyer").get_data(as_text=True)
    assert "Confirmer l’envoi" in confirm and draft.status == QuoteStatus.DRAFT
    tokens = form_tokens(staff_client, f"/admin/devis/{draft.id}/envoyer")
    staff_client.post(f"/admin/devis/{draft.id}/envoyer", data=tokens)
    db.session.expire_all()
    assert db.session.get(Quote, draft.id).status == QuoteStatus.SENT
    assert _count(OutboxEmail, OutboxEmail.dedupe_key == f"quote_sent:{draft.id}") == 1
    twice = staff_client.post(f"/admin/devis/{draft.id}/envoyer", data=tokens, follow_redirects=True)
    assert "plus un brouillon" in twice.get_data(as_text=True)

    tokens = form_tokens(staff_client, f"/admin/devis/{draft.id}")
    revised = staff_client.post(f"/admin/devis/{draft.id}/reviser", data=tokens)
    revision = db.session.scalar(select(Quote).where(Quote.supersedes_id == draft.id))
    assert revised.headers["Location"].endswith(f"/admin/devis/{revision.id}")
    assert revision.revision == 2 and revision.status == QuoteStatus.DRAFT

    tokens = form_tokens(staff_client, f"/admin/devis/{draft.id}/annuler")
    staff_client.post(f"/admin/devis/{draft.id}/annuler", data=tokens)
    db.session.expire_all()
    assert db.session.get(Quote, draft.id).status == QuoteStatus.CANCELLED


def test_edit_a_draft(staff_client):
    world = staff_client.world
    draft = quotes.create_draft(organisation=world["org"], actor=world["admin"],
                                lines=[quotes.LineInput(label="A", quantity=1, unit_price_cents=100)])
    db.session.commit()
    page = staff_client.get(f"/admin/devis/{draft.id}").get_data(as_text=True)
    assert 'value="A"' in page and "Enregistrer le brouillon" in page
    data = {**form_tokens(staff_client, f"/admin/devis/{draft.id}"), "title": "Modifié",
            "recipient_id": str(world["users"][ClientRole.GESTIONNAIRE].id),
            "lines-0-label": "B", "lines-0-quantity": "4", "lines-0-unit_price": "2,5"}
    assert staff_client.post(f"/admin/devis/{draft.id}", data=data).status_code == 302
    db.session.expire_all()
    quote = db.session.get(Quote, draft.id)
    assert quote.title == "Modifié" and quote.total_ht_cents == 1000
    assert [line.label for line in quote.lines] == ["B"]


def test_validate_on_behalf_with_the_mandate(client, make):
    world = make.world(mandate=True)
    sign_in(client, world["admin"])
    quote = world["quote"]
    page = client.get(f"/admin/devis/{quote.id}/valider").get_data(as_text=True)
    assert world["terms"].version_label in page and "Valider" in page
    data = {**form_tokens(client, f"/admin/devis/{quote.id}/valider"),
            "terms_version_id": str(world["terms"].id), "on_behalf_note": "Demande par téléphone"}
    client.post(f"/admin/devis/{quote.id}/valider", data=data)
    decision = db.session.scalar(select(Decision))
    assert decision.channel == Channel.BACK_OFFICE and decision.actor_id == world["admin"].id
    assert decision.mandate_granted_by_id == world["users"][ClientRole.RESPONSABLE].id
    assert _count(Invoice) == 1
    assert _count(OutboxEmail, OutboxEmail.template == "invoice_issued") == 1


def test_validate_on_behalf_of_a_monthly_client_grants_credits(client, make):
    world = make.world(billing_mode=BillingMode.MONTHLY, mandate=True)
    sign_in(client, world["admin"])
    quote = world["quote"]
    data = {**form_tokens(client, f"/admin/devis/{quote.id}/valider"),
            "terms_version_id": str(world["terms"].id), "on_behalf_note": "Demande par téléphone"}
    client.post(f"/admin/devis/{quote.id}/valider", data=data)
    assert _count(CreditEntry) == 1 and _count(Invoice) == 0


def test_validate_on_behalf_without_the_mandate_is_refused(staff_client):
    world = staff_client.world
    quote = world["quote"]
    tab = staff_client.get(f"/admin/organisation/{world['org'].id}/devis").get_data(as_text=True)
    assert "Valider pour le compte du client" not in tab
    page = staff_client.get(f"/admin/devis/{quote.id}/valider", follow_redirects=True)
    assert "pas autorisé la validation" in page.get_data(as_text=True)
    data = {**form_tokens(staff_client, f"/admin/devis/{quote.id}"),
            "terms_version_id": str(world["terms"].id)}
    refused = staff_client.post(f"/admin/devis/{quote.id}/valider", data=data, follow_redirects=True)
    assert "pas autorisé la validation" in refused.get_data(as_text=True)
    assert _count(Decision) == 0 and _count(Invoice) == 0


def test_requests_inbox_answer_and_decline(staff_client, make):
    world = staff_client.world
    product = make.product(name="Pack découverte")
    member = world["users"][ClientRole.MEMBRE]
    first = quote_requests.create_request(organisation=world["org"], requester=member,
                                          items=[(product.id, 3)], message="Pour notre équipe")
    second = quote_requests.create_request(organisation=world["org"], requester=member,
                                           items=[(product.id, 1)])
    db.session.commit()
    inbox = staff_client.get("/admin/demandes/").get_data(as_text=True)
    assert "Pour notre équipe" in inbox
    detail = staff_client.get(f"/admin/demandes/{first.id}").get_data(as_text=True)
    assert "Pack découverte" in detail and "Répondre" in detail and "Décliner" in detail
    tokens = form_tokens(staff_client, f"/admin/demandes/{first.id}")
    answered = staff_client.post(f"/admin/demandes/{first.id}/repondre", data=tokens)
    db.session.expire_all()
    draft = db.session.scalar(select(Quote).where(Quote.request_id == first.id))
    assert answered.headers["Location"].endswith(f"/admin/devis/{draft.id}")
    assert [(line.product_id, line.quantity) for line in draft.lines] == [(product.id, 3)]

    tokens = form_tokens(staff_client, f"/admin/demandes/{second.id}")
    empty = staff_client.post(f"/admin/demandes/{second.id}/decliner", data={**tokens, "reason": " "})
    assert "Indiquez le motif" in empty.get_data(as_text=True)
    staff_client.post(f"/admin/demandes/{second.id}/decliner", data={**tokens, "reason": "Hors catalogue"})
    db.session.expire_all()
    assert db.session.get(type(second), second.id).status == QuoteRequestStatus.DECLINED


def test_quote_pdf_download_from_the_back_office(staff_client):
    quote = staff_client.world["quote"]
    page = staff_client.get(f"/admin/devis/{quote.id}").get_data(as_text=True)
    assert f"/admin/devis/{quote.id}/pdf" in page
    response = staff_client.get(f"/admin/devis/{quote.id}/pdf")
    assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")
    assert quote.reference in response.headers["Content-Disposition"]


# --- "Envoyer" in the editor saves first; a draft without a recipient never reaches the confirmation


RECIPIENT_MISSING = "Choisissez le destinataire avant d’envoyer le devis"


def _draft(world, **overrides):
    draft = quotes.create_draft(organisation=world["org"], actor=world["admin"], **{
        "lines": [quotes.LineInput(label="Conseil", quantity=1, unit_price_cents=10000)], **overrides})
    db.session.commit()
    return draft


def test_envoyer_saves_the_edits_then_shows_them_in_the_send_confirmation(staff_client):
    world = staff_client.world
    draft = _draft(world, recipient=world["users"][ClientRole.GESTIONNAIRE])
    data = {**form_tokens(staff_client, f"/admin/devis/{draft.id}"), "envoyer": "1",
            "recipient_id": str(world["users"][ClientRole.GESTIONNAIRE].id),
            "lines-0-label": "Conseil et accompagnement", "lines-0-quantity": "3",
            "lines-0-unit_price": "250"}
    response = staff_client.post(f"/admin/devis/{draft.id}", data=data)
    assert response.headers["Location"].endswith(f"/admin/devis/{draft.id}/envoyer")
    confirmation = page_text(staff_client.get(response.headers["Location"]))
    assert "Confirmer l’envoi" in confirmation and "Conseil et accompagnement" in confirmation
    assert "750,00" in confirmation  # the edited line's total, as saved
    db.session.expire_all()
    quote = db.session.get(Quote, draft.id)
    assert [(line.label, line.quantity) for line in quote.lines] == [("Conseil et accompagnement", 3)]
    assert quote.status == QuoteStatus.DRAFT  # sent only once confirmed
    assert _count(OutboxEmail, OutboxEmail.dedupe_key == f"quote_sent:{draft.id}") == 0


def test_envoyer_without_a_recipient_stays_on_the_editor_and_says_so(staff_client):
    world = staff_client.world
    draft = _draft(world)
    data = {**form_tokens(staff_client, f"/admin/devis/{draft.id}"), "envoyer": "1", "recipient_id": "",
            "lines-0-label": "Conseil modifié", "lines-0-quantity": "2", "lines-0-unit_price": "100"}
    response = staff_client.post(f"/admin/devis/{draft.id}", data=data)
    assert response.status_code == 200
    page = page_text(response)
    error = re.search(r'<small[^>]*id="recipient-error"[^>]*>([^<]*)</small>', page)
    assert error and RECIPIENT_MISSING in error.group(1)  # next to the recipient field
    assert 'aria-describedby="recipient-error"' in page
    assert "Le destinataire doit être" not in page and "Confirmer l’envoi" not in page
    assert 'value="Conseil modifié"' in page  # the edits are still in the form
    db.session.expire_all()
    quote = db.session.get(Quote, draft.id)
    assert quote.status == QuoteStatus.DRAFT and [line.label for line in quote.lines] == ["Conseil"]
    assert _count(OutboxEmail, OutboxEmail.dedupe_key == f"quote_sent:{draft.id}") == 0


def test_the_send_confirmation_of_a_draft_without_a_recipient_is_the_editor(staff_client):
    draft = _draft(staff_client.world)
    page = page_text(staff_client.get(f"/admin/devis/{draft.id}/envoyer"))
    assert RECIPIENT_MISSING in page and "Confirmer l’envoi" not in page
    assert f'action="/admin/devis/{draft.id}"' in page  # its form saves the draft, it does not send


def test_envoyer_on_a_new_quote_creates_it_then_asks_for_confirmation(staff_client):
    world = staff_client.world
    lines = {"lines-0-label": "Atelier", "lines-0-quantity": "1", "lines-0-unit_price": "90"}
    _, data = _new_quote_form(staff_client, world["org"], envoyer="1", **lines)
    refused = staff_client.post(f"/admin/devis/nouveau/{world['org'].id}", data=data)
    assert refused.status_code == 200 and RECIPIENT_MISSING in page_text(refused)
    assert _count(Quote, Quote.title == "Offre test") == 0
    data["recipient_id"] = str(world["users"][ClientRole.RESPONSABLE].id)
    created = staff_client.post(f"/admin/devis/nouveau/{world['org'].id}", data=data)
    quote = db.session.scalar(select(Quote).where(Quote.title == "Offre test"))
    assert created.headers["Location"].endswith(f"/admin/devis/{quote.id}/envoyer")
    assert quote.status == QuoteStatus.DRAFT
