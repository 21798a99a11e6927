"""Back office, administration: client users (invitations, deactivation), emails, audit trail, seller
settings (admins only)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, update

from portal import accounts, auth, outbox
from portal.delivery import emails
from portal.exceptions import AdminRequired, InvalidInput, NotAllowed
from portal.extensions import db
from portal.models import (
    AuditEvent,
    ClientRole,
    LoginToken,
    OutboxEmail,
    OutboxStatus,
    SellerSettings,
    StaffRole,
    User,
    UserKind,
)

from .web import csrf_token, page_text, post_form, sign_in, sign_in_client

INVITATION_LINK = re.compile(r"/espace-client/invitation/([A-Za-z0-9_-]+)")


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def world(make):
    return make.world()


@pytest.fixture
def staff_client(client, world):
    sign_in(client, world["admin"])
    return client


# --- Client users -----------------------------------------------------------------------------


def test_the_list_shows_client_users_with_organisation_and_role(staff_client, world):
    html = page_text(staff_client.get("/admin/utilisateurs/"))
    member = world["users"][ClientRole.MEMBRE]
    assert member.email in html and world["org"].name in html
    assert "Responsable" in html and "Gestionnaire" in html and "Membre" in html
    assert world["admin"].email not in html  # staff are not client users
    assert "Inviter un utilisateur" in html
    response = staff_client.get(f"/admin/utilisateurs/details/?id={world['admin'].id}")
    assert response.status_code == 302  # a staff user is not found here


INVITE = {"email": "  Nouvelle.Recrue@Client.test ", "full_name": "Nouvelle Recrue",
          "role": "gestionnaire"}


def test_invite_a_client_user(staff_client, world):
    org = world["org"]
    page = page_text(staff_client.get("/admin/utilisateurs/inviter", query_string={"organisation": org.id}))
    assert f'<option selected value="{org.id}">' in page
    response = post_form(staff_client, "/admin/utilisateurs/inviter", {**INVITE, "organisation_id": org.id})
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "nouvelle.recrue@client.test"))
    assert (user.kind, user.client_role, user.organisation_id) == (UserKind.CLIENT, ClientRole.GESTIONNAIRE,
                                                                    org.id)
    assert user.password_hash is None and user.active
    token = db.session.scalar(select(LoginToken).where(LoginToken.user_id == user.id))
    assert token.purpose == "invite" and token.quote_id is None and token.used_at is None
    email = db.session.scalar(select(OutboxEmail).where(OutboxEmail.template == "user_invited"))
    assert email.recipient == user.email
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.invited"))
    assert event.actor_id == world["admin"].id and event.organisation_id == org.id
    rendered = emails.render(email)
    raw = INVITATION_LINK.search(rendered.text).group(1)
    assert INVITATION_LINK.search(rendered.html).group(1) == raw
    assert auth.hash_token(raw) == token.token_hash
    assert raw not in str(email.context)  # the row keeps a seed, the database only the hash
    assert org.name in rendered.subject and "Gestionnaire" in rendered.text
    listing = page_text(staff_client.get(response.headers["Location"]))
    assert "Invitation envoyée à nouvelle.recrue@client.test." in listing
    assert "Invité, mot de passe à choisir" in listing


def test_inviting_a_known_address_is_refused_in_french(staff_client, world):
    member = world["users"][ClientRole.MEMBRE]
    data = {**INVITE, "email": member.email.upper(), "organisation_id": world["org"].id}
    response = post_form(staff_client, "/admin/utilisateurs/inviter", data)
    assert response.status_code == 200
    assert f"Un compte existe déjà avec l'adresse {member.email}." in page_text(response)
    assert _count(OutboxEmail, OutboxEmail.template == "user_invited") == 0
    assert _count(LoginToken, LoginToken.purpose == "invite") == 0


@pytest.mark.parametrize(("override", "message"), [
    ({"email": "pas-une-adresse"}, "Adresse email invalide"),
    ({"email": ""}, "Indiquez l'adresse email"),
    ({"full_name": " "}, "Indiquez le nom complet"),
    ({"organisation_id": 0}, "Choisissez l'organisation"),
    ({"organisation_id": 999999}, "pas un choix valide"),
    ({"organisation_id": "abc"}, "Choix non valide"),
    ({"role": "patron"}, "pas un choix valide"),
])
def test_bad_invitations_are_refused_in_french(staff_client, world, override, message):
    data = {**INVITE, "organisation_id": world["org"].id, **override}
    response = post_form(staff_client, "/admin/utilisateurs/inviter", data)
    assert response.status_code == 200
    assert message in page_text(response)
    assert _count(User, func.lower(User.email) == "nouvelle.recrue@client.test") == 0
    assert _count(OutboxEmail, OutboxEmail.template == "user_invited") == 0


def test_only_staff_may_invite(world):
    with pytest.raises(NotAllowed):
        accounts.invite_client_user(organisation=world["org"], email="x@client.test", full_name="X",
                                    role="membre", actor=world["users"][ClientRole.RESPONSABLE])
    with pytest.raises(InvalidInput, match="Rôle inconnu"):
        accounts.invite_client_user(organisation=world["org"], email="x@client.test", full_name="X",
                                    role="patron", actor=world["admin"])


def _select_action(client, url: str, action: str, *users: User):
    """Apply the action `action` to `users` as their row's button does (Flask-Admin's actions)."""
    token = csrf_token(client, url)
    return client.post(f"{url}action/", data={"csrf_token": token, "action": action,
                                             "rowid": [str(user.id) for user in users]})


def row_button(html: str, action: str, user: User) -> bool:
    """The list offers `action` on `user`'s row: a form of hidden fields and its button."""
    pattern = (rf'<form class="d-inline" method="post" action="[^"]*/action/">[^<]*(<input [^>]*>)*?'
               rf'<input type="hidden" name="action" value="{action}"><input type="hidden" name="rowid" '
               rf'value="{user.id}">')
    return re.search(pattern, html) is not None


