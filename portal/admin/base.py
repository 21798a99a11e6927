"""Secure bases of every back-office view: staff only (some views or actions admins only), CSRF
through Flask-WTF, no COUNT(*)."""

from __future__ import annotations

from flask import abort, flash, has_request_context, redirect, request, session, url_for
from flask_admin import BaseView
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_admin.model.template import BaseListRowAction
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from wtforms import BooleanField
from wtforms.validators import DataRequired, ValidationError

from .. import accounts
from ..dates import PERIOD_PATTERN, period_bounds
from ..exceptions import InvalidInput
from ..extensions import db
from ..i18n import lazy_gettext as _l
from ..labels import french_date, label, vat_rate
from ..models import StaffRole, User
from ..money import format_amount
from ..transaction import transaction


def is_staff() -> bool:
    """True for a signed-in, active staff user."""
    return bool(current_user.is_authenticated and current_user.is_staff)


def has_role(role: StaffRole | None) -> bool:
    """True for a signed-in staff user of `role` (any staff role when `role` is None)."""
    return is_staff() and (role is None or current_user.staff_role == role)


def is_admin() -> bool:
    """True for a signed-in administrator (outside a request: False)."""
    return has_request_context() and has_role(StaffRole.ADMIN)


def for_admins() -> property:
    """A view's `can_create` / `can_edit` that is true for administrators only: the buttons and
    row actions are hidden from the sales role (whose requests `admin_only_views` refuse).
    Outside a request it says what the view offers at all: true."""
    return property(lambda view: not has_request_context() or is_admin())


# --- Forms, cells and filters shared by the views -----------------------------------------------

MAX_PAGE = 100_000


def strip(value):
    """WTForms filter: surrounding spaces removed."""
    return value.strip() if isinstance(value, str) else value


def email_syntax(form, field) -> None:
    """The address is well formed (the same check as the domain's, without a DNS lookup)."""
    if field.data:
        try:
            field.data = accounts.normalise_email(field.data)
        except InvalidInput as error:
            raise ValidationError(str(error)) from None


class PortalForm(FlaskForm):
    """A FlaskForm whose error messages are plain strings: Flask-Admin's `render_field` shows
    only `str` errors, and our messages are lazy (translated when shown)."""

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            if isinstance(field.errors, list):
                field.errors = [str(error) for error in field.errors]
        return valid


# Flask-Admin 2.2's French catalogue lacks these two messages (and flashes them as "danger").
UNTRANSLATED_FLASHES = {
    "Failed to create record.": _l("Enregistrement impossible : corrigez les champs signalés."),
    "Failed to save record.": _l("Enregistrement impossible : corrigez les champs signalés."),
}


class FrenchFlashesMixin:
    """Shows Flask-Admin's untranslated form-failure messages in French, as errors."""

    def render(self, template, **kwargs):
        flashes = session.get("_flashes")
        if flashes:
            session["_flashes"] = [
                ("error", str(UNTRANSLATED_FLASHES[message])) if message in UNTRANSLATED_FLASHES
                else (category, message) for category, message in flashes]
        return super().render(template, **kwargs)


class ConfirmForm(PortalForm):
    """An irreversible action: an explicit checkbox, and the CSRF token."""

    confirm = BooleanField(_l("Je confirme"), validators=[
        DataRequired(message=_l("Cochez la case de confirmation pour continuer."))])


def acting_user() -> User:
    """The signed-in staff user, as a plain model object for the domain functions."""
    return current_user._get_current_object()


def client_ip() -> str | None:
    return request.remote_addr


def badge(css: str, text: object) -> Markup:
    """A coloured status badge (escaped)."""
    return Markup('<span class="badge badge-{}">{}</span>').format(css, text)


def status_badge(value) -> Markup:
    """An enum value as a badge with its French label."""
    return badge(value.value, label(value))


def money_cell(view, context, model, name) -> Markup:
    return Markup('<span class="money">{}</span>').format(format_amount(getattr(model, name)))


def date_cell(view, context, model, name) -> str:
    return french_date(getattr(model, name))


def vat_cell(view, context, model, name) -> str:
    return vat_rate(getattr(model, name))


class SafeArgsMixin:
    """Bad URL arguments never reach the database: an `?id=` that is not an integer is "not
    found", a `?page=` out of range (negative, huge) is the first page."""

    def get_one(self, id):
        try:
            return db.session.get(self.model, int(id))
        except (TypeError, ValueError):
            return None

    def get_list(self, page, *args, **kwargs):
        page = page if page is not None and 0 <= page <= MAX_PAGE else 0
        return super().get_list(page, *args, **kwargs)


class ChoiceFilter(FilterEqual):
    """Equal to one member of an enum, chosen among its French labels."""

    def __init__(self, column, name, enum_class) -> None:
        super().__init__(column, name, options=[(m.value, label(m)) for m in enum_class])
        self.enum_class = enum_class

    def clean(self, value):
        return self.enum_class(value)  # ValueError → Flask-Admin ignores it and says so


