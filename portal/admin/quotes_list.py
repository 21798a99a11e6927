"""Every quote, read-only: filtered by status and billing mode, searched by organisation name,
newest first, a page of 50 at a time.

Built to stay fast on hundreds of thousands of quotes, on any page: no COUNT(*), keyset pages
(`avant=<id>`: the database reads from there, however old the page), the ids of a page read first
from an index alone ((status, id), (organisation_id, id)) then their rows with the organisation's
name, and the name search resolved on the organisations, not row by row on the quotes. A page
reads plain rows (no model objects): the ORM and Flask-Admin's list machinery were most of the
page's time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from flask import request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from sqlalchemy import Select, any_, bindparam, exists, func, select

from ..extensions import db
from ..i18n import lazy_gettext as _l
from ..labels import label
from ..models import BillingMode, Organisation, Quote, QuoteStatus, quote_reference
from ..read_only import read_only
from ..search import organisation_ids_named
from .base import SecureView

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


HEADERS = (_l("Devis"), _l("Organisation"), _l("Objet"), _l("Statut"), _l("Total TTC"), _l("Validité"),
           _l("Envoyé le"))


class QuoteRow(NamedTuple):
    """A row of the list (ROW_COLUMNS) with what it shows beyond its columns, built once a page by
    quote_rows; shown by the quote_rows macro of admin/_rows.html."""

    id: int
    organisation_id: int
    number: str | None
    revision: int
    title: str | None
    status: QuoteStatus
    total_ttc_cents: int
    valid_until: date | None
    sent_at: datetime | None
    organisation_name: str
    url: str  # the quote's page
    organisation_url: str  # its organisation's quotes
    status_label: str

    @property
    def reference(self) -> str:
        return quote_reference(self.id, self.number, self.revision)


def quote_rows(rows: list) -> list[QuoteRow]:
    """The page's rows with their links and status labels, each looked up once a page rather than
    once a row (a url_for per row took a fifth of the list's rendering). The links are the quote
    editor's /<quote_id> and the organisation page's /<organisation_id>/devis, the ids appended to
    those views' URLs (tests/test_admin_quotes_list.py checks both)."""
    quote_page, organisation_page = url_for("quote_editor.index"), url_for("organisation.index")
    status_labels = {status: label(status) for status in QuoteStatus}
    return [QuoteRow(*row, url=f"{quote_page}{row.id}",
                     organisation_url=f"{organisation_page}{row.organisation_id}/devis",
                     status_label=status_labels[row.status])
            for row in rows]


class QuoteListView(SecureView):
    """The quotes of every organisation; a quote opens in the quote editor's page."""

    @expose("/")
    @read_only
    def index(self):
        filters = QuoteFilters.from_args(request.args)
        rows = page_of_quotes(filters, PAGE_SIZE + 1)  # one more: is there an older page?
        return self.render("admin/quote_list.html", filters=filters,
                           quotes=quote_rows(rows[:PAGE_SIZE]),
                           older=rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None,
                           headers=HEADERS, statuses=QuoteStatus, billing_modes=BillingMode)


def register(admin) -> None:
    """Add the quote list to the back office."""
    admin.add_view(QuoteListView(name=_l("Devis"), endpoint="quote_list", url="/admin/tous-les-devis"))
