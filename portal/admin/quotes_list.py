"""Every quote, read-only: filtered by status, searched by organisation name, newest first.

Built to stay fast on hundreds of thousands of quotes: no COUNT(*) (the simple pager), the
organisation joined in the same query, no sort but the id (an index on (status, id) serves the
status filter), and the name search resolved on the organisations, not row by row on the quotes.
"""

from __future__ import annotations

from flask import g, url_for
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from ..billing import format_amount
from ..extensions import db
from ..models import BillingMode, Quote, QuoteStatus
from ..search import organisation_ids_named
from .base import ChoiceFilter, SecureModelView, date_cell, status_badge

OWNERS_LISTED = 500
_ID = "987654321"  # stands for a row's id in the URLs built once per request


def _per_request() -> dict:
    """URLs and status badges computed once per page rather than once per row (url_for and the
    translated labels cost more than the rest of a row)."""
    cache = g.get("_quote_list_cells")
    if cache is None:
        cache = g._quote_list_cells = {
            "quote": url_for("quote_editor.detail", quote_id=int(_ID)),
            "organisation": url_for("organisation.page", organisation_id=int(_ID), tab="devis"),
            "badges": {status: status_badge(status) for status in QuoteStatus},
        }
    return cache


def _link(kind: str, object_id: int, text: str) -> Markup:
    url = _per_request()[kind].replace(_ID, str(object_id))
    return Markup(f'<a href="{escape(url)}">{escape(text)}</a>')


def _reference_cell(view, context, model, name) -> Markup:
    return _link("quote", model.id, model.reference)


def _organisation_cell(view, context, model, name) -> Markup:
    return _link("organisation", model.organisation_id, model.organisation.name)


def _status_cell(view, context, model, name) -> Markup:
    return _per_request()["badges"][model.status]


def _money_cell(view, context, model, name) -> Markup:
    return Markup(f'<span class="money">{escape(format_amount(getattr(model, name)))}</span>')


class QuoteListView(SecureModelView):
    """The quotes of every organisation; a quote opens in the quote editor's page."""

    can_create = False
    can_edit = False
    can_view_details = False
    column_display_actions = False  # a row has no action: its reference opens the quote editor
    list_template = "admin/quote_list.html"
    column_list = ("number", "organisation", "title", "status", "total_ttc_cents", "valid_until",
                   "sent_at")
    column_select_related_list = (Quote.organisation,)
    column_sortable_list = ()
    column_default_sort = ("id", True)
    column_searchable_list = ("organisation.name",)
    column_filters = (
        ChoiceFilter(Quote.status, _l("Statut"), QuoteStatus),
        ChoiceFilter(Quote.billing_mode, _l("Mode de facturation"), BillingMode),
    )
    column_labels = {
        "number": _l("Devis"), "organisation": _l("Organisation"), "organisation.name": _l("Organisation"),
        "title": _l("Objet"), "status": _l("Statut"), "total_ttc_cents": _l("Total TTC"),
        "valid_until": _l("Validité"), "sent_at": _l("Envoyé le"),
    }
    column_formatters = {
        "number": _reference_cell,
        "organisation": _organisation_cell,
        "status": _status_cell,
        "total_ttc_cents": _money_cell,
        "valid_until": date_cell,
        "sent_at": date_cell,
    }

    def row_cells(self, row: Quote) -> Markup:
        """The `<td>` cells of a row, as Flask-Admin's list template renders them: the declared
        formatter of each column, else its escaped value ("" for none)."""
        cells = []
        for name, _label in self._list_columns:
            formatter = self.column_formatters.get(name)
            value = formatter(self, None, row, name) if formatter else getattr(row, name)
            cells.append(f'<td class="col-{name}">{escape("" if value is None else value)}</td>')
        return Markup("".join(cells))

    def _apply_search(self, query, count_query, joins, count_joins, search):
        """The organisation's name contains the text (as the home's search). The matching
        organisations are listed first (one indexed query), so that the database reads their
        quotes through (organisation_id, id) instead of testing the name of every quote's
        organisation; past OWNERS_LISTED of them, quotes are common enough to scan newest first."""
        owners = organisation_ids_named(search)
        if owners is not None:
            ids = db.session.scalars(owners.limit(OWNERS_LISTED + 1)).all()
            query = query.filter(Quote.organisation_id.in_(ids if len(ids) <= OWNERS_LISTED else owners))
        return query, count_query, joins, count_joins


def register(admin) -> None:
    """Add the quote list to the back office."""
    admin.add_view(QuoteListView(Quote, name=_l("Devis"), endpoint="quote_list",
                                 url="/admin/tous-les-devis"))
