"""Administration, administrators only: the keys of the platform API (« Clés d'API »). A key is
created with its scopes, its secret shown once on the page that answers the creation (never
stored, flashed nor logged: only its SHA-256 is kept), and revoked after a confirmation. Every
change goes through `api_keys` and is audited."""

from __future__ import annotations

from flask import abort, flash, redirect, request
from flask_admin import expose
from flask_admin.model.template import BaseListRowAction
from flask_babel import gettext as _
from markupsafe import Markup
from wtforms import BooleanField, SelectChoice, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from .. import api_keys
from ..i18n import lazy_gettext as _l
from ..models import ApiKey
from ..transaction import transaction
from .base import (
    AdminOnly,
    ConfirmForm,
    PortalForm,
    SecureModelView,
    acting_user,
    badge,
    client_ip,
    date_cell,
    strip,
)

# What each scope of `api_keys.SCOPES` lets the platform do, as the creation form explains it.
SCOPE_DESCRIPTIONS = {
    "organisations:read": _l("Lire les organisations (par identifiant, identifiant externe ou SIREN)."),
    "credits:read": _l("Lire le solde de crédits d'une organisation et ses mouvements."),
    "credits:consume": _l("Consommer des crédits d'une organisation."),
    "credits:adjust": _l("Ajuster le solde de crédits (ajout ou retrait, avec un motif)."),
    "quotes:read": _l("Lire les devis d'une organisation."),
    "requests:write": _l("Envoyer des demandes de devis au nom d'un utilisateur client."),
    "sessions:write": _l("Ouvrir l'espace client pour un utilisateur (connexion unique)."),
}


def _one_at_least(form, field) -> None:
    # Not DataRequired: its `required` flag would mark every checkbox as required.
    if not field.data:
        raise ValidationError(_l("Choisissez au moins une autorisation pour la clé d'API."))


class ApiKeyForm(PortalForm):
    name = StringField(_l("Nom de la clé"), filters=[strip],
                       description=_l("Pour la reconnaître : la plateforme ou le service qui l'utilise."),
                       validators=[DataRequired(message=_l("Indiquez le nom de la clé d'API.")),
                                   Length(max=100, message=_l("Le nom fait 100 caractères au plus."))])
    scopes = SelectMultipleField(
        _l("Autorisations"),
        choices=[SelectChoice(scope, SCOPE_DESCRIPTIONS[scope]) for scope in api_keys.SCOPES],
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(), validators=[_one_at_least])


class RevokeKeyForm(ConfirmForm):
    confirm = BooleanField(
        _l("Je confirme la révocation : les appels faits avec cette clé seront refusés aussitôt, "
           "c'est irréversible."),
        validators=[DataRequired(message=_l("Cochez la case de confirmation pour révoquer la clé."))])


def _prefix_cell(view, context, model, name) -> Markup:
    return Markup("<code>{}…</code>").format(model.prefix)


def _scopes_cell(view, context, model, name) -> Markup:
    return Markup(" ").join(Markup("<code>{}</code>").format(scope) for scope in model.scope_list)


def _created_by_cell(view, context, model, name) -> str:
    return model.created_by.full_name if model.created_by else _("Ligne de commande")


def _state_cell(view, context, model, name) -> Markup:
    if model.active:
        return badge("active", _("Active"))
    return badge("inactive", _("Révoquée le %(date)s", date=date_cell(view, context, model, "revoked_at")))


class RevokeRowAction(BaseListRowAction):
    """« Révoquer… » on an active key's row: the confirmation page."""

    def render(self, context, row_id, row) -> Markup | str:
        if not row.active:
            return ""
        url = context.resolve("admin_view").get_url(".revoke", id=row_id)
        return Markup('<a class="btn btn-link btn-sm p-0 ml-1" href="{}">{}</a>').format(url, _("Révoquer…"))


class ApiKeyView(AdminOnly, SecureModelView):
    """The API keys: listed with their visible prefix, created with their scopes, revoked; never
    edited nor deleted (the ledger names the key of each consumption)."""

    can_create = True
    can_edit = False
    can_view_details = False
    column_list = ("name", "prefix", "scopes", "created_by", "created_at", "last_used_at", "state")
    column_select_related_list = (ApiKey.created_by,)
    column_sortable_list = ("name", "created_at", "last_used_at")
    column_default_sort = ("id", True)
    column_searchable_list = ("name", "prefix")
    column_labels = {"name": _l("Nom"), "prefix": _l("Préfixe"), "scopes": _l("Autorisations"),
                     "created_by": _l("Créée par"), "created_at": _l("Créée le"),
                     "last_used_at": _l("Dernière utilisation"), "state": _l("État")}
    column_formatters = {"prefix": _prefix_cell, "scopes": _scopes_cell, "created_by": _created_by_cell,
                         "created_at": date_cell, "state": _state_cell,
                         "last_used_at": lambda view, context, model, name: (
                             date_cell(view, context, model, name) if model.last_used_at else _("Jamais"))}
    column_extra_row_actions = [RevokeRowAction()]

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        """Create a key; its secret is in this response only (no redirect, no flash)."""
        form = ApiKeyForm()
        if form.validate_on_submit():
            with transaction() as outcome:
                key, secret = api_keys.create_key(form.name.data, form.scopes.data, actor=acting_user(),
                                                  ip=client_ip())
            if outcome.ok:
                return self.render("admin/api_key_created.html", key=key, secret=secret)
        return self.render("admin/api_key_create.html", form=form)

    @expose("/revoquer/", methods=("GET", "POST"))
    def revoke(self):
        """Revoke a key after an explicit confirmation: its next call is refused."""
        key = self.get_one(request.args.get("id")) or abort(404)
        form = RevokeKeyForm()
        if form.validate_on_submit():
            with transaction() as outcome:
                api_keys.revoke_key(key, actor=acting_user(), ip=client_ip())
            if outcome.ok:
                flash(_("Clé « %(name)s » révoquée : ses prochains appels seront refusés.", name=key.name),
                      "success")
                return redirect(self.get_url(".index_view"))
        return self.render("admin/api_key_revoke.html", key=key, form=form)


def register(admin) -> None:
    """Add this module's view to the back office."""
    admin.add_view(ApiKeyView(ApiKey, name=_l("Clés d'API"), endpoint="api_keys", url="/admin/cles-api",
                              category=_l("Administration")))
