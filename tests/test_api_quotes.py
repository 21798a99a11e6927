"""API: an organisation's quotes and invoices as its portal shows them (drafts never), with
absolute links that work, and quote requests sent on behalf of a client user."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from portal import billing, quotes
from portal.extensions import db
from portal.models import (
    Channel,
    ClientRole,
    Invoice,
    InvoiceKind,
    OutboxEmail,
    PaymentProvider,
    Quote,
    QuoteRequest,
    QuoteRequestStatus,
    QuoteStatus,
)
from portal.quotes import LineInput

from .api_helpers import API, api_headers, assert_problem
from .web import count_queries, sign_in_client

BASE = "https://portail.vendeur.example"


@pytest.fixture
def world(app, make, monkeypatch):
    """The world of make.world() (a sent quote) and its links on the portal's canonical address."""
    monkeypatch.setitem(app.config, "PORTAL_BASE_URL", BASE)
    world = make.world()
    db.session.commit()
    return world


@pytest.fixture
def read(client):
    headers = api_headers("quotes:read")

    def get(path: str, **query):
        return client.get(API + path, query_string=query, headers=headers)

    return get


def _gestionnaire(world):
    return world["users"][ClientRole.GESTIONNAIRE]


def _sent(make, world, org=None, quantity: int = 1) -> Quote:
    product = make.product()
    org = org or world["org"]
    recipient = _gestionnaire(world) if org is world["org"] else make.client_user(org)
    return make.sent_quote(org, actor=world["admin"], recipient=recipient,
                           lines=[LineInput(product_id=product.id, quantity=quantity)])


def _draft(make, world) -> Quote:
    return quotes.create_draft(organisation=world["org"], actor=world["admin"],
                               recipient=_gestionnaire(world),
                               lines=[LineInput(product_id=make.product().id, quantity=1)])


def _accept(world, quote: Quote) -> Invoice:
    quotes.accept(quote, actor=_gestionnaire(world), terms_version=world["terms"], channel=Channel.PORTAL)
    return db.session.scalar(select(Invoice).where(Invoice.quote_id == quote.id))


# --- Quotes -----------------------------------------------------------------------------------


def test_the_quote_list_is_the_organisations_newest_first_without_drafts(read, world, make):
    accepted = _sent(make, world)
    _accept(world, accepted)
    refused = _sent(make, world)
    quotes.refuse(refused, actor=_gestionnaire(world), terms_version=world["terms"], channel=Channel.PORTAL)
    draft = _draft(make, world)
    theirs = _sent(make, world, org=make.organisation())
    db.session.commit()

    page = read(f"/organisations/{world['org'].id}/quotes").get_json()
    ids = [quote["id"] for quote in page["data"]]
    assert ids == [refused.id, accepted.id, world["quote"].id]
    assert draft.id not in ids and theirs.id not in ids
    assert page["has_more"] is False and page["next_cursor"] is None
    assert [quote["status"] for quote in page["data"]] == ["refused", "accepted", "sent"]


def test_a_quote_shows_what_the_portal_shows(read, world):
    quote = world["quote"]
    body = read(f"/quotes/{quote.id}").get_json()
    assert body == {
        "object": "quote", "id": quote.id, "reference": quote.reference,
        "organisation_id": world["org"].id, "title": quote.title, "status": "sent",
        "billing_mode": "per_order",
        "totals": {"total_ht_cents": 20000, "total_vat_cents": 4000, "total_ttc_cents": 24000,
                   "total_credits": 20},
        "currency": "EUR", "valid_until": quote.valid_until.isoformat(),
        "sent_at": quote.sent_at.isoformat(timespec="seconds") + "Z", "decided_at": None,
        "created_at": quote.created_at.isoformat(timespec="seconds") + "Z",
        "portal_url": f"{BASE}/espace-client/devis/{quote.id}",
        "pdf_url": f"{BASE}/espace-client/devis/{quote.id}/pdf",
    }
    assert quote.reference.startswith("DV-")
    # The list shows the same object.
    [listed] = read(f"/organisations/{world['org'].id}/quotes").get_json()["data"]
    assert listed == body


