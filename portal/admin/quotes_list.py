"""Every quote, read-only: filtered by status and billing mode, searched by organisation name,
newest first, a page of 50 at a time.

Built to stay fast on hundreds of thousands of quotes, on any page: no COUNT(*), keyset pages
(`avant=<id>`: the database reads from there, however old the page), the ids of a page read first
from an index alone ((status, id), (organisation_id, id)) then their rows with the organisation's
name, and the name search resolved on the organisations, not row by row on the quotes. A page
reads plain rows (no model objects) and writes them in one call: the ORM, Flask-Admin's list
machinery and a template block per row were most of the page's time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from flask import current_app, request
from flask_admin import expose
from flask_babel import get_locale
from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy import Select, any_, bindparam, exists, func, select

from ..billing import format_amount
from ..extensions import db
from ..fragments import admin_page
from ..i18n import lazy_gettext as _l
from ..labels import french_date
from ..models import BillingMode, Organisation, Quote, QuoteStatus, quote_reference
from ..search import organisation_ids_named
from .base import SecureView, status_badge, url_with_id

PAGE_SIZE = 50
OWNERS_LISTED = 500
# The tables, not the mapped classes: a page reads plain rows, and statements on tables alone skip
# the ORM's part of each execution.
QUOTE, ORGANISATION = Quote.__table__, Organisation.__table__
ROW_COLUMNS = (QUOTE.c.id, QUOTE.c.organisation_id, QUOTE.c.number, QUOTE.c.revision, QUOTE.c.title,
               QUOTE.c.status, QUOTE.c.total_ttc_cents, QUOTE.c.valid_until, QUOTE.c.sent_at,
               ORGANISATION.c.name.label("organisation_name"))


@dataclass
class QuoteFilters:
    """The list's URL arguments, checked: `statut`, `mode`, `q` (organisation name), `avant`."""

    status: QuoteStatus | None = None
    billing_mode: BillingMode | None = None
    search: str = ""
    before: int | None = None
    ignored: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args) -> QuoteFilters:
        filters = cls(search=" ".join(args.get("q", "").split()), before=args.get("avant", type=int))
        filters.status = filters._member(QuoteStatus, args.get("statut"), _("statut inconnu"))
        filters.billing_mode = filters._member(BillingMode, args.get("mode"),
                                               _("mode de facturation inconnu"))
        return filters

    def _member(self, enum_class: type[enum.Enum], value: str | None, unknown: str):
        if not value:
            return None
        try:
            return enum_class(value)
        except ValueError:
            self.ignored.append(unknown)
            return None

    def url_args(self, **changes) -> dict[str, Any]:
        """These filters as URL arguments (the page's links keep them)."""
        args = {"statut": self.status.value if self.status else None,
                "mode": self.billing_mode.value if self.billing_mode else None,
                "q": self.search or None, **changes}
        return {name: value for name, value in args.items() if value is not None}


def page_of_quotes(filters: QuoteFilters, size: int = PAGE_SIZE) -> list:
    """Up to `size` rows, newest first, older than `filters.before` if given."""
    parameters = {"status": filters.status, "billing_mode": filters.billing_mode,
                  "before": filters.before}
    if not filters.search:
        return _page(filters, "all", None, parameters, size)
    # The matching organisations first (an indexed query), so that their quotes are read through
    # (organisation_id, id); past OWNERS_LISTED, quotes are common enough to scan.
    named, name_parameters = organisation_ids_named(filters.search, limit=OWNERS_LISTED + 1)
    parameters.update(name_parameters)
    on_postgresql = db.session.get_bind().dialect.name == "postgresql"
    if on_postgresql:
        # One round trip for both: rows come back only when OWNERS_LISTED organisations or fewer
        # match (each round trip cost a page as much as the statement's own work).
        rows = _page(filters, "matched", named, parameters, size)
        if rows:
            return rows
    listed = db.session.scalars(named, parameters).all()
    if len(listed) > OWNERS_LISTED:
        return _page(filters, "named", organisation_ids_named(filters.search)[0], parameters, size)
    if not listed or on_postgresql:  # on PostgreSQL, the statement above read their quotes
        return []
    return _page(filters, "listed", None, {**parameters, "owner_ids": listed}, size)


def _page(filters: QuoteFilters, owners: str, named: Select | None, parameters: dict, size: int) -> list:
    statement = _page_statement(bool(filters.status), bool(filters.billing_mode), bool(filters.before),
                                owners, named, size)
    return db.session.execute(statement, parameters).all()