@pytest.mark.parametrize("role", [StaffRole.ADMIN, StaffRole.SALES])
def test_either_staff_role_deactivates_a_client_user_whose_sessions_end_then_reactivates_it(
        app, client, make, world, role):
    staff = make.staff(role)
    member = world["users"][ClientRole.MEMBRE]
    db.session.commit()
    theirs = app.test_client()
    sign_in_client(theirs, member)
    assert theirs.get("/espace-client/devis").status_code == 200
    sign_in(client, staff)
    listing = client.get("/admin/utilisateurs/").get_data(as_text=True)
    assert row_button(listing, "deactivate", member) and not row_button(listing, "reactivate", member)
    assert "onclick" not in listing  # no bulk-action menu: its inline handlers are blocked by the CSP
    response = _select_action(client, "/admin/utilisateurs/", "deactivate", member)
    assert response.status_code == 302
    flashed = page_text(client.get(response.headers["Location"]))
    assert "1 compte désactivé : ses sessions sont fermées." in flashed
    db.session.expire_all()
    assert not db.session.get(User, member.id).active
    assert theirs.get("/espace-client/devis").headers["Location"].startswith("/espace-client/connexion")
    listing = client.get("/admin/utilisateurs/").get_data(as_text=True)
    assert "Désactivé" in listing and row_button(listing, "reactivate", member)
    _select_action(client, "/admin/utilisateurs/", "reactivate", member)
    db.session.expire_all()
    assert db.session.get(User, member.id).active
    # Their old session stays ended: they sign in again.
    assert theirs.get("/espace-client/devis").headers["Location"].startswith("/espace-client/connexion")
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.object_id == member.id,
                                                         AuditEvent.action.like("user.%activated"))
                                .order_by(AuditEvent.id)).all()
    assert [(event.action, event.actor_id, event.organisation_id) for event in events] == [
        ("user.deactivated", staff.id, world["org"].id), ("user.reactivated", staff.id, world["org"].id)]
    assert "Compte désactivé" in page_text(client.get("/admin/journal/"))


def test_the_client_user_actions_never_reach_a_staff_account(staff_client, world, make):
    other_staff = make.staff(StaffRole.SALES)
    db.session.commit()
    _select_action(staff_client, "/admin/utilisateurs/", "deactivate", other_staff)
    db.session.expire_all()
    assert db.session.get(User, other_staff.id).active


# --- Emails -----------------------------------------------------------------------------------


def _quote_email(world) -> OutboxEmail:
    return db.session.scalar(select(OutboxEmail).where(OutboxEmail.template == "quote_sent"))


def test_the_email_list_and_the_preview_with_the_personal_link_masked(staff_client, world):
    email = _quote_email(world)
    html = page_text(staff_client.get("/admin/emails/"))
    assert email.recipient in html and "Devis envoyé" in html
    assert '<span class="badge badge-email-pending">En attente</span>' in html
    raw = auth.raw_token_from_seed(email.context[outbox.LINK_SEED])
    details = page_text(staff_client.get(f"/admin/emails/details/?id={email.id}"))
    assert world["quote"].reference in details and "lien personnel masqué" in details
    assert raw not in details and "Renvoyer" not in details
    frame = staff_client.get(f"/admin/emails/{email.id}/apercu")
    assert frame.status_code == 200 and frame.mimetype == "text/html"
    assert "sandbox" in frame.headers["Content-Security-Policy"]
    assert raw not in frame.get_data(as_text=True)
    assert world["quote"].reference in frame.get_data(as_text=True)


