"""Quote requests sent from the client portal: answer with a pre-filled draft (the request is
answered when that quote is sent), or decline."""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload
from wtforms import TextAreaField

from .. import quote_requests
from ..extensions import db
from ..i18n import lazy_gettext as _l
from ..models import QuoteRequest, QuoteRequestLine, QuoteRequestStatus
from ..transaction import transaction
from .base import SecureView

PAGE_SIZE = 50


class DeclineForm(FlaskForm):
    reason = TextAreaField(_l("Motif (lu par le client)"))


class RequestsInboxView(SecureView):
    """The inbox: new requests first; each opens on its lines and message."""

    @expose("/")
    def index(self):
        status = request.args.get("statut", QuoteRequestStatus.NEW.value)
        if status not in {s.value for s in QuoteRequestStatus}:
            abort(404)
        before = request.args.get("avant", type=int)
        statement = (select(QuoteRequest).where(QuoteRequest.status == status)
                     .options(joinedload(QuoteRequest.organisation), joinedload(QuoteRequest.requester),
                              joinedload(QuoteRequest.quote)))
        if before:
            statement = statement.where(QuoteRequest.id < before)
        rows = db.session.scalars(statement.order_by(QuoteRequest.id.desc()).limit(PAGE_SIZE)).all()
        return self.render("admin/requests.html", rows=rows, status=status,
                           statuses=QuoteRequestStatus, page_size=PAGE_SIZE)

    @expose("/<int:request_id>")
    def detail(self, request_id: int):
        quote_request = _load(request_id)
        return self.render("admin/request_detail.html", item=quote_request, form=DeclineForm(),
                           answer_form=FlaskForm())

    @expose("/<int:request_id>/repondre", methods=["POST"])
    def answer(self, request_id: int):
        quote_request = _load(request_id)
        if not FlaskForm().validate_on_submit():
            abort(400)
        with transaction() as outcome:
            quote = quote_requests.answer_request(quote_request, actor=current_user, ip=request.remote_addr)
        if not outcome.ok:
            return redirect(url_for(".detail", request_id=request_id))
        flash(_("Brouillon créé à partir de la demande : complétez-le puis envoyez-le. La demande reste "
                "à traiter jusqu’à l’envoi du devis."), "success")
        return redirect(url_for("quote_editor.detail", quote_id=quote.id))

    @expose("/<int:request_id>/decliner", methods=["POST"])
    def decline(self, request_id: int):
        quote_request = _load(request_id)
        form = DeclineForm()
        if not form.validate_on_submit():
            abort(400)
        with transaction() as outcome:
            quote_requests.decline_request(quote_request, actor=current_user, reason=form.reason.data or "",
                                           ip=request.remote_addr)
        if not outcome.ok:
            return self.render("admin/request_detail.html", item=_load(request_id), form=form,
                               answer_form=FlaskForm())
        flash(_("Demande déclinée ; le demandeur reçoit le motif par email et le voit dans son espace."),
              "success")
        return redirect(url_for(".index"))


def _load(request_id: int) -> QuoteRequest:
    quote_request = db.session.scalar(
        select(QuoteRequest).where(QuoteRequest.id == request_id).options(
            joinedload(QuoteRequest.organisation), joinedload(QuoteRequest.requester),
            selectinload(QuoteRequest.lines).joinedload(QuoteRequestLine.product),
            joinedload(QuoteRequest.quote))
    )
    return quote_request or abort(404)


def register(admin) -> None:
    admin.add_view(RequestsInboxView(name=_l("Demandes de devis"), endpoint="requests",
                                     url="/admin/demandes"))
