""""Gestion courante": the staff home, with the organisation search and the work queues."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import jsonify, redirect, request, url_for
from flask_admin import AdminIndexView, expose
from flask_babel import gettext as _
from sqlalchemy import Select, bindparam, func, literal, select
from sqlalchemy.orm import joinedload

from ..dates import paris_today
from ..extensions import db
from ..labels import label
from ..models import (
    BillingMode,
    Invoice,
    InvoiceKind,
    Organisation,
    Quote,
    QuoteRequest,
    QuoteRequestStatus,
    QuoteStatus,
    quote_reference,
)
from ..read_only import read_only
from ..search import documents_numbered, find_document, search_organisations
from .base import StaffOnly

QUEUE_PREVIEW = 10
EXPIRY_WARNING_DAYS = 7
QUEUE_COUNT_CAP = 999
SUGGESTIONS = 10


@dataclass
class Queue:
    count: int
    rows: list

    @property
    def shown_count(self) -> str:
        """The count of the badge: "999+" past QUEUE_COUNT_CAP (counted no further)."""
        return f"{QUEUE_COUNT_CAP}+" if self.count > QUEUE_COUNT_CAP else str(self.count)


class HomeView(StaffOnly, AdminIndexView):
    """The staff home: search bar, then the four work queues."""

    @expose("/")
    @read_only
    def index(self):
        query = request.args.get("q", "").strip()
        if query:
            # A whole quote or invoice number opens that document; any other search is a task of
            # its own: its results alone (rows of search.HIT_COLUMNS), the queues one click away.
            document = find_document(query)
            if document is not None:
                return redirect(document_url(document))
            return self.render("admin/home.html", query=query, results=search_organisations(query))
        today = paris_today()
        return self.render("admin/home.html", query="", results=None, today=today,
                           soon=today + timedelta(days=EXPIRY_WARNING_DAYS), **work_queues(today))

    @expose("/recherche")
    @read_only
    def suggest(self):
        """Search results as you type (JSON): the quotes and invoices whose number starts as typed
        (half the list at most), then the organisations found."""
        query = request.args.get("q", "")
        documents = documents_numbered(query, limit=SUGGESTIONS // 2)
        organisations = search_organisations(query, limit=SUGGESTIONS - len(documents))
        return jsonify([_document_suggestion(row) for row in documents]
                       + [{"kind": "organisation", "name": row.name, "siren": row.siren or "",
                           "city": row.city or "",
                           "url": url_for("organisation.page", organisation_id=row.id)}
                          for row in organisations])


def document_url(document) -> str:
    """The back-office page of a document row of search.find_document / documents_numbered."""
    if document.kind == "quote":
        return url_for("quote_editor.detail", quote_id=document.id)
    return url_for("invoices.details_view", id=document.id)


def _document_suggestion(document) -> dict[str, str]:
    if document.kind == "quote":
        kind = _("Devis")
        reference = quote_reference(document.id, document.number, document.revision)
    else:
        kind, reference = label(InvoiceKind(document.kind)), document.number
    name = _("%(kind)s %(reference)s — %(organisation)s", kind=kind, reference=reference,
             organisation=document.organisation_name)
    return {"kind": document.kind, "name": name, "siren": "", "city": "", "url": document_url(document)}


def _queue_statements(model, *criteria, load, order_by, also=()) -> tuple[Select, Select]:
    """A queue's count and its first rows. Counted up to one past the cap: a queue of thousands
    (unpaid invoices of past years) would otherwise be read whole on every visit of the home,
    for a figure nobody works through."""
    first = select(literal(1)).select_from(model).where(*criteria).limit(bindparam("counted"))
    return (select(func.count()).select_from(first.subquery()),
            select(model).where(*criteria).options(joinedload(load), *(joinedload(more) for more in also))
            .order_by(*order_by)
            .limit(QUEUE_PREVIEW))


# The home's statements, built once: building them and their cache keys took longer than running
# them.
QUEUES = {
    # A request stays here until its quote is sent; its draft, if any, is shown beside it.
    "requests": _queue_statements(QuoteRequest, QuoteRequest.status == QuoteRequestStatus.NEW,
                                  load=QuoteRequest.organisation, also=(QuoteRequest.quote,),
                                  order_by=(QuoteRequest.created_at,)),
    "awaiting": _queue_statements(Quote, Quote.status == QuoteStatus.SENT, load=Quote.organisation,
                                  order_by=(Quote.valid_until, Quote.id)),
    "unpaid": _queue_statements(Invoice, Invoice.is_payable, Invoice.quote_id.is_not(None),
                                load=Invoice.organisation, order_by=(Invoice.due_date, Invoice.id)),
}
# The first rows only, with the number of organisation-months alongside (a window count): before
# a close there may be thousands of them.
TO_BILL = (
    select(Organisation.id, Organisation.name, Quote.billing_period, func.count(Quote.id),
           func.count().over())
    .join(Organisation, Organisation.id == Quote.organisation_id)
    .where(Quote.status == QuoteStatus.ACCEPTED, Quote.billing_mode == BillingMode.MONTHLY,
           Quote.monthly_invoice_id.is_(None), Quote.billing_period < bindparam("current_period"))
    .group_by(Organisation.id, Organisation.name, Quote.billing_period)
    .order_by(Quote.billing_period, Organisation.name).limit(QUEUE_PREVIEW)
)


def work_queues(today) -> dict[str, Queue]:
    """The home's queues, each a count and its first rows."""
    queues = {name: Queue(db.session.scalar(count, {"counted": QUEUE_COUNT_CAP + 1}),
                          db.session.scalars(rows).all())
              for name, (count, rows) in QUEUES.items()}
    to_bill = db.session.execute(TO_BILL, {"current_period": today.strftime("%Y-%m")}).all()
    return {**queues, "to_bill": Queue(to_bill[0][4] if to_bill else 0, [row[:4] for row in to_bill])}