def test_a_broken_email_shows_its_error_not_a_server_error(staff_client, world):
    email = _quote_email(world)
    email.template = "inconnu"
    db.session.commit()
    assert "Aperçu impossible" in page_text(staff_client.get(f"/admin/emails/details/?id={email.id}"))
    assert staff_client.get(f"/admin/emails/{email.id}/apercu").status_code == 200


def test_send_a_failed_email_again(staff_client, world):
    email = _quote_email(world)
    db.session.execute(update(OutboxEmail).where(OutboxEmail.id == email.id).values(
        status=OutboxStatus.FAILED, attempts=8, last_error="550 Mailbox unavailable"))
    db.session.commit()
    url = f"/admin/emails/details/?id={email.id}"
    html = page_text(staff_client.get(url))
    assert "550 Mailbox unavailable" in html and "Renvoyer" in html
    response = post_form(staff_client, f"/admin/emails/{email.id}/renvoyer", form_url=url)
    assert response.status_code == 302
    db.session.expire_all()
    email = db.session.get(OutboxEmail, email.id)
    assert (email.status, email.attempts) == (OutboxStatus.PENDING, 0)
    assert "remis en file d'envoi" in page_text(staff_client.get(response.headers["Location"]))


def test_only_a_failed_email_can_be_sent_again(staff_client, world):
    email = _quote_email(world)
    url = f"/admin/emails/details/?id={email.id}"
    response = post_form(staff_client, f"/admin/emails/{email.id}/renvoyer", form_url=url,
                         follow_redirects=True)
    assert "Seul un email en échec peut être remis en file d'envoi." in page_text(response)
    db.session.expire_all()
    assert db.session.get(OutboxEmail, email.id).status == OutboxStatus.PENDING
    assert _count(AuditEvent, AuditEvent.action == "email.retried") == 0
    missing = post_form(staff_client, "/admin/emails/999999/renvoyer", form_url=url, follow_redirects=True)
    assert missing.status_code == 404


def test_emails_are_read_only(staff_client, world):
    email = _quote_email(world)
    for url in ("/admin/emails/new/", f"/admin/emails/edit/?id={email.id}"):
        assert staff_client.get(url).status_code == 302
    token = csrf_token(staff_client, "/admin/emails/")
    staff_client.post("/admin/emails/delete/", data={"csrf_token": token, "id": email.id})
    assert db.session.get(OutboxEmail, email.id) is not None


# --- Audit trail ------------------------------------------------------------------------------


def test_the_audit_trail_in_french_with_filters(staff_client, world, make):
    other = make.organisation(name="Autre Entreprise")
    make.sent_quote(other, actor=world["admin"])
    db.session.commit()
    html = page_text(staff_client.get("/admin/journal/"))
    assert "Devis envoyé" in html and "CGV publiées" in html and world["org"].name in html
    by_action = page_text(staff_client.get("/admin/journal/?flt0_0=terms.published"))
    assert "CGV publiées" in by_action and "Devis envoyé" not in by_action
    by_name = page_text(staff_client.get("/admin/journal/", query_string={"flt0_1": "autre ENT"}))
    assert "Autre Entreprise" in by_name and world["org"].name not in by_name
    by_id = page_text(staff_client.get(f"/admin/journal/?flt0_2={world['org'].id}"))
    assert world["org"].name in by_id and "Autre Entreprise" not in by_id
    bad = staff_client.get("/admin/journal/?flt0_2=abc")
    assert bad.status_code == 200 and "Valeur de filtre non valide" in page_text(bad)


def test_the_audit_trail_is_read_only(staff_client, world):
    event = db.session.scalar(select(AuditEvent))
    for url in ("/admin/journal/new/", f"/admin/journal/edit/?id={event.id}"):
        assert staff_client.get(url).status_code == 302
    token = csrf_token(staff_client, "/admin/journal/")
    staff_client.post("/admin/journal/delete/", data={"csrf_token": token, "id": event.id})
    assert db.session.get(AuditEvent, event.id) is not None
    assert "Organisation" in page_text(staff_client.get(f"/admin/journal/details/?id={event.id}"))


# --- Seller settings --------------------------------------------------------------------------

SELLER = {
    "company_name": "Vendeur SAS", "legal_form": "SAS", "share_capital": "50 000 €",
    "address_line1": "3 rue de la Paix", "address_line2": "", "postal_code": "75002", "city": "Paris",
    "country": "fr", "siren": "123 456 789", "rcs_city": "Paris", "vat_number": "FR32 123456789",
    "email": "compta@vendeur.test", "phone": "01 23 45 67 89",
    "iban": "FR76 3000 6000 0112 3456 7890 189", "bic": "agrifrpp",
    "early_payment_discount": "néant", "late_penalty_rate": "trois fois le taux d'intérêt légal",
    "operation_category": "services", "quote_validity_days": "45",
}


