"""Back office, administrators only: the staff accounts (« Comptes de l'équipe »): created with an
initial password, their role changed, deactivated (every session ends) and reactivated; the sales
role neither reaches nor sees them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal import accounts, auth
from portal.exceptions import AdminRequired, OwnAccountDeactivation, OwnRoleChange
from portal.extensions import db
from portal.models import AuditEvent, ClientRole, StaffRole, User, UserKind

from .test_admin_system import row_button
from .web import PASSWORD, csrf_token, page_text, post_form, sign_in

URL = "/admin/comptes-equipe/"
NEW = {"email": " Nouvelle.Commerciale@Vendeur.test ", "full_name": "Nouvelle Commerciale",
       "staff_role": "sales", "password": "un-mot-de-passe-long"}


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def world(make):
    world = make.world()
    world["sales"] = make.staff(StaffRole.SALES, full_name="Hugo Commercial")
    db.session.commit()
    return world


@pytest.fixture
def admin_client(client, world):
    sign_in(client, world["admin"])
    return client


def _action(client, action: str, *users: User):
    token = csrf_token(client, URL)
    return client.post(f"{URL}action/", data={"csrf_token": token, "action": action,
                                              "rowid": [str(user.id) for user in users]})


def _user(user_id: int) -> User:
    db.session.expire_all()
    return db.session.get(User, user_id)


# --- The list and creation ----------------------------------------------------------------------


def test_the_list_shows_the_staff_with_their_role_and_no_client_user(admin_client, world):
    html = page_text(admin_client.get(URL))
    assert world["admin"].email in html and "Hugo Commercial" in html
    assert "Administrateur" in html and "Commercial" in html and "Actif" in html
    assert world["users"][ClientRole.MEMBRE].email not in html
    client_user = world["users"][ClientRole.MEMBRE]
    assert admin_client.get(f"{URL}details/?id={client_user.id}").status_code == 302  # not found here
    assert admin_client.get(f"{URL}edit/?id={client_user.id}").status_code == 302


def test_an_admin_creates_a_staff_account_with_an_initial_password(app, admin_client, world):
    response = post_form(admin_client, f"{URL}new/", NEW)
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "nouvelle.commerciale@vendeur.test"))
    assert (user.kind, user.staff_role, user.full_name, user.active) == (
        UserKind.STAFF, StaffRole.SALES, "Nouvelle Commerciale", True)
    assert user.password_hash != NEW["password"] and auth.check_password(user, NEW["password"])
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "staff.created"))
    assert (event.actor_id, event.object_id, event.details["role"]) == (world["admin"].id, user.id, "sales")
    # The new colleague signs in with it.
    theirs = app.test_client()
    token = csrf_token(theirs, "/admin/connexion")
    signed_in = theirs.post("/admin/connexion",
                            data={"csrf_token": token, "email": user.email, "password": NEW["password"]})
    assert signed_in.status_code == 302 and theirs.get("/admin/produits/").status_code == 200


@pytest.mark.parametrize(("override", "message"), [
    ({"password": "court"}, "Le mot de passe doit comporter au moins 10 caractères."),
    ({"password": ""}, "Le mot de passe doit comporter au moins 10 caractères."),
    ({"email": "pas-une-adresse"}, "Adresse email invalide"),
    ({"full_name": " "}, "Indiquez le nom complet"),
    ({"staff_role": "patron"}, "pas un choix valide"),
    ({"email": "staff-existant"}, "Un compte existe déjà avec l'adresse"),
])
def test_bad_staff_accounts_are_refused_in_french(admin_client, world, override, message):
    if override.get("email") == "staff-existant":
        override = {"email": world["sales"].email.upper()}
    before = _count(User)
    response = post_form(admin_client, f"{URL}new/", {**NEW, **override})
    assert response.status_code == 200
    assert message in page_text(response)
    assert _count(User) == before
    assert _count(AuditEvent, AuditEvent.action == "staff.created") == 0


# --- Roles ----------------------------------------------------------------------------------------


def test_an_admin_changes_a_colleagues_role(admin_client, world):
    sales = world["sales"]
    page = page_text(admin_client.get(f"{URL}edit/?id={sales.id}"))
    assert "Rôle" in page and "password" not in page
    response = post_form(admin_client, f"{URL}edit/?id={sales.id}", {"staff_role": "admin"})
    assert response.status_code == 302
    assert _user(sales.id).staff_role == StaffRole.ADMIN
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "staff.role_changed"))
    assert (event.details["previous"], event.details["role"]) == ("sales", "admin")
    assert "Rôle modifié" in page_text(admin_client.get("/admin/journal/"))


def test_an_admin_cannot_change_their_own_role(admin_client, world):
    admin = world["admin"]
    response = post_form(admin_client, f"{URL}edit/?id={admin.id}", {"staff_role": "sales"})
    assert response.status_code == 200
    assert "Vous ne pouvez pas changer votre propre rôle" in page_text(response)
    assert _user(admin.id).staff_role == StaffRole.ADMIN
    with pytest.raises(OwnRoleChange):
        accounts.set_staff_role(admin, role=StaffRole.SALES, actor=admin)


# --- Deactivation ---------------------------------------------------------------------------------


def test_a_deactivated_staff_account_is_signed_out_everywhere_until_reactivated(app, admin_client, world):
    sales = world["sales"]
    theirs = app.test_client()
    sign_in(theirs, sales)
    assert theirs.get("/admin/produits/").status_code == 200
    response = _action(admin_client, "deactivate", sales)
    assert response.status_code == 302
    assert "1 compte désactivé" in page_text(admin_client.get(response.headers["Location"]))
    assert not _user(sales.id).active
    assert theirs.get("/admin/produits/").headers["Location"].startswith("/admin/connexion")
    again = theirs.post("/admin/connexion", data={
        "csrf_token": csrf_token(theirs, "/admin/connexion"), "email": sales.email, "password": PASSWORD})
    assert theirs.get("/admin/produits/").status_code == 302, again.status_code  # cannot sign in
    _action(admin_client, "reactivate", sales)
    assert _user(sales.id).active
    assert theirs.get("/admin/produits/").status_code == 302  # the old session stays ended
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == sales.id,
                                                                 AuditEvent.object_type == "user")
                                 .order_by(AuditEvent.id)).all()
    assert actions[-2:] == ["user.deactivated", "user.reactivated"]


def test_an_admin_cannot_deactivate_themself(admin_client, world):
    admin, sales = world["admin"], world["sales"]
    listing = admin_client.get(URL).get_data(as_text=True)
    assert row_button(listing, "deactivate", sales) and not row_button(listing, "deactivate", admin)
    response = _action(admin_client, "deactivate", admin, sales)
    message = page_text(admin_client.get(response.headers["Location"]))
    assert "Vous ne pouvez pas désactiver votre propre compte" in message
    assert _user(admin.id).active and _user(sales.id).active  # nothing done: one refusal, no half batch
    assert admin_client.get(URL).status_code == 200
    with pytest.raises(OwnAccountDeactivation):
        accounts.set_active(admin, active=False, actor=admin)


# --- The sales role -------------------------------------------------------------------------------


def test_the_sales_role_gets_403_on_the_staff_accounts_and_does_not_see_them(client, world):
    sales, admin = world["sales"], world["admin"]
    sign_in(client, sales)
    token = csrf_token(client, "/admin/produits/")
    for url in (URL, f"{URL}new/", f"{URL}edit/?id={admin.id}", f"{URL}details/?id={admin.id}"):
        assert client.get(url).status_code == 403, url
    posts = {f"{URL}new/": {**NEW, "staff_role": "admin"},
             f"{URL}edit/?id={sales.id}": {"staff_role": "admin"},
             f"{URL}action/": {"action": "deactivate", "rowid": [str(admin.id)]}}
    for url, data in posts.items():
        assert client.post(url, data={"csrf_token": token, **data}).status_code == 403, url
    assert _user(sales.id).staff_role == StaffRole.SALES and _user(admin.id).active
    assert _count(User, User.email == "nouvelle.commerciale@vendeur.test") == 0
    menu = page_text(client.get("/admin/produits/"))
    assert "Comptes de l'équipe" not in menu and "Paramètres vendeur" not in menu
    assert "Utilisateurs clients" in menu


def test_the_admin_menu_shows_what_the_sales_menu_hides_on_the_same_page(app, admin_client, world):
    """The back-office layout is rendered once per view: once per role too, or one role would see
    the other's menu."""
    assert "Comptes de l'équipe" in page_text(admin_client.get("/admin/produits/"))
    sales = app.test_client()
    sign_in(sales, world["sales"])
    menu = page_text(sales.get("/admin/produits/"))
    assert "Comptes de l'équipe" not in menu and "Paramètres vendeur" not in menu
    assert "Comptes de l'équipe" in page_text(admin_client.get("/admin/produits/"))


def test_only_admins_manage_staff_accounts_in_the_domain(world):
    sales, admin = world["sales"], world["admin"]
    with pytest.raises(AdminRequired):
        accounts.create_staff_user(email="x@vendeur.test", full_name="X", role="sales",
                                   password="un-mot-de-passe-long", actor=sales)
    with pytest.raises(AdminRequired):
        accounts.set_staff_role(sales, role="admin", actor=sales)
    with pytest.raises(AdminRequired):
        accounts.set_active(admin, active=False, actor=sales)
    client_user = world["users"][ClientRole.MEMBRE]
    accounts.set_active(client_user, active=False, actor=sales)  # a client user: any staff member
    assert not client_user.active
