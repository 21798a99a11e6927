"""Stored and reflected XSS: a payload typed in every user text field (see USER_TEXT_FIELDS) is
shown as text in every portal and back-office page, in every email, and printed literally in the
quote and invoice PDFs."""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from portal import documents
from portal.delivery.emails import render
from portal.extensions import db
from portal.models import ClientRole, Invoice, Quote

from .test_security_access import area, parameter_values, routes, urls
from .test_security_world import PAYLOAD, build_world
from .web import sign_in_client

# Reflected too: every page is asked with the payload in the query parameters views read.
REFLECTED = {name: PAYLOAD for name in ("q", "search", "next", "url", "periode", "organisation", "avant",
                                        "sort", "page")}


class Injection(HTMLParser):
    """Elements or attributes the payload would create if it were not escaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "img" and (values.get("src") == "x" or "onerror" in values):
            self.found.append(f"<img {attrs}>")
        self.found += [f"<{tag} {name}={value!r}>" for name, value in attrs
                       if name.startswith("on") and "alert(1)" in (value or "")]
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and "alert(1)" in data:
            self.found.append(f"<script>{data}</script>")
        self.text.append(data)


def assert_escaped(page: str, where: str) -> str:
    """Fail if the payload became markup; return the page's text (entities decoded)."""
    assert "<script>alert(1)</script>" not in page, where
    assert "<img src=x onerror=alert(1)>" not in page, where
    parser = Injection()
    parser.feed(page)
    assert not parser.found, (where, parser.found)
    return "".join(parser.text)


@pytest.fixture
def world(make):
    return build_world(PAYLOAD)


def _model_view_urls(app) -> list[str]:
    """Flask-Admin details and edit pages of a few rows of every model view."""
    found = []
    for admin in app.extensions["admin"]:
        for view in admin._views:
            model = getattr(view, "model", None)
            if model is None:
                continue
            ids = db.session.scalars(select(model.id).order_by(model.id)).all()
            for object_id in ids[:3] + ids[-3:]:
                found += [f"{view.url}/details/?id={object_id}", f"{view.url}/edit/?id={object_id}"]
    return found


def _get_everything(app, client, world, visitor: str):
    """(url, response) for every GET page `visitor` may see, with the payload reflected."""
    if visitor == "staff":
        sign_in_client(client, world.admin)
    else:
        sign_in_client(client, world.mine.users[ClientRole(visitor)])
    wanted = "admin" if visitor == "staff" else "portal"
    values = parameter_values(world, world.mine)
    for rule in routes(app):
        if "GET" in rule.methods and area(app, rule) in (wanted, "public"):
            for url in urls(rule, values):
                yield url, client.get(url)
                yield url + "?reflected", client.get(url, query_string=REFLECTED)
    if visitor == "staff":
        for url in _model_view_urls(app):
            yield url, client.get(url)


@pytest.mark.parametrize("visitor", ["staff", "responsable", "membre"])
def test_every_page_shows_the_payload_as_text(app, client, world, visitor):
    shown = 0
    for url, response in _get_everything(app, client, world, visitor):
        assert response.status_code < 500, (url, response.status_code)
        if response.mimetype == "application/json":
            json.loads(response.get_data(as_text=True))  # data, never markup: admin.js uses textContent
            continue
        if response.mimetype != "text/html":
            continue
        text = assert_escaped(response.get_data(as_text=True), url)
        shown += PAYLOAD in text
    assert shown >= (40 if visitor == "staff" else 10), shown


def test_the_pages_that_show_typed_text_show_it_whole(client, world):
    sign_in_client(client, world.mine.users[ClientRole.RESPONSABLE])
    for url, expected in [(f"/espace-client/devis/{world.mine.refused.id}", 3),  # title, line, reason
                          ("/espace-client/demandes", 3)]:                       # messages, reason
        text = assert_escaped(client.get(url).get_data(as_text=True), url)
        assert text.count(PAYLOAD) >= expected, (url, text.count(PAYLOAD))
    sign_in_client(client, world.admin)
    mine = world.mine
    for url in (f"/admin/organisation/{mine.org.id}/", f"/admin/demandes/{mine.declined_request.id}",
                f"/admin/devis/{mine.refused.id}", f"/admin/factures/details/?id={mine.credit_note.id}"):
        text = assert_escaped(client.get(url).get_data(as_text=True), url)
        assert PAYLOAD in text, url


def test_every_email_shows_the_payload_as_text(app, world):
    assert len(world.emails) >= 20
    templates = set()
    with app.test_request_context("/"):
        for email in world.emails:
            rendered = render(email)
            where = f"{email.template} #{email.id}"
            html_text = assert_escaped(rendered.html, where)
            # Plain text and subject are not HTML: the payload is there as typed, never as entities.
            for part in (rendered.text, rendered.subject):
                assert not re.search(r"&(lt|gt|quot|#3[49]|amp);", part), (where, part[:200])
            assert PAYLOAD in rendered.text and PAYLOAD in html_text, where
            templates.add(email.template)
    assert len(templates) >= 9, templates


def _pdf_text(data: bytes) -> str:
    return re.sub(r"\s+", "", "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages))


def test_the_pdfs_print_the_payload_literally(world):
    expected = re.sub(r"\s+", "", PAYLOAD)
    quotes = db.session.scalars(select(Quote).where(Quote.organisation_id == world.mine.org.id,
                                                    Quote.number.is_not(None))).all()
    invoices = db.session.scalars(select(Invoice).where(Invoice.organisation_id.in_(
        [world.mine.org.id, world.monthly_org.id]))).all()
    assert len(quotes) >= 5 and len(invoices) >= 4
    for quote in quotes:
        text = _pdf_text(documents.quote_pdf(quote))
        assert text.count(expected) >= 3, (quote.reference, text[:500])  # buyer, title, line label
        assert "&lt;" not in text and "&quot;" not in text
    for invoice in invoices:
        text = _pdf_text(documents.invoice_pdf(invoice))
        assert text.count(expected) >= 2, (invoice.number, text[:500])  # seller and buyer at least
        assert "&lt;" not in text and "&quot;" not in text
        xml = documents.facturx_xml(invoice).decode()
        assert "<script>" not in xml and "&lt;script&gt;" in xml
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Invoice).where(Invoice.pdf.is_not(None))) >= 4
