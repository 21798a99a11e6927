"""Quote requests under real concurrency (PostgreSQL): two staff members answering one request at
once make one draft; a request declined while another answers it, or answered by its quote's
sending while another declines it, gives the second a clear refusal."""

from __future__ import annotations

from sqlalchemy import func, select

from portal import quote_requests, quotes
from portal.exceptions import RequestNotOpen
from portal.extensions import db
from portal.models import ClientRole, Quote, QuoteRequest, QuoteRequestStatus, User

from .test_concurrency_pg import hold_then_race


def _committed_request(make) -> tuple[int, int]:
    world = make.world()
    member = world["users"][ClientRole.MEMBRE]
    request = quote_requests.create_request(organisation=world["org"], requester=member,
                                            items=[(make.product().id, 2)])
    db.session.commit()
    return request.id, world["admin"].id


def _answer(request_id: int, admin_id: int) -> int:
    return quote_requests.answer_request(db.session.get(QuoteRequest, request_id),
                                         actor=db.session.get(User, admin_id)).id


def _decline(request_id: int, admin_id: int) -> None:
    quote_requests.decline_request(db.session.get(QuoteRequest, request_id),
                                   actor=db.session.get(User, admin_id), reason="Hors catalogue")


def test_two_staff_answering_at_once_make_one_draft(app, make):
    request_id, admin_id = _committed_request(make)
    def answer():
        return _answer(request_id, admin_id)

    holder, racer = hold_then_race(app, answer, answer)
    assert holder.result == racer.result
    drafts = select(func.count()).select_from(Quote).where(Quote.request_id == request_id)
    assert db.session.scalar(drafts) == 1


def test_a_request_declined_meanwhile_cannot_be_answered(app, make):
    request_id, admin_id = _committed_request(make)
    _, racer = hold_then_race(app, lambda: _decline(request_id, admin_id),
                              lambda: _answer(request_id, admin_id), refusals=(RequestNotOpen,))
    assert isinstance(racer.refusal, RequestNotOpen)
    assert db.session.scalar(select(func.count()).select_from(Quote)) == 1  # the world's quote only


def test_a_request_answered_by_its_quote_meanwhile_cannot_be_declined(app, make):
    request_id, admin_id = _committed_request(make)
    draft_id = _answer(request_id, admin_id)
    db.session.commit()

    def send():
        quotes.send(db.session.get(Quote, draft_id), actor=db.session.get(User, admin_id))

    _, racer = hold_then_race(app, send, lambda: _decline(request_id, admin_id), refusals=(RequestNotOpen,))
    assert isinstance(racer.refusal, RequestNotOpen)
    db.session.expire_all()
    assert db.session.get(QuoteRequest, request_id).status == QuoteRequestStatus.ANSWERED