def test_links_use_the_portals_address_not_the_api_callers_host(client, world):
    response = client.get(f"{API}/quotes/{world['quote'].id}", headers={
        **api_headers("quotes:read"), "Host": "evil.example"})
    assert response.get_json()["portal_url"].startswith(f"{BASE}/espace-client/")


@pytest.mark.parametrize("status", ["sent", "accepted", "refused"])
def test_the_status_filter_narrows_the_list(read, world, make, status):
    accepted = _sent(make, world)
    _accept(world, accepted)
    refused = _sent(make, world)
    quotes.refuse(refused, actor=_gestionnaire(world), terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    expected = {"sent": world["quote"].id, "accepted": accepted.id, "refused": refused.id}[status]

    page = read(f"/organisations/{world['org'].id}/quotes", status=status).get_json()
    assert [quote["id"] for quote in page["data"]] == [expected]


@pytest.mark.parametrize("status", ["draft", "DRAFT", "Sent", "unknown", "", "sent,accepted"])
def test_a_status_that_is_not_a_listed_one_is_a_422(read, world, status):
    response = read(f"/organisations/{world['org'].id}/quotes", status=status)
    body = assert_problem(response, 422, "invalid_api_field")
    assert body["field"] == "status"
    assert "sent, accepted, refused, expired, cancelled, superseded" in body["detail"]
    assert "draft" not in body["detail"]


def test_a_draft_is_not_found_like_an_unknown_quote(read, world, make):
    draft = _draft(make, world)
    db.session.commit()
    for quote_id in (draft.id, 999_999):
        body = assert_problem(read(f"/quotes/{quote_id}"), 404, "api_resource_not_found")
        assert body["detail"] == "Devis introuvable."


def test_an_unknown_organisation_is_a_404(read, world):
    for path in ("/organisations/999999/quotes", "/organisations/999999/invoices"):
        body = assert_problem(read(path), 404, "api_resource_not_found")
        assert body["detail"] == "Organisation introuvable."


def test_another_organisations_quote_is_never_listed_under_this_one(read, world, make):
    other = make.organisation()
    theirs = _sent(make, world, org=other)
    db.session.commit()
    mine = read(f"/organisations/{world['org'].id}/quotes", limit=100).get_json()["data"]
    assert theirs.id not in [quote["id"] for quote in mine]
    [listed] = read(f"/organisations/{other.id}/quotes").get_json()["data"]
    assert listed["id"] == theirs.id and listed["organisation_id"] == other.id


def test_the_quote_list_costs_the_same_for_three_quotes_or_twelve(client, world, make):
    headers = api_headers("quotes:read")
    url = f"{API}/organisations/{world['org'].id}/quotes"

    def queries() -> tuple[int, int]:
        db.session.expire_all()
        with count_queries() as counter:
            response = client.get(url, query_string={"limit": 100}, headers=headers)
        assert response.status_code == 200
        return counter.n, len(response.get_json()["data"])

    for _ in range(2):
        _sent(make, world)
    db.session.commit()
    client.get(url, headers=headers)  # the key's first call notes its use (one UPDATE), the next ones not
    few, shown = queries()
    assert shown == 3 and few > 0
    for _ in range(9):
        _sent(make, world)
    db.session.commit()
    assert queries() == (few, 12)


# --- Invoices ---------------------------------------------------------------------------------


@pytest.fixture
def invoices(world, make):
    """An unpaid invoice, a paid one, and a cancelled one with its credit note; another
    organisation's invoice."""
    unpaid = _accept(world, world["quote"])
    paid = _accept(world, _sent(make, world))
    billing.record_payment(paid, provider=PaymentProvider.BANK_TRANSFER, provider_reference="VIR-API-1",
                           amount_cents=paid.total_ttc_cents, currency="EUR")
    cancelled = _accept(world, _sent(make, world, quantity=3))
    credit_note = billing.issue_credit_note(cancelled, actor=world["admin"], reason="Erreur de quantité")
    other = make.organisation()
    theirs_quote = _sent(make, world, org=other)
    quotes.accept(theirs_quote, actor=theirs_quote.recipient, terms_version=world["terms"],
                  channel=Channel.PORTAL)
    db.session.commit()
    return {"unpaid": unpaid, "paid": paid, "cancelled": cancelled, "credit_note": credit_note,
            "other": other}


def test_the_invoice_list_is_the_organisations_newest_first(read, world, invoices):
    page = read(f"/organisations/{world['org'].id}/invoices").get_json()
    expected = [invoices[name] for name in ("credit_note", "cancelled", "paid", "unpaid")]
    assert [invoice["id"] for invoice in page["data"]] == [invoice.id for invoice in expected]
    shown = {invoice["id"]: invoice for invoice in page["data"]}
    assert [(shown[i.id]["kind"], shown[i.id]["status"], shown[i.id]["is_payable"]) for i in expected] == [
        ("credit_note", "issued", False), ("invoice", "cancelled", False), ("invoice", "paid", False),
        ("invoice", "issued", True)]
    assert shown[invoices["credit_note"].id]["credited_invoice_id"] == invoices["cancelled"].id
    assert shown[invoices["paid"].id]["paid_at"] is not None
    assert shown[invoices["unpaid"].id]["paid_at"] is None


def test_an_invoice_shows_what_the_portal_shows(read, world, invoices):
    invoice = invoices["unpaid"]
    body = read(f"/invoices/{invoice.id}").get_json()
    assert body == {
        "object": "invoice", "id": invoice.id, "number": invoice.number, "kind": "invoice",
        "status": "issued", "organisation_id": world["org"].id, "quote_id": world["quote"].id,
        "credited_invoice_id": None, "billing_period": None,
        "issue_date": invoice.issue_date.isoformat(), "due_date": invoice.due_date.isoformat(),
        "totals": {"total_ht_cents": 20000, "total_vat_cents": 4000, "total_ttc_cents": 24000},
        "currency": "EUR", "is_payable": True, "paid_at": None,
        "portal_url": f"{BASE}/espace-client/factures/{invoice.id}",
        "pdf_url": f"{BASE}/espace-client/factures/{invoice.id}/pdf",
    }
    assert invoice.number.startswith("FA-")


@pytest.mark.parametrize("status, names", [
    ("issued", ("credit_note", "unpaid")), ("paid", ("paid",)), ("cancelled", ("cancelled",)),
])
def test_the_invoice_status_filter_narrows_the_list(read, world, invoices, status, names):
    page = read(f"/organisations/{world['org'].id}/invoices", status=status).get_json()
    assert [invoice["id"] for invoice in page["data"]] == [invoices[name].id for name in names]


def test_an_invoice_status_outside_the_enum_is_a_422(read, world):
    body = assert_problem(read(f"/organisations/{world['org'].id}/invoices", status="unpaid"),
                          422, "invalid_api_field")
    assert body["field"] == "status" and "issued, paid, cancelled" in body["detail"]


def test_an_unknown_invoice_is_a_404(read, world):
    body = assert_problem(read("/invoices/999999"), 404, "api_resource_not_found")
    assert body["detail"] == "Facture introuvable."


def test_another_organisations_invoice_is_not_listed_under_this_one(read, world, invoices):
    other = invoices["other"]
    theirs = db.session.scalar(select(Invoice).where(Invoice.organisation_id == other.id))
    mine = read(f"/organisations/{world['org'].id}/invoices").get_json()["data"]
    assert theirs.id not in [invoice["id"] for invoice in mine]
    assert [i["id"] for i in read(f"/organisations/{other.id}/invoices").get_json()["data"]] == [theirs.id]


def test_the_invoice_list_costs_the_same_for_one_invoice_or_five(client, world, make):
    headers = api_headers("quotes:read")
    url = f"{API}/organisations/{world['org'].id}/invoices"

    def queries() -> tuple[int, int]:
        db.session.expire_all()
        with count_queries() as counter:
            response = client.get(url, headers=headers)
        assert response.status_code == 200
        return counter.n, len(response.get_json()["data"])

    _accept(world, world["quote"])
    db.session.commit()
    client.get(url, headers=headers)  # the key's first call notes its use (one UPDATE), the next ones not
    few, shown = queries()
    assert shown == 1
    for _ in range(4):
        _accept(world, _sent(make, world))
    db.session.commit()
    assert queries() == (few, 5)


# --- The links work ---------------------------------------------------------------------------


def _path(url: str) -> str:
    assert url.startswith(BASE + "/")
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_the_links_open_the_quote_invoice_and_pdfs_after_single_sign_on(client, world, invoices):
    quote = world["quote"]
    shown_quote = client.get(f"{API}/quotes/{quote.id}", headers=api_headers("quotes:read")).get_json()
    shown_invoice = client.get(f"{API}/invoices/{invoices['unpaid'].id}",
                               headers=api_headers("quotes:read")).get_json()
    # Signed out, the portal asks to sign in.
    assert "/espace-client/connexion" in client.get(_path(shown_quote["portal_url"])).headers["Location"]

    session = client.post(f"{API}/sessions", json={"email": _gestionnaire(world).email},
                          headers=api_headers("sessions:write")).get_json()
    landed = client.get(_path(session["url"]))
    assert landed.status_code == 303

    page = client.get(_path(shown_quote["portal_url"]))
    assert page.status_code == 200 and quote.reference in page.get_data(as_text=True)
    pdf = client.get(_path(shown_quote["pdf_url"]))
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    invoice_page = client.get(_path(shown_invoice["portal_url"]))
    assert invoice_page.status_code == 200
    assert invoices["unpaid"].number in invoice_page.get_data(as_text=True)
    invoice_pdf = client.get(_path(shown_invoice["pdf_url"]))
    assert invoice_pdf.status_code == 200 and invoice_pdf.data.startswith(b"%PDF")


# --- Quote requests ---------------------------------------------------------------------------


@pytest.fixture
def post_request(client, world):
    headers = api_headers("requests:write")

    def post(body, *, key: str = "request-1", organisation_id: int | None = None):
        organisation_id = organisation_id or world["org"].id
        return client.post(f"{API}/organisations/{organisation_id}/quote-requests", json=body,
                           headers={**headers, "Idempotency-Key": key})

    return post


def _request_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(QuoteRequest))


