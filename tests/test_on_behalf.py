"""A decision taken by staff on the client's behalf is visible to the client: staff write how the
client asked (kept in the evidence), the portal says who validated under whose mandate, and each
active responsable is emailed every time the mandate is used."""

from __future__ import annotations

import html
from datetime import datetime

import pytest
from sqlalchemy import func, select

from portal import audit_sentences, quotes
from portal.delivery.emails import render
from portal.exceptions import OnBehalfNoteMissing, OnBehalfNoteTooLong
from portal.extensions import db
from portal.labels import french_date
from portal.models import AuditEvent, Channel, ClientRole, Decision, Invoice, OutboxEmail, QuoteStatus

from .web import form_tokens, sign_in, sign_in_client

NOTE = "Demande par téléphone de M. Martin le 3/12"
TEMPLATE = "decided_on_behalf"


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _on_behalf(world, kind="accept", note=NOTE, **kwargs):
    decide = quotes.accept if kind == "accept" else quotes.refuse
    return decide(world["quote"], actor=world["admin"], terms_version=world["terms"],
                  channel=Channel.BACK_OFFICE, note=note, **kwargs)


def _emails() -> list[OutboxEmail]:
    return db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == TEMPLATE)
                              .order_by(OutboxEmail.recipient)).all()


# --- The note -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["accept", "refuse"])
@pytest.mark.parametrize("note", [None, "", "   \n "])
def test_staff_must_say_how_the_client_asked_and_nothing_changes_without_it(make, kind, note):
    world = make.world(mandate=True)
    db.session.commit()
    queued = _count(OutboxEmail)  # the quote's own email
    with pytest.raises(OnBehalfNoteMissing) as caught:
        _on_behalf(world, kind, note=note)
    assert "comment le client a demandé" in str(caught.value)
    db.session.rollback()
    assert world["quote"].status == QuoteStatus.SENT
    assert _count(Decision) == 0 and _count(Invoice) == 0 and _count(OutboxEmail) == queued


def test_the_note_holds_500_characters_at_most(make):
    world = make.world(mandate=True)
    db.session.commit()
    with pytest.raises(OnBehalfNoteTooLong) as caught:
        _on_behalf(world, note="x" * 501)
    assert "500 caractères" in str(caught.value)
    db.session.rollback()
    assert _count(Decision) == 0
    assert _on_behalf(world, note="é" * 500).on_behalf_note == "é" * 500


def test_the_note_is_kept_in_the_evidence_and_the_audit(make):
    world = make.world(mandate=True)
    decision = _on_behalf(world, "refuse", note=f"  {NOTE}  ", reason="Trop cher")
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Decision, decision.id).on_behalf_note == NOTE
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "quote.refused"))
    assert event.details["note"] == NOTE and event.details["on_behalf"] is True
    sentence = audit_sentences.describe_all([event])[event.id]
    assert f"pour le compte du client (« {NOTE} »), motif : Trop cher" in sentence


def test_a_client_deciding_for_themselves_is_asked_for_no_note(make):
    world = make.world(mandate=True)
    decision = quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                             terms_version=world["terms"], channel=Channel.PORTAL, note="ignoré")
    assert decision.on_behalf_note is None  # only staff's account of the client's request is kept
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "quote.accepted"))
    assert "note" not in event.details
    assert _emails() == []  # the mandate was not used


# --- The back office ------------------------------------------------------------------------------


def test_the_back_office_asks_for_the_note_keeps_it_and_shows_it(client, make):
    world = make.world(mandate=True)
    sign_in(client, world["admin"])
    url = f"/admin/devis/{world['quote'].id}/valider"
    page = client.get(url).get_data(as_text=True)
    assert 'name="on_behalf_note"' in page and 'maxlength="500"' in page
    assert "Comment le client a-t-il demandé cette validation ?" in page
    data = {**form_tokens(client, url), "terms_version_id": str(world["terms"].id), "on_behalf_note": " "}
    refused = client.post(url, data=data)
    assert refused.status_code == 422
    assert "Indiquez comment le client a demandé" in html.unescape(refused.get_data(as_text=True))
    assert _count(Decision) == 0 and _count(Invoice) == 0
    data = {**form_tokens(client, url), "terms_version_id": str(world["terms"].id), "on_behalf_note": NOTE}
    assert client.post(url, data=data).status_code == 302
    assert db.session.scalar(select(Decision.on_behalf_note)) == NOTE
    detail = html.unescape(client.get(f"/admin/devis/{world['quote'].id}").get_data(as_text=True))
    assert f"Demande du client, notée par l'équipe :</strong> {NOTE}" in detail


