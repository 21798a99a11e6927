"""A paid invoice's download: a new rendering « Acquittée le … — réglée par … » with nothing left to
pay (its Factur-X XML too), beside the frozen original, whose bytes and hash never change."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest
from sqlalchemy import select

from portal import billing, documents, quotes
from portal.extensions import db
from portal.models import Channel, ClientRole, Invoice, InvoiceDocument, PaymentProvider

from .test_documents import (
    NS,
    amount,
    assert_mentions,
    assert_pdfa3_facturx,
    assert_valid_xsd,
    bank_mentions,
    cents,
    common_invoice_mentions,
    embedded_xml,
    one,
    pdf_text,
)
from .web import sign_in, sign_in_client

P = "/espace-client"
# 22:30 UTC on 12 May is 00:30 on 13 May in Paris: the mention gives the Paris date.
PAID_AT = datetime(2026, 5, 12, 22, 30)
MEANS = {PaymentProvider.STRIPE: "carte", PaymentProvider.BANK_TRANSFER: "virement"}
TOTALS = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation"


@pytest.fixture
def invoiced(make):
    """A per-order quote accepted in the portal: an issued, unpaid invoice."""
    world = make.world()
    world["org"].vat_number = "FR44000000001"
    manager = world["users"][ClientRole.GESTIONNAIRE]
    quotes.accept(world["quote"], actor=manager, terms_version=world["terms"], channel=Channel.PORTAL,
                  now=datetime(2026, 5, 4, 9))
    db.session.commit()
    world["invoice"] = db.session.scalars(select(Invoice)).one()
    return world


def pay(world, provider: PaymentProvider) -> Invoice:
    invoice = world["invoice"]
    actor = world["admin"] if provider == PaymentProvider.BANK_TRANSFER else None
    billing.record_payment(invoice, provider=provider, provider_reference=f"{provider.value}-1",
                           amount_cents=invoice.total_ttc_cents, currency="EUR", actor=actor, now=PAID_AT)
    db.session.commit()
    return invoice


def download(new_client, world, side: str, path: str = "pdf"):
    """A signed-in download of the world's invoice, from the portal or the back office."""
    browser = new_client()
    if side == "portal":
        sign_in_client(browser, world["users"][ClientRole.GESTIONNAIRE])
        response = browser.get(f"{P}/factures/{world['invoice'].id}/{path}")
    else:
        sign_in(browser, world["admin"])
        response = browser.get(f"/admin/factures/{world['invoice'].id}/{path}")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    return response


def filename(response) -> str:
    return response.headers["Content-Disposition"].split("filename=")[1].strip('"')


def stored_original(invoice_id: int) -> tuple[bytes, str]:
    db.session.expire_all()
    invoice = db.session.get(Invoice, invoice_id)
    return invoice.pdf, invoice.pdf_sha256


# --- The paid rendering -----------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "side"), [(PaymentProvider.STRIPE, "portal"),
                                                (PaymentProvider.BANK_TRANSFER, "admin")])
def test_a_paid_invoice_downloads_acquittee_with_its_date_and_means_and_no_balance(
        new_client, invoiced, provider, side):
    invoice = pay(invoiced, provider)
    response = download(new_client, invoiced, side)
    text = pdf_text(response.data)

    assert f"Acquittée le 13/05/2026 — réglée par {MEANS[provider]}" in text
    assert f"Total TTC {amount(invoice.total_ttc_cents)}" in text
    assert "Net à payer" not in text
    assert "Référence de paiement à indiquer" not in text and "IBAN" not in text  # nothing to pay
    # Still the invoice, with every mandatory mention.
    assert_mentions(text, [*common_invoice_mentions(invoice), "FACTURE", f"Facture n° {invoice.number}"])
    assert filename(response) == f"{invoice.number}-acquittee.pdf"
    assert_pdfa3_facturx(response.data)


def test_the_paid_rendering_is_stored_at_its_first_download_and_served_from_then_on(new_client, invoiced):
    pay(invoiced, PaymentProvider.STRIPE)
    portal = download(new_client, invoiced, "portal").data
    admin = download(new_client, invoiced, "admin").data
    assert portal == admin  # the same bytes: the stored rendering, not a second one
    db.session.expire_all()
    [stored] = db.session.scalars(select(InvoiceDocument)
                                  .where(InvoiceDocument.invoice_id == invoiced["invoice"].id)).all()
    assert (stored.state_key, stored.pdf) == (documents.PAID_STATE, portal)
    assert stored.pdf_sha256 == hashlib.sha256(portal).hexdigest()


# --- The original, kept -----------------------------------------------------------------------


