"""`Cache-Control: no-store` on every page and PDF, generated over the whole URL map: each GET rule
is requested signed in (staff for /admin, a client responsable for the portal), its `<int:…>`
arguments filled with ids of a real world that user may see. A new page is requested as soon as
it has a rule: it cannot ship without the header."""

from __future__ import annotations

import pytest
from flask import url_for
from sqlalchemy import select

from portal import api_keys, quote_requests, quotes
from portal.extensions import db
from portal.models import AuditEvent, Channel, ClientRole, Invoice, OutboxEmail
from portal.quotes import LineInput

from .web import sign_in, sign_in_client

STATIC_ENDPOINTS = {"static", "admin.static", "client.static"}  # files, cacheable by design
# Rules that do not answer 200 to a signed-in GET, and why. Every other rule must reach a 200.
NOT_200 = {
    "client.home": "redirects to the quote list, the portal's home",
    "organisation.index": "redirects to the organisations' list",
    "quote_editor.index": "redirects to the organisations' list (a quote is made from its client)",
    "client.invoice_payment_return": "back from Stripe without a PaymentIntent: back to the invoice",
    "client.platform_sign_in": "an unknown single sign-on link: to the sign-in page",
    "organisation.adjust_credits": "the adjustment's form is on the Crédits tab: a GET goes back there",
}
# Flask-Admin registers these pages on every model view; a view switching one off answers a
# redirect to its list (ajax_lookup: a 404 without form_ajax_refs).
MODEL_VIEW_PAGES = {"create_view": "can_create", "edit_view": "can_edit", "export": "can_export",
                    "details_view": "can_view_details",
                    "ajax_lookup": "form_ajax_refs"}


def switched_off(app) -> dict[str, str]:
    """Flask-Admin's generic pages each model view switches off, with the setting that does."""
    off = {}
    for admin in app.extensions["admin"]:
        for view in admin._views:
            for page, setting in MODEL_VIEW_PAGES.items():
                if hasattr(view, setting) and not getattr(view, setting):
                    off[f"{view.endpoint}.{page}"] = f"{setting} is off"
    return off


@pytest.fixture
def reachable(make):
    """A world where every page has something to show: a sent quote (mandate given), a draft, an
    accepted quote with its invoice, a quote request, an unpublished CGV, an email."""
    world = make.world(mandate=True)
    admin, org, users = world["admin"], world["org"], world["users"]
    manager = users[ClientRole.GESTIONNAIRE]
    product = make.product()
    draft = quotes.create_draft(organisation=org, actor=admin, recipient=manager,
                                lines=[LineInput(product_id=product.id, quantity=1)])
    accepted = make.sent_quote(org, actor=admin, recipient=manager)
    quotes.accept(accepted, actor=manager, terms_version=world["terms"], channel=Channel.PORTAL)
    request = quote_requests.create_request(organisation=org, requester=manager, items=[(product.id, 2)])
    unpublished = make.terms(actor=admin, publish=False)
    invoice = db.session.scalars(select(Invoice)).one()
    email = db.session.scalars(select(OutboxEmail)).first()
    event = db.session.scalars(select(AuditEvent)).first()
    org.external_id = "plateforme-1"
    api_key, secret = api_keys.create_key("plateforme", api_keys.SCOPES, actor=admin)
    endpoint = make.webhook_endpoint()
    db.session.commit()
    path = {"quote_id": world["quote"].id, "invoice_id": invoice.id, "organisation_id": org.id,
            "request_id": request.id, "email_id": email.id, "terms_id": unpublished.id,
            "tab": "devis", "export_type": "csv", "token": "jeton-inconnu",
            "external_id": org.external_id, "siren": org.siren}
    overrides = {"quote_editor.send": {"quote_id": draft.id},
                 "client.quote_confirmation": {"quote_id": accepted.id}}
    # Flask-Admin's record pages take the record in the query string (other views: their first row).
    records = {"terms": unpublished.id, "emails": email.id, "invoices": invoice.id,
               "audit": event.id, "organisations": org.id, "products": product.id,
               "client_users": users[ClientRole.RESPONSABLE].id, "staff_users": admin.id,
               "api_keys": api_key.id, "webhook_endpoints": endpoint.id}
    return {"world": world, "path": path, "overrides": overrides, "records": records,
            "api_headers": {"Authorization": f"Bearer {secret}"}}


