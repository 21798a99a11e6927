"""Administration, administrators only: the staff accounts (« Comptes de l'équipe »), their role,
and their deactivation. Every change goes through `accounts` and is audited."""

from __future__ import annotations

from wtforms import EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length

from .. import accounts, auth
from ..i18n import lazy_gettext as _l
from ..labels import label
from ..models import StaffRole, User, UserKind
from ..transaction import transaction
from .base import (
    AccountActivationMixin,
    AdminOnly,
    ChoiceFilter,
    PortalForm,
    SecureModelView,
    account_cell,
    acting_user,
    client_ip,
    date_cell,
    email_syntax,
    strip,
)

ROLE_HELP = _l("Administrateur : tout le back office, dont les paramètres vendeur, la publication des CGV "
               "et les comptes de l'équipe. Commercial : la gestion courante (organisations, devis, "
               "demandes, factures, utilisateurs clients).")


def _role_field() -> SelectField:
    return SelectField(_l("Rôle"), default=StaffRole.SALES.value, description=ROLE_HELP,
                       choices=[SelectChoice(role.value, label(role)) for role in StaffRole])


class StaffCreateForm(PortalForm):
    email = EmailField(_l("Adresse email"), filters=[strip], validators=[
        DataRequired(message=_l("Indiquez l'adresse email de l'utilisateur.")), email_syntax])
    full_name = StringField(_l("Nom complet"), filters=[strip], validators=[
        DataRequired(message=_l("Indiquez le nom complet de l'utilisateur.")),
        Length(max=200, message=_l("Le nom fait 200 caractères au plus."))])
    staff_role = _role_field()
    password = PasswordField(
        _l("Mot de passe initial"),
        description=_l("Transmettez-le à la personne : elle le changera depuis « Mon compte »."),
        validators=[Length(min=auth.MIN_PASSWORD_LENGTH, max=200, message=_l(
            "Le mot de passe doit comporter au moins %(length)s caractères.",
            length=auth.MIN_PASSWORD_LENGTH))])


class StaffRoleForm(PortalForm):
    staff_role = _role_field()


class StaffUserView(AdminOnly, AccountActivationMixin, SecureModelView):
    """The staff accounts: created with an initial password, their role changed, deactivated."""

    can_create = True
    can_edit = True
    column_list = ("full_name", "email", "staff_role", "account", "created_at")
    column_details_list = column_list
    column_sortable_list = ("full_name", "email", "created_at")
    column_default_sort = ("full_name", False)
    column_searchable_list = ("email", "full_name")
    column_filters = (ChoiceFilter(User.staff_role, _l("Rôle"), StaffRole),)
    column_labels = {"full_name": _l("Nom"), "email": _l("Email"), "staff_role": _l("Rôle"),
                     "account": _l("Compte"), "created_at": _l("Créé le")}
    column_formatters = {"account": account_cell, "created_at": date_cell,
                         "staff_role": lambda view, context, model, name: label(model.staff_role)}

    def get_query(self):
        return super().get_query().filter(User.kind == UserKind.STAFF)

    def get_count_query(self):
        return super().get_count_query().filter(User.kind == UserKind.STAFF)

    def get_one(self, id):
        user = super().get_one(id)
        return user if user is not None and user.kind == UserKind.STAFF else None

    def get_create_form(self):
        return StaffCreateForm

    def get_edit_form(self):
        return StaffRoleForm

    def create_model(self, form):
        with transaction() as outcome:
            user = accounts.create_staff_user(
                email=form.email.data, full_name=form.full_name.data, role=form.staff_role.data,
                password=form.password.data, actor=acting_user(), ip=client_ip())
        return user if outcome.ok else False

    def update_model(self, form, model) -> bool:
        with transaction() as outcome:
            accounts.set_staff_role(model, role=form.staff_role.data, actor=acting_user(), ip=client_ip())
        return outcome.ok


def register(admin) -> None:
    """Add this module's view to the back office."""
    admin.add_view(StaffUserView(User, name=_l("Comptes de l'équipe"), endpoint="staff_users",
                                 url="/admin/comptes-equipe", category=_l("Administration")))