def test_a_quote_request_is_created_for_the_client_user(post_request, world, make, app):
    member = world["users"][ClientRole.MEMBRE]
    first, second = make.product(name="Pack découverte"), make.product(name="Pack pro")
    db.session.commit()

    response = post_request({"email": member.email.upper(), "message": "Pour notre équipe",
                             "items": [{"product_id": first.id, "quantity": 3},
                                       {"product_id": second.id, "quantity": 1}]})
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    created = db.session.get(QuoteRequest, body["id"])
    assert body == {
        "object": "quote_request", "id": created.id, "status": "new", "organisation_id": world["org"].id,
        "requester": {"id": member.id, "email": member.email},
        "items": [{"product_id": first.id, "sku": first.sku, "name": "Pack découverte", "quantity": 3},
                  {"product_id": second.id, "sku": second.sku, "name": "Pack pro", "quantity": 1}],
        "message": "Pour notre équipe",
        "created_at": created.created_at.isoformat(timespec="seconds") + "Z",
    }
    assert (created.requester_id, created.status) == (member.id, QuoteRequestStatus.NEW)
    assert [(line.product_id, line.quantity) for line in created.lines] == [(first.id, 3), (second.id, 1)]
    # Staff are told, as for a request sent from the portal.
    notified = db.session.scalar(select(OutboxEmail).where(OutboxEmail.template == "request_received"))
    assert notified.recipient == app.config["STAFF_NOTIFICATION_EMAIL"]
    assert notified.context == {"request_id": created.id}