class PeriodFilter(FilterEqual):
    """A month written AAAA-MM, matched on a period column."""

    def clean(self, value):
        value = value.strip()
        if not PERIOD_PATTERN.match(value):
            raise ValueError(value)
        return value

    def operation(self):
        return _l("est le mois (AAAA-MM)")


class IssueMonthFilter(PeriodFilter):
    """Invoices issued during a month (AAAA-MM)."""

    def apply(self, query, value, alias=None):
        first, next_month = period_bounds(value)
        column = self.get_column(alias)
        return query.filter(column >= first, column < next_month)



class StaffOnly:
    """Anonymous visitors go to the sign-in page; client users get 403; so does staff without the
    view's `required_role` (Flask-Admin then leaves the view out of their menu), or asking for one
    of its `admin_only_views` (method names: `create_view`, `publish`…) without being admin."""

    required_role: StaffRole | None = None  # None: every staff role
    admin_only_views: frozenset[str] = frozenset()

    def is_accessible(self) -> bool:
        return has_role(self.required_role)

    def inaccessible_callback(self, name, **kwargs):
        if current_user.is_authenticated:
            abort(403)
        return redirect(url_for("staff_auth.login", next=request.full_path))

    def _handle_view(self, name, **kwargs):
        if name in self.admin_only_views and is_staff() and not is_admin():
            abort(403)
        return super()._handle_view(name, **kwargs)


class AdminOnly:
    """Mixed in before a secure view: the whole view is the administrators' (seller settings,
    staff accounts); the sales role gets 403 and does not see it in the menu."""

    required_role = StaffRole.ADMIN


class SecureView(StaffOnly, BaseView):
    """A custom back-office page."""


class SecureModelView(StaffOnly, FrenchFlashesMixin, SafeArgsMixin, ModelView):
    """A model list/edit page: FlaskForm (CSRF), a simple pager (no COUNT(*)), 50 rows a page,
    safe URL arguments, French form-failure messages."""

    form_base_class = PortalForm
    simple_list_pager = True
    page_size = 50
    can_set_page_size = False
    can_delete = False
    can_view_details = True
    column_display_pk = False

    def __init__(self, model, name=None, **kwargs):
        super().__init__(model, db, name=name, **kwargs)


# --- Accounts of a user list -------------------------------------------------------------------


def account_cell(view, context, model, name) -> Markup:
    """The state of an account: deactivated, invited (no password yet) or active."""
    if not model.active:
        return badge("inactive", _("Désactivé"))
    if model.password_hash is None:
        return badge("invited", _("Invité, mot de passe à choisir"))
    return badge("active", _("Actif"))


class ActivationRowAction(BaseListRowAction):
    """A user row's « Désactiver » or « Réactiver » button (none on one's own active account): a
    form posting Flask-Admin's action for that row. No script: Flask-Admin's menu of bulk actions
    calls them from inline handlers, which the Content-Security-Policy blocks."""

    def render(self, context, row_id, row) -> Markup | str:
        if row.active and row.id == current_user.id:
            return ""
        action, text = ("deactivate", _("Désactiver")) if row.active else ("reactivate", _("Réactiver"))
        return Markup(
            '<form class="d-inline" method="post" action="{}">'
            '<input type="hidden" name="csrf_token" value="{}"><input type="hidden" name="url" value="{}">'
            '<input type="hidden" name="action" value="{}"><input type="hidden" name="rowid" value="{}">'
            '<button class="btn btn-link btn-sm p-0 ml-1" type="submit">{}</button></form>'
        ).format(context.resolve("admin_view").get_url(".action_view"), generate_csrf(),
                 context.resolve("return_url") or "", action, row_id, text)


class AccountActivationMixin:
    """« Désactiver » / « Réactiver » on each row of a user list (`accounts.set_active`): a
    deactivated user is signed out everywhere and can no longer sign in."""

    column_extra_row_actions = [ActivationRowAction()]

    def get_actions_list(self):
        return [], {}  # no bulk-action menu (see ActivationRowAction); the row buttons post the actions

    @action("deactivate", _l("Désactiver"))
    def action_deactivate(self, ids) -> None:
        self._set_active(ids, active=False)

    @action("reactivate", _l("Réactiver"))
    def action_reactivate(self, ids) -> None:
        self._set_active(ids, active=True)

    def _set_active(self, ids, *, active: bool) -> None:
        users = [user for user in map(self.get_one, ids) if user is not None]
        with transaction() as outcome:
            for user in users:
                accounts.set_active(user, active=active, actor=acting_user(), ip=client_ip())
        if not outcome.ok:
            return
        if active:
            message = ngettext("%(num)d compte réactivé.", "%(num)d comptes réactivés.", len(users))
        else:
            message = ngettext("%(num)d compte désactivé : ses sessions sont fermées.",
                               "%(num)d comptes désactivés : leurs sessions sont fermées.", len(users))
        flash(message, "success")