def _url(app, rule, reachable) -> str:
    values = {name: reachable["overrides"].get(rule.endpoint, {}).get(name, reachable["path"].get(name))
              for name in rule.arguments}
    missing = [name for name, value in values.items() if value is None]
    assert not missing, f"{rule.rule}: give the argument {missing} a value of the world"
    view, _, action = rule.endpoint.partition(".")
    if action in ("details_view", "edit_view", "revoke", "rotate", "resend_failed"):
        values["id"] = reachable["records"].get(view) or _first_record(app, view)
    with app.test_request_context():
        return url_for(rule.endpoint, **values)


def _first_record(app, endpoint: str) -> int | None:
    """The id of the first row of a model view without a record chosen above (a new view)."""
    for admin in app.extensions["admin"]:
        for view in admin._views:
            if view.endpoint == endpoint:
                return db.session.scalar(select(view.model.id).order_by(view.model.id).limit(1))
    return None


def _get_rules(app):
    return sorted((rule for rule in app.url_map.iter_rules()
                   if "GET" in rule.methods and rule.endpoint not in STATIC_ENDPOINTS),
                  key=lambda rule: rule.rule)


def test_every_page_and_pdf_of_the_admin_and_the_portal_is_no_store(app, new_client, reachable):
    world = reachable["world"]
    staff, client, anonymous = new_client(), new_client(), new_client()
    sign_in(staff, world["admin"])
    sign_in_client(client, world["users"][ClientRole.RESPONSABLE])
    missing_header, not_200 = [], {}
    for rule in _get_rules(app):
        browser = (staff if rule.rule.startswith("/admin/") else
                   client if rule.rule.startswith("/espace-client/") else anonymous)
        url = _url(app, rule, reachable)
        headers = reachable["api_headers"] if rule.rule.startswith("/api/") else {}
        response = browser.get(url, headers=headers)
        if "no-store" not in response.headers.get("Cache-Control", ""):
            missing_header.append((url, response.status_code, response.headers.get("Cache-Control")))
        if response.status_code != 200:
            not_200[rule.endpoint] = (url, response.status_code)
    assert not missing_header, missing_header
    for url in ("/static/portal.css", "/admin/static/admin/js/helpers.js"):  # the one exception
        with anonymous.get(url) as response:
            assert response.status_code == 200, url
            assert "no-store" not in response.headers.get("Cache-Control", ""), url
    # Each rule not reached with a 200 is listed above with its reason; nothing else may hide.
    expected = NOT_200 | switched_off(app)
    assert set(not_200) == set(expected), {
        "unexpected": {name: not_200[name] for name in set(not_200) - set(expected)},
        "now reached, remove from NOT_200": sorted(set(expected) - set(not_200)),
    }


def test_the_pdfs_are_no_store(app, new_client, reachable):
    """The downloads too (send_file's own `no-cache` is replaced)."""
    world = reachable["world"]
    staff, client = new_client(), new_client()
    sign_in(staff, world["admin"])
    sign_in_client(client, world["users"][ClientRole.RESPONSABLE])
    path = reachable["path"]
    for browser, url in ((client, f"/espace-client/devis/{path['quote_id']}/pdf"),
                         (client, f"/espace-client/factures/{path['invoice_id']}/pdf"),
                         (staff, f"/admin/devis/{path['quote_id']}/pdf"),
                         (staff, f"/admin/factures/{path['invoice_id']}/pdf")):
        response = browser.get(url)
        assert response.status_code == 200 and response.mimetype == "application/pdf", url
        assert response.headers.get("Cache-Control") == "no-store", url