def test_a_request_from_the_api_is_in_the_back_office_inbox_and_the_portal(staff_client, make):
    world = staff_client.world
    member = world["users"][ClientRole.MEMBRE]
    product = make.product(name="Pack découverte")
    db.session.commit()
    response = staff_client.post(
        f"{API}/organisations/{world['org'].id}/quote-requests",
        json={"email": member.email, "items": [{"product_id": product.id, "quantity": 4}],
              "message": "Demande venue de la plateforme"},
        headers={**api_headers("requests:write"), "Idempotency-Key": "inbox-1"})
    request_id = response.get_json()["id"]

    inbox = staff_client.get("/admin/demandes/").get_data(as_text=True)
    assert f"/admin/demandes/{request_id}" in inbox and "Demande venue de la plateforme" in inbox
    detail = staff_client.get(f"/admin/demandes/{request_id}").get_data(as_text=True)
    assert "Pack découverte" in detail
    sign_in_client(staff_client, member)
    assert "Pack découverte" in staff_client.get("/espace-client/demandes").get_data(as_text=True)


def test_a_retried_request_is_answered_again_not_created_twice(post_request, world, make):
    product = make.product()
    db.session.commit()
    body = {"email": world["users"][ClientRole.MEMBRE].email,
            "items": [{"product_id": product.id, "quantity": 2}]}
    first = post_request(body, key="retry-1")
    again = post_request(body, key="retry-1")
    assert first.status_code == again.status_code == 201
    assert again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert _request_count() == 1
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)
                             .where(OutboxEmail.template == "request_received")) == 1
    # The same key for another request is refused; another key makes another request.
    changed = post_request({**body, "message": "autre"}, key="retry-1")
    assert_problem(changed, 422, "idempotency_key_reused")
    assert post_request(body, key="retry-2").status_code == 201
    assert _request_count() == 2