def test_the_sales_role_cannot_see_nor_change_the_seller_settings(client, make, world):
    sales = make.staff(StaffRole.SALES)
    before = db.session.get(SellerSettings, 1).iban
    sign_in(client, sales)
    assert client.get("/admin/parametres-vendeur/").status_code == 403
    token = csrf_token(client, "/admin/utilisateurs/")
    response = client.post("/admin/parametres-vendeur/", data={
        **SELLER, "iban": "FR7630004000031234567890143", "csrf_token": token})
    assert response.status_code == 403
    db.session.expire_all()
    assert db.session.get(SellerSettings, 1).iban == before
    assert _count(AuditEvent, AuditEvent.action == "seller.updated") == 0
    assert "Paramètres vendeur" not in page_text(client.get("/admin/utilisateurs/"))
    with pytest.raises(AdminRequired):
        accounts.save_seller_settings(values={"iban": "FR7630004000031234567890143"}, actor=sales)


def test_the_admin_sees_the_seller_settings_in_the_menu(staff_client):
    assert "Paramètres vendeur" in page_text(staff_client.get("/admin/utilisateurs/"))


@pytest.fixture
def no_settings_client(client, make):
    sign_in(client, make.staff(StaffRole.ADMIN))
    return client


def test_seller_settings_are_created_on_first_save(no_settings_client):
    html = page_text(no_settings_client.get("/admin/parametres-vendeur/"))
    assert 'value="FR"' in html and 'value="30"' in html and "Prestation de services" in html
    response = post_form(no_settings_client, "/admin/parametres-vendeur/", SELLER)
    assert response.status_code == 302
    settings = db.session.get(SellerSettings, 1)
    assert (settings.siren, settings.vat_number, settings.iban, settings.bic, settings.country) == (
        "123456789", "FR32123456789", "FR7630006000011234567890189", "AGRIFRPP", "FR")
    assert settings.quote_validity_days == 45 and settings.address_line2 == ""
    assert _count(AuditEvent, AuditEvent.action == "seller.updated") == 1
    assert "Paramètres vendeur enregistrés." in page_text(
        no_settings_client.get(response.headers["Location"]))


def test_seller_settings_are_updated(staff_client):
    response = post_form(staff_client, "/admin/parametres-vendeur/", {**SELLER, "city": "Lyon"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(SellerSettings, 1).city == "Lyon"
    assert _count(SellerSettings) == 1


def test_the_option_for_vat_on_debits_is_ticked_and_unticked_from_the_seller_settings(staff_client):
    assert "Option pour le paiement de la TVA d'après les débits" in page_text(
        staff_client.get("/admin/parametres-vendeur/"))
    post_form(staff_client, "/admin/parametres-vendeur/", {**SELLER, "vat_on_debits": "y"})
    db.session.expire_all()
    assert db.session.get(SellerSettings, 1).vat_on_debits is True
    post_form(staff_client, "/admin/parametres-vendeur/", SELLER)  # an unticked box is not sent
    db.session.expire_all()
    assert db.session.get(SellerSettings, 1).vat_on_debits is False


@pytest.mark.parametrize(("field", "value", "message"), [
    ("siren", "12345", "Le SIREN compte 9 chiffres."),
    ("company_name", "", "Ce champ est obligatoire sur les factures."),
    ("iban", "FR7630006000011234567890188", "sa clé de contrôle ne correspond pas"),
    ("bic", "AGRI", "BIC invalide"),
    ("country", "France", "code pays à deux lettres"),
    ("quote_validity_days", "0", "entre 1 et 365 jours"),
    ("quote_validity_days", "trente", "entier"),
    ("operation_category", "autre", "pas un choix valide"),
    ("email", "compta@", "Adresse email invalide"),
])
def test_bad_seller_settings_are_refused_in_french(staff_client, field, value, message):
    before = db.session.get(SellerSettings, 1).company_name
    response = post_form(staff_client, "/admin/parametres-vendeur/", {**SELLER, field: value})
    assert response.status_code == 200
    assert message in page_text(response)
    db.session.expire_all()
    assert db.session.get(SellerSettings, 1).company_name == before


# --- Lists -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/admin/utilisateurs/", "/admin/emails/", "/admin/journal/"])
@pytest.mark.parametrize("query", ["page=-1", "page=99999999999999999999", "page=abc", "sort=99"])
def test_bad_list_arguments_are_not_a_server_error(staff_client, url, query):
    assert staff_client.get(f"{url}?{query}").status_code == 200
