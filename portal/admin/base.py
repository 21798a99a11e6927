"""Secure bases of every back-office view: staff only, CSRF through Flask-WTF, no COUNT(*)."""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, redirect, request, session, url_for
from flask_admin import BaseView
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import BooleanField
from wtforms.validators import DataRequired

from .. import billing, monthly
from ..extensions import db
from ..i18n import lazy_gettext as _l
from ..labels import french_date, label, vat_rate
from ..models import User


def is_staff() -> bool:
    """True for a signed-in, active staff user."""
    return bool(current_user.is_authenticated and current_user.is_staff)


# --- Forms, cells and filters shared by the views -----------------------------------------------

MAX_PAGE = 100_000


def strip(value):
    """WTForms filter: surrounding spaces removed."""
    return value.strip() if isinstance(value, str) else value


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


_ID_STANDIN = 987654321


def url_with_id(endpoint: str, id_argument: str, **values: object) -> Callable[[int], str]:
    """`url_for(endpoint, <id_argument>=id, **values)` for the many ids of a page at the cost of
    one: the URL is built once around a stand-in id, then each id is put in its place."""
    pattern = url_for(endpoint, **{id_argument: _ID_STANDIN}, **values)
    standin = str(_ID_STANDIN)
    return lambda id_: pattern.replace(standin, str(id_))


def badge(css: str, text: object) -> Markup:
    """A coloured status badge (escaped)."""
    return Markup('<span class="badge badge-{}">{}</span>').format(css, text)


def status_badge(value) -> Markup:
    """An enum value as a badge with its French label."""
    return badge(value.value, label(value))


def money_cell(view, context, model, name) -> Markup:
    return Markup('<span class="money">{}</span>').format(billing.format_amount(getattr(model, name)))


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
        if not monthly.PERIOD_PATTERN.match(value):
            raise ValueError(value)
        return value

    def operation(self):
        return _l("est le mois (AAAA-MM)")


class IssueMonthFilter(PeriodFilter):
    """Invoices issued during a month (AAAA-MM)."""

    def apply(self, query, value, alias=None):
        first, next_month = monthly.period_bounds(value)
        column = self.get_column(alias)
        return query.filter(column >= first, column < next_month)



class StaffOnly:
    """Anonymous visitors go to the sign-in page; client users get 403."""

    def is_accessible(self) -> bool:
        return is_staff()

    def inaccessible_callback(self, name, **kwargs):
        if current_user.is_authenticated:
            abort(403)
        return redirect(url_for("staff_auth.login", next=request.full_path))


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
