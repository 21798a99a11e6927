"""The Factur-X XML of every kind of invoice passes the official EN 16931 validation rules for CII
(the European Commission's Schematron, compiled to XSLT, in ../shared/einvoicing/), run by Saxon
(saxonche): a per-order invoice, a monthly invoice with several VAT rates, a credit note, an invoice
of a seller paying VAT on debits. The check is not vacuous: a wrong grand total breaks BR-CO-15.
Also what the reform adds: both parties' electronic addresses, the option for VAT on debits."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from lxml import etree
from saxonche import PySaxonProcessor
from sqlalchemy import select

from portal import billing, documents, quotes
from portal.documents import vat_breakdown
from portal.extensions import db
from portal.models import Channel, ClientRole, Invoice
from portal.seller import seller_settings

from .test_documents import (  # noqa: F401  (per_order: a fixture)
    _monthly_world,
    assert_valid_xsd,
    embedded_xml,
    pdf_text,
    per_order,
)

CII_RULES = Path(__file__).resolve().parents[2] / "shared" / "einvoicing" / "EN16931-CII-validation.xslt"
SVRL = {"svrl": "http://purl.oclc.org/dsdl/svrl"}
RAM = {"ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"}


@pytest.fixture(scope="module")
def en16931():
    """The CII rules compiled once: a function from an XML document to its failed assertions,
    (rule id, flag, message)."""
    assert CII_RULES.exists(), f"the EN 16931 rules are shared data of the project: {CII_RULES}"
    with PySaxonProcessor(license=False) as processor:
        rules = processor.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(CII_RULES))

        def failed_assertions(xml: bytes) -> list[tuple[str, str, str]]:
            report = rules.transform_to_string(xdm_node=processor.parse_xml(xml_text=xml.decode("utf-8")))
            root = etree.fromstring(report.encode("utf-8"))
            return [(failed.get("id"), failed.get("flag"), " ".join(failed.xpath("string(svrl:text)",
                                                                              namespaces=SVRL).split()))
                    for failed in root.xpath("//svrl:failed-assert", namespaces=SVRL)]

        yield failed_assertions


def _fatal(failures: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return [failure for failure in failures if failure[1] == "fatal"]


def test_a_per_order_invoice_passes_the_en16931_rules(per_order, en16931):  # noqa: F811
    assert _fatal(en16931(documents.facturx_xml(per_order["invoice"]))) == []


def test_a_monthly_invoice_with_several_rates_passes_the_en16931_rules(make, en16931):
    invoice = _monthly_world(make)["invoice"]
    assert _fatal(en16931(documents.facturx_xml(invoice))) == []


def test_a_credit_note_passes_the_en16931_rules(make, en16931):
    make.seller_settings()
    world = make.world()
    world["org"].vat_number = "FR66000000003"
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=world["terms"], channel=Channel.PORTAL, now=datetime(2026, 5, 12, 9))
    invoice = db.session.scalars(select(Invoice)).one()
    credit_note = billing.issue_credit_note(invoice, actor=world["admin"], reason="Commande annulée",
                                            now=datetime(2026, 6, 2, 9))
    db.session.commit()
    assert _fatal(en16931(documents.facturx_xml(credit_note))) == []


def test_the_rules_are_not_vacuous_a_wrong_grand_total_breaks_them(per_order, en16931):  # noqa: F811
    root = etree.fromstring(documents.facturx_xml(per_order["invoice"]))
    [grand_total] = root.xpath("//ram:GrandTotalAmount", namespaces=RAM)
    grand_total.text = "1.00"
    fatal_rules = {rule for rule, _, _ in _fatal(en16931(etree.tostring(root)))}
    assert "BR-CO-15" in fatal_rules


def test_both_parties_electronic_address_is_their_siren_in_the_french_directorys_scheme(per_order):  # noqa: F811
    invoice = per_order["invoice"]
    root = etree.fromstring(documents.facturx_xml(invoice))
    parties = (("SellerTradeParty", invoice.seller["siren"]), ("BuyerTradeParty", invoice.buyer["siren"]))
    for party, siren in parties:
        [address] = root.xpath(f"//ram:{party}/ram:URIUniversalCommunication/ram:URIID", namespaces=RAM)
        assert (address.get("schemeID"), address.text) == ("0225", siren), party


def _per_order_invoice(make, **seller) -> Invoice:
    make.seller_settings(**seller)
    world = make.world()
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    return db.session.scalars(select(Invoice).where(Invoice.quote_id == world["quote"].id)).one()


def _due_date_codes(xml: bytes) -> list[str]:
    header_taxes = "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax"
    return etree.fromstring(xml).xpath(f"{header_taxes}/ram:DueDateTypeCode/text()", namespaces=RAM)


def test_vat_on_debits_is_printed_and_carried_as_vat_due_at_the_invoice_date(make, en16931):
    invoice = _per_order_invoice(make, vat_on_debits=True)
    pdf = documents.invoice_pdf(invoice)
    assert "Option pour le paiement de la taxe d'après les débits" in pdf_text(pdf)
    xml = embedded_xml(pdf)
    assert_valid_xsd(xml)
    assert _due_date_codes(xml) == ["5"] * len(vat_breakdown(invoice.lines))
    assert _fatal(en16931(xml)) == []


def test_without_the_option_neither_the_mention_nor_the_code_and_issued_invoices_keep_theirs(make):
    invoice = _per_order_invoice(make)
    assert "d'après les débits" not in pdf_text(documents.invoice_pdf(invoice))
    assert _due_date_codes(documents.facturx_xml(invoice)) == []
    seller_settings().vat_on_debits = True  # opted later: the invoice issued before is unchanged
    db.session.commit()
    assert _due_date_codes(documents.facturx_xml(invoice)) == []
