"""Quote requests (portal/quote_requests.py): a request is answered when its quote is *sent*, not when
a draft exists. The draft takes a title and a recipient from the request; the requester is told by
email when the quote goes to someone else, or when the request is declined; the home's queue, the
back office's inbox and the client's « Demandes de devis » page show where each request stands."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal import quote_requests, quotes
from portal.dates import paris_today
from portal.delivery import emails
from portal.exceptions import InvalidInput, InvalidRecipient, RequestNotOpen
from portal.extensions import db
from portal.labels import french_date
from portal.models import (
    AuditEvent,
    ClientRole,
    OutboxEmail,
    Quote,
    QuoteRequest,
    QuoteRequestStatus,
    QuoteStatus,
)

from .web import form_tokens, page_text, sign_in_client


@pytest.fixture
def world(make):
    """Seller, CGV, an organisation with one user of each role, staff (make.world())."""
    return make.world()


def _request(world, role: ClientRole = ClientRole.MEMBRE, *products, message: str = "") -> QuoteRequest:
    return quote_requests.create_request(organisation=world["org"], requester=world["users"][role],
                                         items=[(product.id, n) for n, product in enumerate(products, 2)],
                                         message=message)


def _emails(template: str) -> list[OutboxEmail]:
    return db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == template)
                              .order_by(OutboxEmail.id)).all()


def _queue(html: str) -> str:
    """The home's card of requests to answer."""
    start = html.index("Demandes de devis à traiter")
    return html[start:html.find('<div class="card queue-card">', start)]


# --- Answered when the quote is sent ----------------------------------------------------------------


def test_a_request_stays_in_the_home_queue_until_its_quote_is_sent(staff_client, make):
    world = staff_client.world
    request = _request(world, ClientRole.MEMBRE, make.product(name="Pack découverte"))
    db.session.commit()
    answered = staff_client.post(f"/admin/demandes/{request.id}/repondre",
                                 data=form_tokens(staff_client, f"/admin/demandes/{request.id}"))
    db.session.expire_all()
    draft = db.session.scalar(select(Quote).where(Quote.request_id == request.id))
    assert answered.headers["Location"].endswith(f"/admin/devis/{draft.id}")
    assert db.session.get(QuoteRequest, request.id).status == QuoteRequestStatus.NEW

    queue = _queue(page_text(staff_client.get("/admin/")))
    assert f'href="/admin/demandes/{request.id}"' in queue
    assert f'<a href="/admin/devis/{draft.id}">Devis en préparation</a>' in queue
    inbox = page_text(staff_client.get("/admin/demandes/"))
    assert f'<a href="/admin/devis/{draft.id}">Devis en préparation</a>' in inbox
    detail = page_text(staff_client.get(f"/admin/demandes/{request.id}"))
    assert "Devis en préparation :" in detail and ">Répondre</button>" not in detail
    # Answering again (a second tab, a second colleague) opens the same draft.
    assert quote_requests.answer_request(request, actor=world["admin"]) == draft

    quotes.send(draft, actor=world["admin"])
    db.session.commit()
    queue = _queue(page_text(staff_client.get("/admin/")))
    assert f'href="/admin/demandes/{request.id}"' not in queue
    request = db.session.get(QuoteRequest, request.id)
    assert request.status == QuoteRequestStatus.ANSWERED and request.handled_at == draft.sent_at
    assert request.handled_by_id == world["admin"].id
    inbox = page_text(staff_client.get("/admin/demandes/?statut=answered"))
    assert f'<a href="/admin/devis/{draft.id}">{draft.reference}</a>' in inbox


def test_a_request_answered_or_declined_is_no_longer_open(world, make):
    answered, declined = (_request(world, ClientRole.MEMBRE, make.product()) for _ in range(2))
    quotes.send(quote_requests.answer_request(answered, actor=world["admin"]), actor=world["admin"])
    quote_requests.decline_request(declined, actor=world["admin"], reason="Produit arrêté")
    for request in (answered, declined):
        with pytest.raises(RequestNotOpen):
            quote_requests.answer_request(request, actor=world["admin"])
        with pytest.raises(RequestNotOpen):
            quote_requests.decline_request(request, actor=world["admin"], reason="Encore")


def test_a_rolled_back_sending_leaves_the_request_to_answer(world, make):
    request = _request(world, ClientRole.MEMBRE, make.product())
    draft = quote_requests.answer_request(request, actor=world["admin"])
    db.session.commit()
    quotes.send(draft, actor=world["admin"])
    db.session.rollback()
    assert db.session.get(QuoteRequest, request.id).status == QuoteRequestStatus.NEW
    assert _emails("request_answered") == []
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "request.answered")) is None


def test_a_draft_cancelled_before_sending_lets_staff_answer_again(world, make):
    request = _request(world, ClientRole.MEMBRE, make.product())
    first = quote_requests.answer_request(request, actor=world["admin"])
    quotes.cancel(first, actor=world["admin"])
    second = quote_requests.answer_request(request, actor=world["admin"])
    assert second != first and second.status == QuoteStatus.DRAFT
    assert (first.request_id, second.request_id) == (None, request.id)
    assert request.status == QuoteRequestStatus.NEW


# --- The draft's title and recipient ------------------------------------------------------------------


@pytest.mark.parametrize("role", [ClientRole.RESPONSABLE, ClientRole.GESTIONNAIRE])
def test_the_draft_goes_to_a_requester_who_may_decide_under_the_requests_title(world, make, role):
    product = make.product(name="Journée de formation")
    request = _request(world, role, product, message="Pour trois personnes")
    draft = quote_requests.answer_request(request, actor=world["admin"])
    assert draft.recipient == world["users"][role]
    assert draft.title == f"Demande du {french_date(paris_today(request.created_at))} : Journée de formation"
    assert [(line.product_id, line.quantity) for line in draft.lines] == [(product.id, 2)]


