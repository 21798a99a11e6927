"""Back office, catalogue: products (prices in euros) and CGV versions (draft, then publish: admins
only; the sales role reads them)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, Product, StaffRole, SupplyKind, TermsVersion
from portal.seller import current_terms

from .web import csrf_token, page_text, post_form, sign_in

PRODUCT = {"sku": "CRED-100", "name": "Pack 100 crédits", "description": "Cent crédits.",
           "unit_price_cents": "1 234,50", "vat_rate_bp": "2000", "credits_per_unit": "100",
           "published": "y"}


@pytest.fixture
def staff_client(client, make):
    sign_in(client, make.staff(StaffRole.ADMIN))
    return client


@pytest.fixture
def sales_client(app, client, make):
    """Another browser (not `client`), signed in with the sales role."""
    sales = app.test_client()
    sign_in(sales, make.staff(StaffRole.SALES))
    return sales


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


# --- Products ---------------------------------------------------------------------------------


def test_create_a_product_with_a_price_in_euros(staff_client):
    response = post_form(staff_client, "/admin/produits/new/", PRODUCT)
    assert response.status_code == 302
    product = db.session.scalar(select(Product).where(Product.sku == "CRED-100"))
    assert product.unit_price_cents == 123450
    assert (product.vat_rate_bp, product.credits_per_unit, product.published) == (2000, 100, True)
    assert _count(AuditEvent, AuditEvent.action == "product.created") == 1
    listing = page_text(staff_client.get("/admin/produits/"))
    assert "CRED-100" in listing and "1\u202f234,50\u00a0€" in listing and "Publié" in listing


def test_a_product_supplies_goods_or_services_proposed_from_the_sellers_category(staff_client, make):
    make.seller_settings(operation_category="goods")
    db.session.commit()
    form = staff_client.get("/admin/produits/new/").get_data(as_text=True)
    assert '<option selected value="goods">Livraison de biens</option>' in form
    post_form(staff_client, "/admin/produits/new/", {**PRODUCT, "supply_kind": "services"})
    product = db.session.scalar(select(Product).where(Product.sku == "CRED-100"))
    assert product.supply_kind == SupplyKind.SERVICES
    assert "Prestation de services" in page_text(staff_client.get("/admin/produits/"))


def test_the_vat_rate_is_a_choice_shown_in_french(staff_client):
    html = page_text(staff_client.get("/admin/produits/new/"))
    for shown in ("20\u00a0%", "5,5\u00a0%", "2,1\u00a0%", "10\u00a0%", "0\u00a0%"):
        assert shown in html
    assert "Prix unitaire HT (€)" in html


def test_edit_a_product_shows_euros_and_can_unpublish_it(staff_client, make):
    product = make.product(unit_price_cents=9990)
    db.session.commit()
    url = f"/admin/produits/edit/?id={product.id}"
    assert 'value="99,90"' in staff_client.get(url).get_data(as_text=True)
    data = {**PRODUCT, "sku": product.sku, "unit_price_cents": "120", "vat_rate_bp": "550"}
    del data["published"]
    assert post_form(staff_client, url, data).status_code == 302
    db.session.refresh(product)
    assert (product.unit_price_cents, product.vat_rate_bp, product.published) == (12000, 550, False)
    assert "Non publié" in page_text(staff_client.get("/admin/produits/"))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("unit_price_cents", "douze euros", "Montant invalide"),
    ("unit_price_cents", "-5", "Montant invalide"),
    ("unit_price_cents", "", "Indiquez le prix unitaire HT"),
    ("vat_rate_bp", "1900", "pas un choix valide"),
    ("credits_per_unit", "-1", "compris entre 0 et 1 000 000"),
    ("sku", "", "Indiquez la référence du produit"),
    ("name", "  ", "Indiquez le nom du produit"),
])
def test_bad_product_input_is_refused_in_french(staff_client, field, value, message):
    response = post_form(staff_client, "/admin/produits/new/", {**PRODUCT, field: value})
    assert response.status_code == 200
    assert message in page_text(response)
    assert _count(Product) == 0


def test_a_duplicate_sku_is_refused_in_french(staff_client, make):
    make.product(sku="CRED-100")
    db.session.commit()
    response = post_form(staff_client, "/admin/produits/new/", PRODUCT)
    assert response.status_code == 200
    assert "La référence CRED-100 est déjà utilisée par un autre produit." in page_text(response)
    assert _count(Product) == 1


def test_products_cannot_be_deleted(staff_client, make):
    product = make.product()
    db.session.commit()
    token = csrf_token(staff_client, "/admin/produits/")
    staff_client.post("/admin/produits/delete/", data={"csrf_token": token, "id": product.id})
    assert db.session.get(Product, product.id) is not None


def test_a_bad_product_id_is_not_a_server_error(staff_client):
    for url in ("/admin/produits/edit/?id=abc", "/admin/produits/details/?id=abc"):
        assert staff_client.get(url).status_code == 302


# --- CGV --------------------------------------------------------------------------------------


def test_write_then_publish_a_cgv_version(staff_client):
    response = post_form(staff_client, "/admin/cgv/new/",
                         {"version_label": "2026-01", "body": "Article 1 : objet."})
    assert response.status_code == 302
    terms = db.session.scalar(select(TermsVersion))
    assert terms.published_at is None and current_terms() is None
    assert "Brouillon" in page_text(staff_client.get("/admin/cgv/"))

    confirm_page = page_text(staff_client.get(f"/admin/cgv/{terms.id}/publier"))
    assert "Article 1 : objet." in confirm_page and "ne pourra plus être modifié" in confirm_page
    response = post_form(staff_client, f"/admin/cgv/{terms.id}/publier", {"confirm": "y"})
    assert response.status_code == 302
    db.session.expire_all()
    assert current_terms().id == terms.id and terms.sha256
    assert "En vigueur" in page_text(staff_client.get("/admin/cgv/"))


def test_publishing_needs_the_confirmation(staff_client, make):
    terms = make.terms(publish=False)
    db.session.commit()
    response = post_form(staff_client, f"/admin/cgv/{terms.id}/publier", {})
    assert response.status_code == 200
    assert "Cochez la case de confirmation pour publier les CGV." in page_text(response)
    db.session.expire_all()
    assert db.session.get(TermsVersion, terms.id).published_at is None


def test_publishing_an_empty_body_is_refused_in_french(staff_client, make):
    terms = make.terms(publish=False, body="   ")
    db.session.commit()
    response = post_form(staff_client, f"/admin/cgv/{terms.id}/publier", {"confirm": "y"})
    assert response.status_code == 200
    assert "Le texte des Conditions Générales de Vente ne peut pas être vide." in page_text(response)
    db.session.expire_all()
    assert db.session.get(TermsVersion, terms.id).published_at is None
    assert _count(AuditEvent, AuditEvent.action == "terms.published") == 0


def test_a_published_version_is_read_only(staff_client, make):
    old = make.terms()
    current = make.terms()
    db.session.commit()
    listing = page_text(staff_client.get("/admin/cgv/"))
    assert "En vigueur" in listing and "Publiée, remplacée" in listing
    assert f"/admin/cgv/edit/?id={current.id}" not in listing
    assert f"/admin/cgv/{current.id}/publier" not in listing
    response = staff_client.get(f"/admin/cgv/edit/?id={old.id}", follow_redirects=True)
    assert "ne peut plus être modifiée" in page_text(response)
    body = old.body
    response = post_form(staff_client, f"/admin/cgv/edit/?id={old.id}",
                         {"version_label": old.version_label, "body": "Autre texte"},
                         form_url="/admin/cgv/", follow_redirects=True)
    assert "ne peut plus être modifiée" in page_text(response)
    db.session.expire_all()
    assert db.session.get(TermsVersion, old.id).body == body
    response = post_form(staff_client, f"/admin/cgv/{old.id}/publier", {"confirm": "y"},
                         form_url="/admin/cgv/")
    assert response.status_code == 200 and "déjà publiée" in page_text(response)


def test_the_sales_role_reads_the_cgv_but_cannot_write_edit_or_publish_them(sales_client, staff_client,
                                                                              make):
    current = make.terms(body="Article 1 : en vigueur.")
    draft = make.terms(publish=False, version_label="2027-01", body="Article 1 : projet.")
    db.session.commit()
    listing = page_text(sales_client.get("/admin/cgv/"))
    assert "En vigueur" in listing and "Brouillon" in listing
    assert "/admin/cgv/new/" not in listing and f"/admin/cgv/{draft.id}/publier" not in listing
    assert f"/admin/cgv/edit/?id={draft.id}" not in listing
    details = page_text(sales_client.get(f"/admin/cgv/details/?id={draft.id}"))
    assert "Article 1 : projet." in details and "Publier cette version" not in details
    assert "Modifier le brouillon" not in details
    assert "Article 1 : en vigueur." in page_text(sales_client.get(f"/admin/cgv/details/?id={current.id}"))
    token = csrf_token(sales_client, "/admin/cgv/")
    refused = {
        "GET new": sales_client.get("/admin/cgv/new/"),
        "POST new": sales_client.post("/admin/cgv/new/", data={
            "csrf_token": token, "version_label": "2027-02", "body": "Autre"}),
        "GET edit": sales_client.get(f"/admin/cgv/edit/?id={draft.id}"),
        "POST edit": sales_client.post(f"/admin/cgv/edit/?id={draft.id}", data={
            "csrf_token": token, "version_label": "2027-01", "body": "Changé"}),
        "GET publish": sales_client.get(f"/admin/cgv/{draft.id}/publier"),
        "POST publish": sales_client.post(f"/admin/cgv/{draft.id}/publier", data={
            "csrf_token": token, "confirm": "y"}),
    }
    assert {name: response.status_code for name, response in refused.items()} == dict.fromkeys(refused, 403)
    db.session.expire_all()
    assert _count(TermsVersion) == 2 and current_terms().id == current.id
    assert db.session.get(TermsVersion, draft.id).body == "Article 1 : projet."
    # The admin still sees every action.
    admin_listing = page_text(staff_client.get("/admin/cgv/"))
    assert "/admin/cgv/new/" in admin_listing and f"/admin/cgv/{draft.id}/publier" in admin_listing


def test_a_draft_can_be_edited_but_not_given_a_taken_label(staff_client, make):
    make.terms(version_label="2025-01")
    draft = make.terms(publish=False, version_label="2026-01", body="")
    db.session.commit()
    url = f"/admin/cgv/edit/?id={draft.id}"
    assert post_form(staff_client, url, {"version_label": "2026-01", "body": "Texte"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(TermsVersion, draft.id).body == "Texte"
    response = post_form(staff_client, url, {"version_label": "2025-01", "body": "Texte"})
    assert "La version « 2025-01 » existe déjà" in page_text(response)


# --- Lists -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/admin/produits/", "/admin/cgv/"])
@pytest.mark.parametrize("query", ["page=-1", "page=99999999999999999999", "page=abc", "sort=99"])
def test_bad_list_arguments_are_not_a_server_error(staff_client, url, query):
    assert staff_client.get(f"{url}?{query}").status_code == 200