def test_a_request_needs_an_idempotency_key(client, world, make):
    product = make.product()
    db.session.commit()
    response = client.post(f"{API}/organisations/{world['org'].id}/quote-requests",
                           json={"email": world["users"][ClientRole.MEMBRE].email,
                                 "items": [{"product_id": product.id, "quantity": 1}]},
                           headers=api_headers("requests:write"))
    assert_problem(response, 400, "idempotency_key_missing")
    assert _request_count() == 0


@pytest.mark.parametrize("who", ["other_organisation", "inactive", "staff", "unknown"])
def test_a_requester_who_is_not_an_active_client_user_of_the_organisation_is_a_404(
        post_request, world, make, who):
    product = make.product()
    email = {
        "other_organisation": lambda: make.client_user(make.organisation()).email,
        "inactive": lambda: make.client_user(world["org"], active=False).email,
        "staff": lambda: world["admin"].email,
        "unknown": lambda: "personne@example.test",
    }[who]()
    db.session.commit()
    response = post_request({"email": email, "items": [{"product_id": product.id, "quantity": 1}]})
    body = assert_problem(response, 404, "client_user_not_found")
    assert body["email"] == email and email in body["detail"]
    assert _request_count() == 0


def test_the_domain_refuses_what_the_portal_refuses(post_request, world, make):
    email = world["users"][ClientRole.MEMBRE].email
    published, unpublished = make.product(), make.product(published=False)
    db.session.commit()
    cases = [
        ({"items": [{"product_id": unpublished.id, "quantity": 1}]}, 400, "unknown_product"),
        ({"items": [{"product_id": 999_999, "quantity": 1}]}, 400, "unknown_product"),
        ({"items": [{"product_id": str(published.id), "quantity": 1}]}, 400, "unknown_product"),
        ({"items": [{"product_id": published.id, "quantity": 0}]}, 400, "invalid_quantity"),
        ({"items": [{"product_id": published.id, "quantity": "2"}]}, 400, "invalid_quantity"),
        ({"items": [{"product_id": published.id, "quantity": 10**7}]}, 400, "quantity_out_of_range"),
        ({"items": []}, 400, "empty_request"),
    ]
    for index, (body, status, code) in enumerate(cases):
        assert_problem(post_request({"email": email, **body}, key=f"refused-{index}"), status, code)
    assert _request_count() == 0