@lru_cache(maxsize=128)
def _page_statement(by_status: bool, by_billing_mode: bool, before: bool, owners: str,
                    named: Select | None, size: int) -> Select:
    """The page's rows; their ids from the quote table alone (an index serves each filter).
    Built once per combination of filters, their values left as parameters: building a statement
    and its cache key took longer than running it. `owners`: "all"; "listed", the ids given
    (SQLite); "named", those of `named`; "matched", those of `named` read in this statement, on
    PostgreSQL, and no rows past OWNERS_LISTED of them."""
    ids = select(QUOTE.c.id)
    if by_status:
        ids = ids.where(QUOTE.c.status == bindparam("status"))
    if by_billing_mode:
        ids = ids.where(QUOTE.c.billing_mode == bindparam("billing_mode"))
    if before:
        ids = ids.where(QUOTE.c.id < bindparam("before"))
    matched = named.cte("matched") if owners == "matched" else None
    if owners == "listed":
        ids = ids.where(QUOTE.c.organisation_id.in_(bindparam("owner_ids", expanding=True)))
    elif owners == "named":
        ids = ids.where(QUOTE.c.organisation_id.in_(named))
    elif matched is not None:
        # An array of the ids, so that each is looked up in (organisation_id, id): as a join or
        # IN (subquery), PostgreSQL scanned the quotes from the newest, testing each one's name.
        ids = ids.where(QUOTE.c.organisation_id == any_(func.array(select(matched.c.id).scalar_subquery())))
    ids = ids.order_by(QUOTE.c.id.desc()).limit(size)
    rows = (select(*ROW_COLUMNS).join(ORGANISATION, ORGANISATION.c.id == QUOTE.c.organisation_id)
            .where(QUOTE.c.id.in_(ids.scalar_subquery())).order_by(QUOTE.c.id.desc()))
    if matched is not None:
        rows = rows.where(~exists(select(matched.c.id).offset(OWNERS_LISTED)))  # no more than that
    return rows


class RowContext:
    """What the rows of every page share: URL patterns, the badge of each status."""

    def __init__(self) -> None:
        self.quote_url = url_with_id("quote_editor.detail", "quote_id")
        self.organisation_url = url_with_id("organisation.page", "organisation_id", tab="devis")
        self.badges = {status: str(status_badge(status)) for status in QuoteStatus}


def row_context() -> RowContext:
    """The rows' shared parts, made once per script root and locale (they were a sixth of the
    rows' time)."""
    contexts = current_app.extensions.setdefault("quote_list_rows", {})
    key = (request.script_root, str(get_locale()))
    if key not in contexts:
        contexts[key] = RowContext()
    return contexts[key]


HEADERS = (_l("Devis"), _l("Organisation"), _l("Objet"), _l("Statut"), _l("Total TTC"), _l("Validité"),
           _l("Envoyé le"))


def rows_html(rows: list) -> Markup:
    """Every `<tr>` of the page, a cell per header (rows unpacked in ROW_COLUMNS' order)."""
    shared = row_context()
    html = []
    for (quote_id, organisation_id, number, revision, title, status, total_ttc_cents, valid_until,
         sent_at, organisation_name) in rows:
        quote_url = escape(shared.quote_url(quote_id))
        organisation_url = escape(shared.organisation_url(organisation_id))
        html.append(
            f'<tr><td class="col-number"><a href="{quote_url}">'
            f'{escape(quote_reference(quote_id, number, revision))}</a></td>'
            f'<td class="col-organisation"><a href="{organisation_url}">{escape(organisation_name)}</a></td>'
            f'<td class="col-title">{escape(title or "")}</td>'
            f'<td class="col-status">{shared.badges[status]}</td>'
            f'<td class="col-total_ttc_cents"><span class="money">{escape(format_amount(total_ttc_cents))}'
            f'</span></td><td class="col-valid_until">{french_date(valid_until)}</td>'
            f'<td class="col-sent_at">{french_date(sent_at)}</td></tr>')
    return Markup("".join(html))


class QuoteListView(SecureView):
    """The quotes of every organisation; a quote opens in the quote editor's page."""

    @expose("/")
    def index(self):
        filters = QuoteFilters.from_args(request.args)
        rows = page_of_quotes(filters, PAGE_SIZE + 1)  # one more: is there an older page?
        return admin_page(self, "admin/quote_list.html", filters=filters,
                          rows=rows_html(rows[:PAGE_SIZE]), empty=not rows,
                          older=rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None,
                          headers=HEADERS, statuses=QuoteStatus, billing_modes=BillingMode)


def register(admin) -> None:
    """Add the quote list to the back office."""
    admin.add_view(QuoteListView(name=_l("Devis"), endpoint="quote_list", url="/admin/tous-les-devis"))