def test_a_membres_request_goes_to_the_organisations_responsable(world, make):
    world["users"][ClientRole.RESPONSABLE].active = False  # the first responsable has left
    successor = make.client_user(world["org"], ClientRole.RESPONSABLE)
    request = _request(world, ClientRole.MEMBRE, make.product(name="Pack 100"), make.product(name="Audit"),
                       make.product(name="Pack 500"))
    draft = quote_requests.answer_request(request, actor=world["admin"])
    assert draft.recipient == successor
    assert draft.title.endswith(" : Pack 100 et 2 autres produits")


def test_without_a_responsable_the_draft_waits_for_staff_to_choose_its_recipient(make):
    make.seller_settings()
    org = make.organisation()
    member = make.client_user(org, ClientRole.MEMBRE)
    request = quote_requests.create_request(organisation=org, requester=member,
                                            items=[(make.product().id, 1)])
    draft = quote_requests.answer_request(request, actor=make.staff())
    assert draft.recipient is None
    with pytest.raises(InvalidRecipient):
        quotes.send(draft, actor=make.staff())


# --- The requester is told ----------------------------------------------------------------------------


def test_sending_the_quote_tells_a_requester_who_is_not_its_recipient(world, make):
    member, responsable = world["users"][ClientRole.MEMBRE], world["users"][ClientRole.RESPONSABLE]
    request = _request(world, ClientRole.MEMBRE, make.product(name="Pack 500"))
    quote = quotes.send(quote_requests.answer_request(request, actor=world["admin"]), actor=world["admin"],
                        ip="203.0.113.9")
    assert request.status == QuoteRequestStatus.ANSWERED
    [sent] = [email for email in _emails("quote_sent") if email.context["quote_id"] == quote.id]
    [told] = _emails("request_answered")
    assert (sent.recipient, told.recipient) == (responsable.email, member.email)
    assert told.context == {"request_id": request.id, "quote_id": quote.id}
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "request.answered"))
    assert (audit.object_id, audit.details, audit.ip) == (request.id, {"quote_id": quote.id}, "203.0.113.9")

    rendered = emails.render(told)
    assert rendered.subject == f"Votre demande de devis : devis {quote.reference} envoyé"
    for part in (rendered.text, rendered.html):
        assert responsable.full_name in part and "2 × Pack 500" in part
        assert f"/espace-client/devis/{quote.id}" in part


def test_a_requester_who_receives_the_quote_gets_its_email_only(world, make):
    request = _request(world, ClientRole.GESTIONNAIRE, make.product())
    quotes.send(quote_requests.answer_request(request, actor=world["admin"]), actor=world["admin"])
    assert request.status == QuoteRequestStatus.ANSWERED
    assert _emails("request_answered") == []


def test_declining_emails_the_reason_and_drops_the_draft_in_preparation(world, make):
    member = world["users"][ClientRole.MEMBRE]
    request = _request(world, ClientRole.MEMBRE, make.product(name="Pack 500"))
    draft = quote_requests.answer_request(request, actor=world["admin"])
    with pytest.raises(InvalidInput):
        quote_requests.decline_request(request, actor=world["admin"], reason="  ")
    quote_requests.decline_request(request, actor=world["admin"], reason="Produit arrêté en 2026")
    assert (request.status, request.decline_reason) == (QuoteRequestStatus.DECLINED, "Produit arrêté en 2026")
    assert draft.status == QuoteStatus.CANCELLED
    [told] = _emails("request_declined")
    assert (told.recipient, told.context) == (member.email, {"request_id": request.id})
    rendered = emails.render(told)
    assert rendered.subject.startswith("Votre demande de devis du ") and "déclinée" in rendered.subject
    for part in (rendered.text, rendered.html):
        assert "Produit arrêté en 2026" in part and "/espace-client/demandes" in part


# --- What the client sees -------------------------------------------------------------------------------


def _items(html: str) -> dict[str, str]:
    """The client's requests, by product name: the text of each list item."""
    found = {}
    for item in re.findall(r"<li>(.*?)</li>", html[html.index("Mes demandes"):], re.S):
        name = re.search(r"\d+ × ([^,<]+)", item).group(1).strip()
        found[name] = item
    return found


def test_the_client_sees_where_each_request_stands(client, world, make):
    new, preparing, answered, declined = (_request(world, ClientRole.MEMBRE, make.product(name=name))
                                          for name in ("Pack A", "Pack B", "Pack C", "Pack D"))
    quote_requests.answer_request(preparing, actor=world["admin"])
    quote = quotes.send(quote_requests.answer_request(answered, actor=world["admin"]), actor=world["admin"])
    quote_requests.decline_request(declined, actor=world["admin"], reason="Hors catalogue")
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.MEMBRE])
    items = _items(page_text(client.get("/espace-client/demandes")))
    assert '<span class="badge">Nouvelle</span>' in items["Pack A"]
    assert '<span class="badge">Devis en préparation</span>' in items["Pack B"]
    assert "/espace-client/devis/" not in items["Pack B"]  # a draft is never shown to the client
    assert '<span class="badge">Devis établi</span>' in items["Pack C"]
    assert f'href="/espace-client/devis/{quote.id}">Devis {quote.reference}</a>' in items["Pack C"]
    assert '<span class="badge">Déclinée</span>' in items["Pack D"]
    assert "Motif : Hors catalogue" in items["Pack D"]