@pytest.mark.parametrize("body, field", [
    ({"items": [{"product_id": 1, "quantity": 1}]}, "email"),
    ({"email": 12, "items": [{"product_id": 1, "quantity": 1}]}, "email"),
    ({"email": "{member}"}, "items"),
    ({"email": "{member}", "items": {"product_id": 1, "quantity": 1}}, "items"),
    ({"email": "{member}", "items": [[1, 1]]}, "items"),
    ({"email": "{member}", "items": [{"product_id": 1, "quantity": 1}] * 101}, "items"),
    ({"email": "{member}", "items": [{"product_id": 1, "quantity": 1}], "message": 12}, "message"),
    ({"email": "{member}", "items": [{"product_id": 1, "quantity": 1}], "message": "x" * 5001}, "message"),
])
def test_a_malformed_body_is_a_422_naming_the_field(post_request, world, body, field):
    member = world["users"][ClientRole.MEMBRE].email
    body = {name: (member if value == "{member}" else value) for name, value in body.items()}
    response = post_request(body)
    assert assert_problem(response, 422, "invalid_api_field")["field"] == field
    assert _request_count() == 0


def test_a_body_that_is_not_a_json_object_is_a_400(client, world):
    response = client.post(f"{API}/organisations/{world['org'].id}/quote-requests", data="[1, 2]",
                           content_type="application/json",
                           headers={**api_headers("requests:write"), "Idempotency-Key": "not-object"})
    assert_problem(response, 400, "invalid_api_body")


def test_a_request_needs_the_requests_write_scope(client, world):
    response = client.post(f"{API}/organisations/{world['org'].id}/quote-requests", json={},
                           headers={**api_headers("quotes:read"), "Idempotency-Key": "scope-1"})
    assert assert_problem(response, 403, "api_scope_missing")["scope"] == "requests:write"


def test_an_empty_message_is_no_message(post_request, world, make):
    product = make.product()
    db.session.commit()
    response = post_request({"email": world["users"][ClientRole.MEMBRE].email, "message": "",
                             "items": [{"product_id": product.id, "quantity": 1}]})
    assert response.status_code == 201 and response.get_json()["message"] == ""


def test_a_draft_appears_once_sent(read, world, make):
    draft = _draft(make, world)
    db.session.commit()
    listed = [quote["id"] for quote in read(f"/organisations/{world['org'].id}/quotes").get_json()["data"]]
    assert draft.id not in listed
    quotes.send(db.session.get(Quote, draft.id), actor=world["admin"])
    db.session.commit()
    listed = [quote["id"] for quote in read(f"/organisations/{world['org'].id}/quotes").get_json()["data"]]
    assert listed[0] == draft.id
    assert read(f"/quotes/{draft.id}").get_json()["status"] == QuoteStatus.SENT.value


def test_a_credit_note_is_an_invoice_of_kind_credit_note(read, invoices):
    body = read(f"/invoices/{invoices['credit_note'].id}").get_json()
    assert (body["kind"], body["credited_invoice_id"], body["is_payable"]) == (
        InvoiceKind.CREDIT_NOTE.value, invoices["cancelled"].id, False)
