"""Every quote, read-only: filtered by status, searched by organisation name, newest first.

Built to stay fast on hundreds of thousands of quotes: no COUNT(*) (the simple pager), the
organisation's name joined in the same query, no sort but the id (an index on (status, id) serves
the status filter), and the name search resolved on the organisations, not row by row on the
quotes. A page reads the listed columns as plain rows (no model objects) and writes its rows in
one call: the ORM and a template block per row were most of the page's time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import url_for
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from ..billing import format_amount
from ..extensions import db
from ..labels import french_date
from ..models import BillingMode, Organisation, Quote, QuoteStatus, quote_reference
from ..search import organisation_ids_named
from .base import ChoiceFilter, SecureModelView, status_badge

OWNERS_LISTED = 500
ROW_COLUMNS = (Quote.id, Quote.organisation_id, Quote.number, Quote.revision, Quote.title,
               Quote.status, Quote.total_ttc_cents, Quote.valid_until, Quote.sent_at,
               Organisation.name.label("organisation_name"))
_ID = "987654321"  # stands for a row's id in the URLs built once per page


class RowContext:
    """What every row of a page shares, computed once: URL patterns and status badges."""

    def __init__(self) -> None:
        self.quote_url = str(escape(url_for("quote_editor.detail", quote_id=int(_ID))))
        self.organisation_url = str(escape(url_for("organisation.page", organisation_id=int(_ID),
                                                   tab="devis")))
        self.badges = {status: str(status_badge(status)) for status in QuoteStatus}


def _reference(row, shared: RowContext) -> str:
    reference = escape(quote_reference(row.id, row.number, row.revision))
    return f'<a href="{shared.quote_url.replace(_ID, str(row.id))}">{reference}</a>'


def _organisation(row, shared: RowContext) -> str:
    url = shared.organisation_url.replace(_ID, str(row.organisation_id))
    return f'<a href="{url}">{escape(row.organisation_name)}</a>'


# The columns in their order: name, label, cell content (HTML) of a row.
CELLS: tuple[tuple[str, Any, Callable[[Any, RowContext], str]], ...] = (
    ("number", _l("Devis"), _reference),
    ("organisation", _l("Organisation"), _organisation),
    ("title", _l("Objet"), lambda row, shared: str(escape(row.title or ""))),
    ("status", _l("Statut"), lambda row, shared: shared.badges[row.status]),
    ("total_ttc_cents", _l("Total TTC"),
     lambda row, shared: f'<span class="money">{escape(format_amount(row.total_ttc_cents))}</span>'),
    ("valid_until", _l("Validité"), lambda row, shared: french_date(row.valid_until)),
    ("sent_at", _l("Envoyé le"), lambda row, shared: french_date(row.sent_at)),
)


class QuoteListView(SecureModelView):
    """The quotes of every organisation; a quote opens in the quote editor's page."""

    can_create = False
    can_edit = False
    can_view_details = False
    column_display_actions = False  # a row has no action: its reference opens the quote editor
    list_template = "admin/quote_list.html"
    column_list = tuple(name for name, _label, _cell in CELLS)
    column_labels = {name: label for name, label, _cell in CELLS} | {"organisation.name": _l("Organisation")}
    column_auto_select_related = False  # get_query joins the organisation's name
    column_sortable_list = ()
    column_default_sort = ("id", True)
    column_searchable_list = ("organisation.name",)
    column_filters = (
        ChoiceFilter(Quote.status, _l("Statut"), QuoteStatus),
        ChoiceFilter(Quote.billing_mode, _l("Mode de facturation"), BillingMode),
    )

    def get_query(self):
        """The listed columns of each quote with its organisation's name, as plain rows."""
        return db.session.query(*ROW_COLUMNS).join(Organisation, Organisation.id == Quote.organisation_id)

    def rows_html(self, rows: list) -> Markup:
        """Every `<tr>` of the page, its cells in the order of CELLS."""
        shared = RowContext()
        return Markup("".join(
            "<tr>" + "".join(f'<td class="col-{name}">{cell(row, shared)}</td>'
                             for name, _label, cell in CELLS) + "</tr>"
            for row in rows))

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