def test_a_refused_note_is_kept_in_the_form(client, make):
    world = make.world(mandate=True)
    sign_in(client, world["admin"])
    url = f"/admin/devis/{world['quote'].id}/valider"
    data = {**form_tokens(client, url), "terms_version_id": str(world["terms"].id),
            "on_behalf_note": "y" * 501}
    page = client.post(url, data=data).get_data(as_text=True)
    assert "y" * 501 in page and 'aria-invalid="true"' in page
    assert _count(Decision) == 0


# --- The portal ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "verb"), [("accept", "Validé"), ("refuse", "Refusé")])
def test_the_portal_says_the_sellers_team_decided_under_whose_mandate(client, make, kind, verb):
    world = make.world(mandate=True)
    responsable = world["users"][ClientRole.RESPONSABLE]
    decision = _on_behalf(world, kind, now=datetime(2026, 3, 2, 9, 30))
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    page = html.unescape(client.get(f"/espace-client/devis/{world['quote'].id}").get_data(as_text=True))
    assert (f"{verb} par l'équipe du vendeur ({world['admin'].full_name}) le 02/03/2026 10:30, "
            f"sous le mandat accordé par {responsable.full_name} le "
            f"{french_date(decision.mandate_granted_at)}.") in page
    assert f"Demande du client, notée par l'équipe : {NOTE}" in page


def test_a_clients_own_decision_reads_as_before(client, make):
    world = make.world(mandate=True)
    decider = world["users"][ClientRole.GESTIONNAIRE]
    quotes.accept(world["quote"], actor=decider, terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    sign_in_client(client, decider)
    page = html.unescape(client.get(f"/espace-client/devis/{world['quote'].id}").get_data(as_text=True))
    assert f"par {decider.full_name} en tant que gestionnaire." in page
    assert "l'équipe du vendeur" not in page and "notée par l'équipe" not in page


# --- The responsable's email ---------------------------------------------------------------------


def test_every_active_responsable_is_emailed_once_in_the_decisions_transaction(make):
    world = make.world(mandate=True)
    second = make.client_user(world["org"], ClientRole.RESPONSABLE)
    make.client_user(world["org"], ClientRole.RESPONSABLE, active=False)
    make.client_user(make.organisation(), ClientRole.RESPONSABLE)  # another organisation's
    db.session.commit()
    decision = _on_behalf(world)
    expected = sorted([world["users"][ClientRole.RESPONSABLE].email, second.email])
    assert [email.recipient for email in _emails()] == expected
    db.session.rollback()
    assert _emails() == [] and _count(Decision) == 0
    decision = _on_behalf(world)
    db.session.commit()
    assert [email.recipient for email in _emails()] == expected
    assert {email.dedupe_key for email in _emails()} == {f"{TEMPLATE}:{decision.id}:{a}" for a in expected}
    assert all(email.context == {"quote_id": world["quote"].id, "decision_id": decision.id}
               for email in _emails())


@pytest.mark.parametrize(("kind", "verb"), [("accept", "validé"), ("refuse", "refusé")])
def test_the_email_says_which_quote_who_when_the_note_and_how_to_withdraw(app, make, kind, verb):
    world = make.world(mandate=True)
    responsable = world["users"][ClientRole.RESPONSABLE]
    _on_behalf(world, kind, now=datetime(2026, 3, 2, 9, 30))
    db.session.commit()
    (email,) = _emails()
    with app.test_request_context("/"):
        rendered = render(email)
    reference = world["quote"].reference
    assert rendered.subject == f"Devis {reference} {verb} pour votre compte par l'équipe du vendeur"
    for part in (rendered.text, html.unescape(rendered.html)):
        assert f"{world['admin'].full_name}, de l'équipe de " in part
        org = world["org"].name
        assert f"a {verb} le devis {reference} pour le compte de {org} le 2 mars 2026 à 10:30." in part
        assert f"sous le mandat accordé par {responsable.full_name} le " in part
        assert NOTE in part
        assert f"/espace-client/devis/{world['quote'].id}" in part
        assert "/espace-client/parametres" in part
        assert "Pour le retirer, décochez l'autorisation dans les Paramètres" in part
