"""An organisation in the back office: its « Crédits » tab (the ledger, page by page, and staff
adjustments confirmed with the balance before and after) and its platform `external_id`."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal import credits
from portal.extensions import db
from portal.models import AuditEvent, CreditEntry, CreditEntryKind, Organisation, StaffRole

from .web import csrf_token, page_text, post_form, sign_in


@pytest.fixture(params=[StaffRole.ADMIN, StaffRole.SALES])
def staff_member(request, client, make):
    """A signed-in staff member of each role (both may adjust credits)."""
    member = make.staff(request.param, full_name=f"Équipe {request.param.value}")
    sign_in(client, member)
    client.member = member
    return client


@pytest.fixture
def org(make):
    organisation = make.organisation(name="Alpha Analyses")
    credits.adjust_credits(organisation, 40, actor=make.staff(), reason="Solde initial")
    db.session.commit()
    return organisation


def _shown(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page_text(response)).split())


def _adjustments(org) -> list[CreditEntry]:
    db.session.expire_all()
    return db.session.scalars(select(CreditEntry).where(CreditEntry.organisation_id == org.id,
                                                        CreditEntry.kind == CreditEntryKind.ADJUSTMENT)
                              .order_by(CreditEntry.id)).all()


def _adjust_url(org) -> str:
    return f"/admin/organisation/{org.id}/credits/ajustement"


def _tab(org) -> str:
    return f"/admin/organisation/{org.id}/credits"


def test_an_adjustment_is_confirmed_with_the_balance_before_and_after(staff_member, org):
    first = post_form(staff_member, _adjust_url(org),
                      {"amount": "-15", "reason": "Analyse ratée, remboursée"}, form_url=_tab(org))
    assert first.status_code == 200
    shown = _shown(first)
    assert "Solde actuel 40 crédits" in shown and "Ajustement -15" in shown
    assert "Solde après l’ajustement 25 crédits" in shown and "Analyse ratée, remboursée" in shown
    assert len(_adjustments(org)) == 1  # nothing written before the confirmation
    confirmed = staff_member.post(_adjust_url(org), data={
        "csrf_token": csrf_token(staff_member, _tab(org)), "amount": "-15",
        "reason": "Analyse ratée, remboursée", "balance_seen": "40", "confirm": "y"})
    assert confirmed.status_code == 302 and confirmed.headers["Location"].endswith(_tab(org))
    adjustment = _adjustments(org)[-1]
    assert (adjustment.amount, adjustment.reason, adjustment.actor_id) == (
        -15, "Analyse ratée, remboursée", staff_member.member.id)
    assert credits.credit_balance(org.id) == 25
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "credits.adjustment")
                              .order_by(AuditEvent.id.desc()))
    assert event.actor_id == staff_member.member.id and event.ip == "127.0.0.1"
    tab = _shown(staff_member.get(_tab(org)))
    assert "Ajustement de -15 crédits enregistré : le solde est de 25 crédits." in tab
    assert "Solde : 25 crédits" in tab and staff_member.member.full_name in tab


def test_the_confirmation_is_shown_again_when_the_balance_moved_meanwhile(staff_member, org):
    credits.consume_credits(org, 10, actor=None, reason="Consommée entre-temps")
    db.session.commit()
    response = staff_member.post(_adjust_url(org), data={
        "csrf_token": csrf_token(staff_member, _tab(org)), "amount": "5", "reason": "Geste",
        "balance_seen": "40", "confirm": "y"})
    shown = _shown(response)
    assert "Le solde a changé depuis la page précédente" in shown
    assert "Solde actuel 30 crédits" in shown and "Solde après l’ajustement 35 crédits" in shown
    assert len(_adjustments(org)) == 1


@pytest.mark.parametrize(("data", "message"), [
    ({"amount": "5", "reason": "  "}, "Indiquez le motif de l'ajustement."),
    ({"amount": "0", "reason": "Rien"}, "Un ajustement de zéro crédit n'a pas d'effet."),
    ({"amount": "", "reason": "Rien"}, "Indiquez le nombre de crédits à ajouter ou retirer."),
    ({"amount": "1,5", "reason": "Rien"}, "Nombre invalide"),
    ({"amount": "9" * 50, "reason": "Rien"}, "Nombre invalide"),
])
def test_a_bad_adjustment_is_refused_on_the_tab_and_writes_nothing(staff_member, org, data, message):
    response = post_form(staff_member, _adjust_url(org), {**data, "confirm": "y", "balance_seen": "40"},
                         form_url=_tab(org))
    assert response.status_code == 200 and message in page_text(response)
    assert "Solde : 40 crédits" in _shown(response)  # the tab, with its ledger
    assert len(_adjustments(org)) == 1


def test_an_adjustment_below_zero_is_not_offered_for_confirmation(staff_member, org):
    response = post_form(staff_member, _adjust_url(org), {"amount": "-41", "reason": "Trop"},
                         form_url=_tab(org))
    shown = _shown(response)
    assert "Solde de crédits insuffisant (solde disponible : 40)." in shown
    assert "Confirmer l’ajustement" not in shown
    forced = staff_member.post(_adjust_url(org), data={
        "csrf_token": csrf_token(staff_member, _tab(org)), "amount": "-41", "reason": "Trop",
        "balance_seen": "40", "confirm": "y"})
    assert "Solde de crédits insuffisant" in page_text(forced) and credits.credit_balance(org.id) == 40


def test_the_adjustment_needs_its_csrf_token(staff_member, org):
    response = staff_member.post(_adjust_url(org), data={"amount": "5", "reason": "x", "balance_seen": "40",
                                                         "confirm": "y"})
    assert response.status_code == 400 and len(_adjustments(org)) == 1


def test_the_credits_tab_pages_through_the_ledger(staff_member, org):
    for n in range(40):
        credits.consume_credits(org, 1, actor=None, reason=f"Analyse n°{n:02d}")
    for n in range(40, 60):
        credits.adjust_credits(org, 1, actor=staff_member.member, reason=f"Bonus n°{n:02d}")
    db.session.commit()
    first = page_text(staff_member.get(_tab(org)))  # the 50 newest of 61 entries
    assert "Bonus n°59" in first and "Analyse n°10" in first and "Analyse n°09" not in first
    older = re.search(r'href="([^"]*avant=\d+)"', first).group(1).replace("&amp;", "&")
    second = page_text(staff_member.get(older))
    assert "Analyse n°09" in second and "Analyse n°00" in second and "Solde initial" in second
    assert "Bonus" not in second and "Analyse n°10" not in second


# --- The platform's external id -----------------------------------------------------------------

FORM = {"name": "Alpha Analyses", "country": "FR", "billing_mode": "per_order", "payment_terms_days": "30"}


def _external_ids() -> list[str | None]:
    db.session.expire_all()
    return list(db.session.scalars(select(Organisation.external_id).order_by(Organisation.id)))


def test_the_external_id_is_edited_and_shown_on_the_organisation_page(staff_member, org):
    url = f"/admin/organisations/edit/?id={org.id}"
    response = post_form(staff_member, url, {**FORM, "external_id": "  plat-42  "})
    assert response.status_code == 302, page_text(response)
    assert _external_ids() == ["plat-42"]
    page = _shown(staff_member.get(f"/admin/organisation/{org.id}/"))
    assert "Identifiant externe (plateforme) plat-42" in page
    assert "plat-42" in page_text(staff_member.get("/admin/organisations/"))
    blank = post_form(staff_member, url, {**FORM, "external_id": "   "})
    assert blank.status_code == 302 and _external_ids() == [None]


def test_an_external_id_already_taken_is_a_clear_french_refusal(staff_member, org, make):
    make.organisation(name="Beta", external_id="plat-42")
    db.session.commit()
    response = post_form(staff_member, f"/admin/organisations/edit/?id={org.id}",
                         {**FORM, "external_id": "plat-42"})
    assert response.status_code == 200
    assert "L'identifiant externe plat-42 est déjà celui d'une autre organisation." in page_text(response)
    assert "Integrity" not in page_text(response)
    created = post_form(staff_member, "/admin/organisations/new/", {**FORM, "external_id": "plat-42"})
    assert "L'identifiant externe plat-42 est déjà celui d'une autre organisation." in page_text(created)
    assert sorted(_external_ids(), key=str) == [None, "plat-42"]
    assert db.session.scalar(select(func.count()).select_from(Organisation)) == 2


@pytest.mark.parametrize("value", ["plat 42", "<script>", "é-42", "x" * 101])
def test_a_malformed_external_id_is_refused_on_its_field(staff_member, org, value):
    response = post_form(staff_member, f"/admin/organisations/edit/?id={org.id}",
                         {**FORM, "external_id": value})
    assert response.status_code == 200 and _external_ids() == [None]
    assert ("L'identifiant externe s'écrit en lettres sans accent" in page_text(response)
            or "100 caractères au plus" in page_text(response))


def test_an_external_id_taken_between_the_check_and_the_commit_is_still_a_french_refusal(
        staff_member, org, make, monkeypatch):
    """The unique index has the last word when two saves race: its refusal reads as the check's."""
    from portal.admin.organisations import OrganisationListView

    make.organisation(name="Beta", external_id="plat-42")
    db.session.commit()
    monkeypatch.setattr(OrganisationListView, "on_model_change", lambda *args: None)  # the check passed
    response = post_form(staff_member, f"/admin/organisations/edit/?id={org.id}",
                         {**FORM, "external_id": "plat-42"})
    text = page_text(response)
    assert "L'identifiant externe plat-42 est déjà celui d'une autre organisation." in text
    assert "Integrity" not in text and "UNIQUE" not in text and "duplicate key" not in text
    assert sorted(_external_ids(), key=str) == [None, "plat-42"]
