"""Quote PDFs rendered once for each state of the document and stored (QuoteDocument), drafts
rendered live; and the per-user rate limit of every PDF download, portal and back office."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func, select

from portal import documents, quotes
from portal.extensions import db, limiter
from portal.models import Channel, ClientRole, Invoice, Quote, QuoteDocument, StaffRole
from portal.quotes import LineInput

from .test_documents import pdf_text
from .web import sign_in, sign_in_client

P = "/espace-client"


@pytest.fixture
def world(make):
    world = make.world()
    db.session.commit()
    return world


@pytest.fixture
def renders(monkeypatch):
    """The HTML of each PDF WeasyPrint renders (documents.html_to_pdf), in order."""
    rendered = []
    render = documents.html_to_pdf

    def counted(html, **kwargs):
        rendered.append(html)
        return render(html, **kwargs)

    monkeypatch.setattr(documents, "html_to_pdf", counted)
    return rendered


def stored_documents(quote_id: int) -> list[QuoteDocument]:
    return list(db.session.scalars(select(QuoteDocument).where(QuoteDocument.quote_id == quote_id)
                                   .order_by(QuoteDocument.id)))


def _signed_in_client(new_client, user):
    browser = new_client()
    sign_in_client(browser, user)
    return browser


# --- Rendered once, stored ----------------------------------------------------------------------


def test_the_same_quote_pdf_downloaded_twice_renders_once_and_is_byte_identical(new_client, world,
                                                                                   renders):
    browser = _signed_in_client(new_client, world["users"][ClientRole.GESTIONNAIRE])
    url = f"{P}/devis/{world['quote'].id}/pdf"
    first, second = browser.get(url), browser.get(url)
    assert first.status_code == second.status_code == 200
    assert first.data.startswith(b"%PDF") and first.data == second.data
    assert len(renders) == 1
    [stored] = stored_documents(world["quote"].id)
    assert stored.pdf == first.data and stored.pdf_sha256 == hashlib.sha256(first.data).hexdigest()


def test_after_acceptance_the_pdf_shows_the_new_status_from_a_new_stored_document(new_client, world,
                                                                                    renders):
    quote, manager = world["quote"], world["users"][ClientRole.GESTIONNAIRE]
    browser = _signed_in_client(new_client, manager)
    url = f"{P}/devis/{quote.id}/pdf"
    pending = browser.get(url).data
    assert "En attente de décision" in pdf_text(pending)

    quotes.accept(quote, actor=manager, terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    accepted = browser.get(url).data
    text = pdf_text(accepted)
    assert "Statut Accepté le" in text and "En attente de décision" not in text
    assert [document.pdf for document in stored_documents(quote.id)] == [pending, accepted]
    assert browser.get(url).data == accepted and len(renders) == 2  # the accepted one, stored


def test_a_new_cgv_published_changes_a_sent_quotes_document(new_client, make, world, renders):
    quote = world["quote"]
    browser = _signed_in_client(new_client, world["users"][ClientRole.GESTIONNAIRE])
    url = f"{P}/devis/{quote.id}/pdf"
    before = pdf_text(browser.get(url).data)
    assert f"version {world['terms'].version_label}" in before

    make.terms(actor=world["admin"], version_label="2027-01")
    db.session.commit()
    after = pdf_text(browser.get(url).data)
    assert "version 2027-01" in after and f"version {world['terms'].version_label} " not in after
    assert len(stored_documents(quote.id)) == 2 and len(renders) == 2


def test_the_back_office_and_the_portal_serve_the_same_stored_document(staff_client, new_client,
                                                                       renders):
    world = staff_client.world
    from_staff = staff_client.get(f"/admin/devis/{world['quote'].id}/pdf")
    browser = _signed_in_client(new_client, world["users"][ClientRole.MEMBRE])
    from_client = browser.get(f"{P}/devis/{world['quote'].id}/pdf")
    assert from_staff.status_code == from_client.status_code == 200
    assert from_staff.data == from_client.data and len(renders) == 1


def test_a_drafts_preview_is_rendered_at_each_download_and_never_stored(staff_client, make, renders):
    world = staff_client.world
    draft = quotes.create_draft(organisation=world["org"], actor=world["admin"],
                                recipient=world["users"][ClientRole.GESTIONNAIRE],
                                lines=[LineInput(product_id=make.product().id, quantity=1)])
    db.session.commit()
    for _download in range(2):
        response = staff_client.get(f"/admin/devis/{draft.id}/pdf")
        assert response.status_code == 200 and "Brouillon" in pdf_text(response.data)
    assert len(renders) == 2
    assert db.session.scalar(select(func.count()).select_from(QuoteDocument)) == 0


def test_two_first_downloads_at_once_store_one_document_and_both_serve_it(app, world, monkeypatch):
    """The other download stores its PDF while ours renders: ours is dropped, both serve theirs."""
    quote_id = world["quote"].id
    render = documents.html_to_pdf
    theirs: list[bytes] = []

    def render_while_another_download_stores(html, **kwargs):
        ours = render(html, **kwargs)
        if not theirs:
            theirs.append(b"")
            with app.app_context():  # another request: its own session and transaction
                theirs[0] = documents.stored_quote_pdf(db.session.get(Quote, quote_id))
                db.session.commit()
        return ours

    monkeypatch.setattr(documents, "html_to_pdf", render_while_another_download_stores)
    served = documents.stored_quote_pdf(world["quote"])
    db.session.commit()
    assert served == theirs[0]
    assert [document.pdf for document in stored_documents(quote_id)] == [served]


# --- One PDF budget per user --------------------------------------------------------------------


@pytest.fixture
def pdf_limit_on(app, monkeypatch):
    """Rate limits switched on, PDFs at 3 a minute, with empty counters (and emptied after)."""
    monkeypatch.setitem(app.config, "RATE_LIMITS_ENABLED", True)
    monkeypatch.setitem(app.config, "RATELIMIT_PDF", "3 per minute")
    limiter.reset()
    yield
    limiter.reset()


@pytest.fixture
def invoiced(make):
    """A world whose second quote is accepted, per order: an invoice to download too."""
    world = make.world()
    manager = world["users"][ClientRole.GESTIONNAIRE]
    accepted = make.sent_quote(world["org"], actor=world["admin"], recipient=manager)
    quotes.accept(accepted, actor=manager, terms_version=world["terms"], channel=Channel.PORTAL)
    world["invoice"] = db.session.scalars(select(Invoice)).one()
    world["other_admin"] = make.staff(StaffRole.ADMIN)
    db.session.commit()
    return world


def _browsers(new_client, world, side: str):
    """Two signed-in browsers of two users of the same kind (both from 127.0.0.1)."""
    browsers = [new_client(), new_client()]
    if side == "admin":
        for browser, user in zip(browsers, (world["admin"], world["other_admin"]), strict=True):
            sign_in(browser, user)
    else:
        for browser, role in zip(browsers, (ClientRole.GESTIONNAIRE, ClientRole.RESPONSABLE),
                                 strict=True):
            sign_in_client(browser, world["users"][role])
    return browsers


PDF_ROUTES = [
    ("portal", "/espace-client/devis/{quote}/pdf"),
    ("portal", "/espace-client/factures/{invoice}/pdf"),
    ("admin", "/admin/devis/{quote}/pdf"),
    ("admin", "/admin/factures/{invoice}/pdf"),
]


@pytest.mark.parametrize(("side", "route"), PDF_ROUTES, ids=[route for _side, route in PDF_ROUTES])
def test_the_pdf_limit_answers_429_past_its_count_for_one_user_while_another_is_unaffected(
        new_client, invoiced, pdf_limit_on, side, route):
    url = route.format(quote=invoiced["quote"].id, invoice=invoiced["invoice"].id)
    greedy, other = _browsers(new_client, invoiced, side)
    for _download in range(3):
        assert greedy.get(url).status_code == 200
    refused = greedy.get(url)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert other.get(url).status_code == 200  # same IP, another user: a budget of their own


def test_a_users_pdf_budget_is_shared_by_every_pdf_route(new_client, invoiced, pdf_limit_on):
    greedy, _other = _browsers(new_client, invoiced, "portal")
    for _download in range(3):
        assert greedy.get(f"{P}/devis/{invoiced['quote'].id}/pdf").status_code == 200
    assert greedy.get(f"{P}/factures/{invoiced['invoice'].id}/pdf").status_code == 429
    assert greedy.get(f"{P}/devis/{invoiced['quote'].id}").status_code == 200  # pages are not limited