def test_paying_keeps_the_original_bytes_and_hash_and_staff_still_download_them(new_client, invoiced):
    before = download(new_client, invoiced, "portal").data  # stored at this first download
    original, sha256 = stored_original(invoiced["invoice"].id)
    assert before == original and sha256 == hashlib.sha256(original).hexdigest()

    pay(invoiced, PaymentProvider.STRIPE)
    paid = download(new_client, invoiced, "portal").data
    assert paid != original
    assert stored_original(invoiced["invoice"].id) == (original, sha256)

    kept = download(new_client, invoiced, "admin", "pdf/origine")
    assert kept.data == original
    assert filename(kept) == f"{invoiced['invoice'].number}.pdf"
    assert "Acquittée" not in pdf_text(kept.data)


def test_a_first_download_after_payment_stores_the_original_as_issued(new_client, invoiced):
    invoice = pay(invoiced, PaymentProvider.BANK_TRANSFER)
    assert invoice.pdf is None  # never downloaded nor emailed before payment
    download(new_client, invoiced, "portal")
    original, sha256 = stored_original(invoice.id)
    assert sha256 == hashlib.sha256(original).hexdigest()
    text = pdf_text(original)
    assert f"Net à payer TTC {amount(invoice.total_ttc_cents)}" in text
    assert_mentions(text, bank_mentions(invoice))
    assert "Acquittée" not in text


def test_the_back_office_links_the_original_of_a_paid_invoice_only(staff_client, make):
    world = staff_client.world
    manager = world["users"][ClientRole.GESTIONNAIRE]
    quotes.accept(world["quote"], actor=manager, terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    world["invoice"] = invoice = db.session.scalars(select(Invoice)).one()
    details = f"/admin/factures/details/?id={invoice.id}"
    original_link = f"/admin/factures/{invoice.id}/pdf/origine"
    assert original_link not in staff_client.get(details).get_data(as_text=True)
    pay(world, PaymentProvider.STRIPE)
    page = staff_client.get(details).get_data(as_text=True)
    assert original_link in page and "PDF d’origine" in page


# --- An unpaid invoice, unchanged -------------------------------------------------------------


@pytest.mark.parametrize("side", ["portal", "admin"])
def test_an_unpaid_invoices_download_is_its_stored_original(new_client, invoiced, side):
    response = download(new_client, invoiced, side)
    original, sha256 = stored_original(invoiced["invoice"].id)
    assert response.data == original and hashlib.sha256(response.data).hexdigest() == sha256
    assert download(new_client, invoiced, side).data == original  # and again, byte for byte
    text = pdf_text(response.data)
    invoice = invoiced["invoice"]
    assert f"Net à payer TTC {amount(invoice.total_ttc_cents)}" in text
    assert "Acquittée" not in text
    assert filename(response) == f"{invoice.number}.pdf"


def test_the_original_xml_is_the_same_before_and_after_payment(invoiced):
    invoice = invoiced["invoice"]
    before = documents.build_facturx_xml(invoice)
    pay(invoiced, PaymentProvider.STRIPE)
    assert documents.build_facturx_xml(invoice) == before
    assert embedded_xml(documents.invoice_pdf(invoice)) == before


# --- The paid rendering's Factur-X ------------------------------------------------------------


def test_a_card_paid_renderings_xml_is_valid_paid_in_full_by_card(invoiced):
    invoice = pay(invoiced, PaymentProvider.STRIPE)
    root = assert_valid_xsd(embedded_xml(documents.paid_invoice_pdf(invoice)))

    assert one(root, "//rsm:ExchangedDocument/ram:ID") == invoice.number
    assert cents(root, f"{TOTALS}/ram:GrandTotalAmount") == invoice.total_ttc_cents
    # BR-CO-16: due = grand total - paid.
    assert cents(root, f"{TOTALS}/ram:TotalPrepaidAmount") == invoice.total_ttc_cents
    assert cents(root, f"{TOTALS}/ram:DuePayableAmount") == 0
    assert one(root, "//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == "48"  # bank card
    assert not root.xpath("//ram:IBANID", namespaces=NS)
    notes = root.xpath("//ram:IncludedNote/ram:Content/text()", namespaces=NS)
    assert "Acquittée le 13/05/2026 — réglée par carte" in notes


def test_a_transfer_paid_renderings_xml_is_valid_and_names_the_account_paid_to(invoiced):
    invoice = pay(invoiced, PaymentProvider.BANK_TRANSFER)
    root = assert_valid_xsd(embedded_xml(documents.paid_invoice_pdf(invoice)))

    assert cents(root, f"{TOTALS}/ram:TotalPrepaidAmount") == invoice.total_ttc_cents
    assert cents(root, f"{TOTALS}/ram:DuePayableAmount") == 0
    assert one(root, "//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == "58"  # SEPA transfer
    assert one(root, "//ram:IBANID") == "".join(invoice.seller["iban"].split())  # BR-61
    notes = root.xpath("//ram:IncludedNote/ram:Content/text()", namespaces=NS)
    assert "Acquittée le 13/05/2026 — réglée par virement" in notes


def test_an_unpaid_invoice_has_no_paid_rendering(invoiced):
    with pytest.raises(ValueError, match="not paid"):
        documents.paid_invoice_pdf(invoiced["invoice"])
