"""Documents: quote and invoice PDFs, their mandatory mentions, Factur-X, frozen invoice PDFs."""

from __future__ import annotations

import hashlib
import io
import re
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from importlib import resources

import facturx
import pypdf
import pytest
from lxml import etree
from sqlalchemy import create_engine, select, update

from portal import billing, documents, facturx_xml, monthly, quotes
from portal.dates import paris_today
from portal.exceptions import InvoiceImmutable, SellerSettingsIncomplete
from portal.extensions import db
from portal.models import (
    BillingMode,
    Channel,
    ClientRole,
    Invoice,
    InvoiceKind,
    SellerSettings,
    StaffRole,
    SupplyKind,
)
from portal.money import format_amount
from portal.quotes import LineInput
from portal.seller import current_terms

NS = facturx_xml.NS
XSD_PATH = "xsd_and_schematron/facturx-en16931/Factur-X_EN16931.xsd"

# --- Helpers ----------------------------------------------------------------------------------


def pdf_text(pdf: bytes) -> str:
    """All the text of a PDF, with every run of whitespace (incl. no-break spaces) as one space."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages)
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ").replace("\u202f", " "))


def text_of(value: str) -> str:
    """A string as it reads in `pdf_text`."""
    return re.sub(r"\s+", " ", value.replace("\u00a0", " ").replace("\u202f", " "))


def amount(cents: int) -> str:
    return text_of(format_amount(cents))


def embedded_xml(pdf: bytes) -> bytes:
    filename, xml = facturx.get_xml_from_pdf(pdf, check_xsd=False)
    assert filename == "factur-x.xml"
    return xml


_schema: etree.XMLSchema | None = None


def assert_valid_xsd(xml: bytes) -> etree._Element:
    """Validate against the official Factur-X 1.0 EN 16931 XSD shipped with the factur-x library."""
    global _schema
    if _schema is None:
        with resources.as_file(resources.files("facturx").joinpath(XSD_PATH)) as path:
            _schema = etree.XMLSchema(etree.parse(str(path)))
    root = etree.fromstring(xml)
    _schema.assertValid(root)
    return root


def cents(root: etree._Element, xpath: str) -> int:
    values = root.xpath(xpath, namespaces=NS)
    assert len(values) == 1, xpath
    return int(Decimal(values[0].text) * 100)


def one(root: etree._Element, xpath: str) -> str:
    values = root.xpath(xpath, namespaces=NS)
    assert len(values) == 1, xpath
    return values[0] if isinstance(values[0], str) else values[0].text


def assert_xml_matches_database(root: etree._Element, invoice: Invoice) -> None:
    """Number, type, dates, parties, lines, VAT breakdown and totals equal the database's."""
    settlement = "//ram:ApplicableHeaderTradeSettlement"
    totals = f"{settlement}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    seller = "//ram:SellerTradeParty"
    buyer = "//ram:BuyerTradeParty"
    assert one(root, "//rsm:ExchangedDocument/ram:ID") == invoice.number
    expected_type = "380" if invoice.kind == InvoiceKind.INVOICE else "381"
    assert one(root, "//rsm:ExchangedDocument/ram:TypeCode") == expected_type
    assert one(root, "//ram:IssueDateTime/udt:DateTimeString") == invoice.issue_date.strftime("%Y%m%d")
    assert one(root, "//ram:DueDateDateTime/udt:DateTimeString") == invoice.due_date.strftime("%Y%m%d")
    assert one(root, f"{settlement}/ram:InvoiceCurrencyCode") == invoice.currency
    assert one(root, f"{settlement}/ram:PaymentReference") == invoice.number
    assert one(root, f"{seller}/ram:Name") == invoice.seller["company_name"]
    assert one(root, f"{seller}/ram:SpecifiedLegalOrganization/ram:ID") == invoice.seller["siren"]
    assert one(root, f"{seller}/ram:SpecifiedLegalOrganization/ram:ID/@schemeID") == "0002"
    assert one(root, f"{seller}/ram:SpecifiedTaxRegistration/ram:ID") == invoice.seller["vat_number"]
    assert one(root, f"{seller}/ram:PostalTradeAddress/ram:CityName") == invoice.seller["city"]
    assert one(root, f"{buyer}/ram:Name") == invoice.buyer["name"]
    assert one(root, f"{buyer}/ram:SpecifiedLegalOrganization/ram:ID") == invoice.buyer["siren"]
    assert one(root, f"{buyer}/ram:SpecifiedTaxRegistration/ram:ID") == invoice.buyer["vat_number"]
    assert one(root, f"{buyer}/ram:PostalTradeAddress/ram:PostcodeCode") == invoice.buyer["postal_code"]

    items = root.xpath("//ram:IncludedSupplyChainTradeLineItem", namespaces=NS)
    assert len(items) == len(invoice.lines)
    for item, line in zip(items, invoice.lines, strict=True):
        assert one(item, "ram:SpecifiedTradeProduct/ram:Name") == line.label
        assert one(item, ".//ram:BilledQuantity") == str(line.quantity)
        assert cents(item, ".//ram:NetPriceProductTradePrice/ram:ChargeAmount") == line.unit_price_cents
        assert cents(item, ".//ram:RateApplicablePercent") == line.vat_rate_bp
        assert cents(item, ".//ram:LineTotalAmount") == line.total_ht_cents

    expected: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for line in invoice.lines:
        key = ("S" if line.vat_rate_bp else "Z", line.vat_rate_bp)
        expected[key][0] += line.total_ht_cents
        expected[key][1] += line.total_vat_cents
    breakdown = {
        (one(tax, "ram:CategoryCode"), cents(tax, "ram:RateApplicablePercent")): [
            cents(tax, "ram:BasisAmount"),
            cents(tax, "ram:CalculatedAmount"),
        ]
        for tax in root.xpath(f"{settlement}/ram:ApplicableTradeTax", namespaces=NS)
    }
    assert breakdown == dict(expected)

    assert cents(root, f"{totals}/ram:LineTotalAmount") == invoice.total_ht_cents
    assert cents(root, f"{totals}/ram:TaxBasisTotalAmount") == invoice.total_ht_cents
    assert cents(root, f"{totals}/ram:TaxTotalAmount") == invoice.total_vat_cents
    assert cents(root, f"{totals}/ram:GrandTotalAmount") == invoice.total_ttc_cents
    assert cents(root, f"{totals}/ram:DuePayableAmount") == invoice.total_ttc_cents


def common_invoice_mentions(invoice: Invoice) -> list[str]:
    """What every invoice and credit note must show (Code de commerce L441-9, CGI 242 nonies A)."""
    seller, buyer = invoice.seller, invoice.buyer
    mentions = [
        invoice.number,
        f"Date d'émission {documents.format_date(invoice.issue_date)}",
        f"Date d'échéance {documents.format_date(invoice.due_date)}",
        # Seller: name, legal form, share capital, address, SIREN with RCS city, VAT number.
        seller["company_name"],
        f"{seller['legal_form']} au capital de {text_of(seller['share_capital'])}",
        seller["address_line1"],
        f"{seller['postal_code']} {seller['city']}",
        f"SIREN {seller['siren']} RCS {seller['rcs_city']}",
        f"N° TVA intracommunautaire : {seller['vat_number']}",
        # Buyer: name, billing address, SIREN, VAT number.
        buyer["name"],
        buyer["address_line1"],
        f"{buyer['postal_code']} {buyer['city']}",
        f"SIREN {buyer['siren']}",
        f"N° TVA intracommunautaire : {buyer['vat_number']}",
        # Totals.
        f"Total HT {amount(invoice.total_ht_cents)}",
        f"Total TVA {amount(invoice.total_vat_cents)}",
        amount(invoice.total_ttc_cents),
        # Payment terms.
        f"Escompte pour paiement anticipé : {seller['early_payment_discount']}",
        f"Taux des pénalités de retard : {seller['late_penalty_rate']}",
        "Indemnité forfaitaire pour frais de recouvrement : 40 €",
    ]
    for line in invoice.lines:
        rate = text_of(documents.format_rate(line.vat_rate_bp))
        mentions += [
            text_of(line.label),
            f"{line.quantity} {amount(line.unit_price_cents)} {rate} {amount(line.total_ht_cents)}",
        ]
    for group in documents.vat_breakdown(invoice.lines):
        rate = text_of(documents.format_rate(group["rate_bp"]))
        mentions += [
            f"TVA {rate} {amount(group['vat'])}",
            f"{rate} {amount(group['basis'])} {amount(group['vat'])}",
        ]
    return mentions


def bank_mentions(invoice: Invoice) -> list[str]:
    return [
        f"IBAN : {documents.format_iban(invoice.seller['iban'])}",
        f"BIC : {invoice.seller['bic']}",
        f"Référence de paiement à indiquer : {invoice.number}",
    ]


def assert_mentions(text: str, mentions: list[str]) -> None:
    missing = [mention for mention in mentions if mention not in text]
    assert not missing, f"missing {missing} in: {text}"


def assert_pdfa3_facturx(pdf: bytes) -> None:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data()
    assert b"<pdfaid:part>3</pdfaid:part>" in xmp
    assert b"<pdfaid:conformance>B</pdfaid:conformance>" in xmp
    assert b"<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>" in xmp
    width, height = (float(value) for value in reader.pages[0].mediabox[2:])
    assert (round(width), round(height)) == (595, 842)  # A4 in points


# --- Scenarios --------------------------------------------------------------------------------


@pytest.fixture
def per_order(make):
    """A per-order quote accepted in the portal, hence invoiced at once."""
    world = make.world()
    world["org"].vat_number = "FR44000000001"
    manager = world["users"][ClientRole.GESTIONNAIRE]
    quotes.accept(world["quote"], actor=manager, terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    world["invoice"] = db.session.scalars(select(Invoice).where(Invoice.quote_id == world["quote"].id)).one()
    return world


def _monthly_world(make, first_supply_kind=SupplyKind.SERVICES, **seller_overrides):
    make.seller_settings(**seller_overrides)
    admin = make.staff(StaffRole.ADMIN)
    cgv = make.terms(actor=admin)
    org = make.organisation(
        billing_mode=BillingMode.MONTHLY, vat_number="FR55000000002", name="Client Mensuel SAS"
    )
    manager = make.client_user(org, ClientRole.GESTIONNAIRE)
    first = make.sent_quote(org, actor=admin, recipient=manager, now=datetime(2026, 3, 2, 9), lines=[
        LineInput(product_id=make.product(supply_kind=first_supply_kind).id, quantity=2)])
    second = make.sent_quote(
        org,
        actor=admin,
        recipient=manager,
        now=datetime(2026, 3, 9, 9),
        lines=[
            LineInput(label="Formation sur site", quantity=3, unit_price_cents=12345, vat_rate_bp=550),
            LineInput(label="Frais de dossier", quantity=1, unit_price_cents=2500, vat_rate_bp=0),
        ],
    )
    quotes.accept(
        first, actor=manager, terms_version=cgv, channel=Channel.PORTAL, now=datetime(2026, 3, 4, 10)
    )
    quotes.accept(
        second, actor=manager, terms_version=cgv, channel=Channel.EMAIL_LINK, now=datetime(2026, 3, 20, 15)
    )
    invoice = monthly.close_organisations_month([org.id], "2026-03", now=datetime(2026, 4, 1, 6))[org.id]
    db.session.commit()
    return {"admin": admin, "terms": cgv, "org": org, "quotes": [first, second], "invoice": invoice}


# --- Invoices ---------------------------------------------------------------------------------


def test_per_order_invoice_pdf_has_every_mandatory_mention(per_order):
    invoice = per_order["invoice"]
    pdf = documents.invoice_pdf(invoice)
    db.session.commit()
    text = pdf_text(pdf)

    assert_mentions(
        text,
        common_invoice_mentions(invoice)
        + bank_mentions(invoice)
        + [
            "FACTURE",
            f"Facture n° {invoice.number}",
            "Catégorie de l'opération : Prestation de services",
            "Escompte pour paiement anticipé : néant",
            "Taux des pénalités de retard : trois fois le taux d'intérêt légal",
            f"Devis : {per_order['quote'].reference}",
            f"Net à payer TTC {amount(invoice.total_ttc_cents)}",
        ],
    )
    # Sold and invoiced the same day: no separate date of sale.
    assert invoice.sale_date == invoice.issue_date
    assert "Date de la vente" not in text
    assert "Période de facturation" not in text
    assert_pdfa3_facturx(pdf)


def test_per_order_invoice_embeds_valid_facturx_equal_to_database(per_order):
    invoice = per_order["invoice"]
    xml = embedded_xml(documents.invoice_pdf(invoice))
    root = assert_valid_xsd(xml)
    assert_xml_matches_database(root, invoice)
    assert one(root, "//ram:SellerOrderReferencedDocument/ram:IssuerAssignedID") == (
        per_order["quote"].reference
    )
    assert one(root, "//ram:PayeePartyCreditorFinancialAccount/ram:IBANID") == invoice.seller["iban"]
    assert one(root, "//ram:PayeeSpecifiedCreditorFinancialInstitution/ram:BICID") == invoice.seller["bic"]
    assert documents.facturx_xml(invoice) == xml


def test_monthly_invoice_shows_period_quotes_sale_date_and_custom_terms(make):
    world = _monthly_world(
        make,
        early_payment_discount="1 % pour paiement sous 10 jours",
        late_penalty_rate="10 % par an",
        first_supply_kind=SupplyKind.GOODS,  # beside the second quote's services: « Mixte »
    )
    invoice, (first, second) = world["invoice"], world["quotes"]
    text = pdf_text(documents.invoice_pdf(invoice))

    assert_mentions(
        text,
        common_invoice_mentions(invoice)
        + bank_mentions(invoice)
        + [
            "Période de facturation : mars 2026 (du 01/03/2026 au 31/03/2026)",
            f"Devis couverts : {first.reference} (accepté le 04/03/2026), "
            f"{second.reference} (accepté le 20/03/2026)",
            "Date de la vente ou de la prestation 31/03/2026",
            "Date d'émission 01/04/2026",
            "Date d'échéance 01/05/2026",
            "Escompte pour paiement anticipé : 1 % pour paiement sous 10 jours",
            "Taux des pénalités de retard : 10 % par an",
            "Catégorie de l'opération : Mixte",
            "TVA 20 %",
            "TVA 5,5 %",
            "TVA 0 %",
        ],
    )


def test_monthly_invoice_facturx_has_period_and_one_vat_group_per_rate(make):
    invoice = _monthly_world(make)["invoice"]
    root = assert_valid_xsd(embedded_xml(documents.invoice_pdf(invoice)))
    assert_xml_matches_database(root, invoice)
    categories = root.xpath(
        "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode/text()", namespaces=NS
    )
    assert sorted(categories) == ["S", "S", "Z"]
    assert one(root, "//ram:BillingSpecifiedPeriod/ram:StartDateTime/udt:DateTimeString") == "20260301"
    assert one(root, "//ram:BillingSpecifiedPeriod/ram:EndDateTime/udt:DateTimeString") == "20260331"
    assert one(root, "//ram:ActualDeliverySupplyChainEvent//udt:DateTimeString") == "20260331"


def test_credit_note_pdf_and_facturx_reference_the_cancelled_invoice(make):
    make.seller_settings()
    world = make.world()
    world["org"].vat_number = "FR66000000003"
    world["quote"].lines[0].supply_kind = SupplyKind.GOODS  # the line of a product that is goods
    manager = world["users"][ClientRole.GESTIONNAIRE]
    quotes.accept(
        world["quote"],
        actor=manager,
        terms_version=world["terms"],
        channel=Channel.PORTAL,
        now=datetime(2026, 5, 12, 9),
    )
    invoice = db.session.scalars(select(Invoice)).one()
    credit_note = billing.issue_credit_note(
        invoice, actor=world["admin"], reason="Commande annulée", now=datetime(2026, 6, 2, 9)
    )
    db.session.commit()
    pdf = documents.invoice_pdf(credit_note)
    text = pdf_text(pdf)

    assert credit_note.number.startswith("AV-")
    assert_mentions(
        text,
        common_invoice_mentions(credit_note)
        + [
            "AVOIR",
            f"Avoir n° {credit_note.number}",
            f"Avoir sur la facture n° {invoice.number} du 12/05/2026",
            "Motif : Commande annulée",
            "Catégorie de l'opération : Livraison de biens",
            "Date de la vente ou de la prestation 12/05/2026",
            f"Total de l'avoir TTC {amount(credit_note.total_ttc_cents)}",
            "aucun règlement n'est dû",
        ],
    )
    assert "IBAN" not in text  # nothing to pay on a credit note

    root = assert_valid_xsd(embedded_xml(pdf))
    assert_xml_matches_database(root, credit_note)
    assert one(root, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == invoice.number
    assert one(root, "//ram:InvoiceReferencedDocument//qdt:DateTimeString") == "20260512"
    assert_pdfa3_facturx(pdf)


def test_invoice_shows_frozen_seller_and_buyer_not_live_settings(per_order):
    invoice = per_order["invoice"]
    db.session.get(SellerSettings, 1).company_name = "Nouveau Nom SAS"
    per_order["org"].name = "Client Renommé"
    db.session.commit()
    text = pdf_text(documents.invoice_pdf(invoice))
    assert invoice.seller["company_name"] in text and invoice.buyer["name"] in text
    assert "Nouveau Nom SAS" not in text and "Client Renommé" not in text


def test_the_xsd_check_is_not_vacuous(per_order):
    root = etree.fromstring(documents.build_facturx_xml(per_order["invoice"]))
    type_code = root.find("rsm:ExchangedDocument/ram:TypeCode", NS)
    type_code.getparent().remove(type_code)
    with pytest.raises(etree.DocumentInvalid):
        assert_valid_xsd(etree.tostring(root))


# --- Frozen at issue --------------------------------------------------------------------------


def test_invoice_pdf_is_stored_once_and_downloads_are_identical(per_order, monkeypatch):
    invoice = per_order["invoice"]
    assert invoice.pdf is None and invoice.pdf_sha256 is None
    first = documents.invoice_pdf(invoice)
    db.session.commit()
    assert invoice.pdf_sha256 == hashlib.sha256(first).hexdigest()

    def no_rerender(_invoice):
        raise AssertionError("an issued invoice is never re-rendered")

    monkeypatch.setattr(documents, "render_invoice_pdf", no_rerender)
    assert documents.invoice_pdf(invoice) == first
    db.session.remove()  # a later download, in another request
    reloaded = db.session.get(Invoice, invoice.id)
    second = documents.invoice_pdf(reloaded)
    assert second == first
    assert hashlib.sha256(second).hexdigest() == reloaded.pdf_sha256
    assert documents.facturx_xml(reloaded) == embedded_xml(first)


def test_stored_pdf_cannot_be_replaced(per_order):
    invoice = per_order["invoice"]
    stored = documents.invoice_pdf(invoice)
    db.session.commit()
    assert invoice.pdf == stored  # loaded: the ORM guard knows the value being replaced
    forged = b"%PDF-1.7 forged"
    with pytest.raises(InvoiceImmutable):
        invoice.pdf = forged
        invoice.pdf_sha256 = hashlib.sha256(forged).hexdigest()
        db.session.flush()
    db.session.rollback()
    assert hashlib.sha256(db.session.get(Invoice, invoice.id).pdf).hexdigest() == invoice.pdf_sha256


def test_concurrent_first_download_serves_the_bytes_stored_first(per_order, monkeypatch, app):
    """Two first downloads at once: the one that stores first wins, the other serves its bytes."""
    invoice = per_order["invoice"]
    winner = b"%PDF-1.7 stored by the other download"
    render = documents.render_invoice_pdf

    def render_while_another_download_stores(inv):
        ours = render(inv)
        engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.begin() as connection:
            connection.execute(
                update(Invoice)
                .where(Invoice.id == inv.id)
                .values(pdf=winner, pdf_sha256=hashlib.sha256(winner).hexdigest())
            )
        engine.dispose()
        return ours

    monkeypatch.setattr(documents, "render_invoice_pdf", render_while_another_download_stores)
    assert documents.invoice_pdf(invoice) == winner
    assert invoice.pdf_sha256 == hashlib.sha256(winner).hexdigest()


# --- Quotes -----------------------------------------------------------------------------------


def test_quote_pdf_has_number_dates_lines_totals_mode_and_current_terms(make):
    world = make.world()
    quote = world["quote"]
    text = pdf_text(documents.quote_pdf(quote))
    line = quote.lines[0]
    assert_mentions(
        text,
        [
            "DEVIS",
            f"Devis n° {quote.reference}",
            f"Date {documents.format_date(paris_today(quote.sent_at))}",
            f"Valable jusqu'au {documents.format_date(quote.valid_until)}",
            text_of(line.label),
            f"{line.quantity} {amount(line.unit_price_cents)} 20 %",
            f"Total HT {amount(quote.total_ht_cents)}",
            f"TVA 20 % {amount(quote.total_vat_cents)}",
            f"Total TTC {amount(quote.total_ttc_cents)}",
            "Mode de facturation : Facturation à la commande",
            f"Conditions Générales de Vente applicables : version {world['terms'].version_label}",
            # The seller's identity, from the live settings.
            "Vendeur Test",
            "SAS au capital de 10 000 €",
            "SIREN 123456789 RCS Paris",
            "N° TVA intracommunautaire : FR32123456789",
            world["org"].name,
        ],
    )


def test_quote_pdf_shows_decided_terms_once_decided_and_current_terms_while_pending(make):
    world = make.world(billing_mode=BillingMode.MONTHLY)
    decided, manager = world["quote"], world["users"][ClientRole.GESTIONNAIRE]
    quotes.accept(decided, actor=manager, terms_version=world["terms"], channel=Channel.PORTAL)
    pending = make.sent_quote(world["org"], actor=world["admin"], recipient=manager)
    newer = make.terms(actor=world["admin"], version_label="2027-01")
    assert current_terms().id == newer.id

    decided_text = pdf_text(documents.quote_pdf(decided))
    assert f"version {world['terms'].version_label}" in decided_text
    assert "version 2027-01" not in decided_text
    assert "Mode de facturation : Facturation consolidée mensuelle" in decided_text
    assert "Accepté le" in decided_text
    assert "version 2027-01" in pdf_text(documents.quote_pdf(pending))


# --- Escaping ---------------------------------------------------------------------------------


def test_html_in_labels_and_names_is_printed_as_text(make):
    make.seller_settings(company_name="Vendeur <i>Test</i> & Cie")
    admin = make.staff(StaffRole.ADMIN)
    cgv = make.terms(actor=admin)
    org = make.organisation(name="Dupont <script>alert(1)</script> & Fils", vat_number="FR77000000004")
    manager = make.client_user(org)
    quote = make.sent_quote(
        org,
        actor=admin,
        recipient=manager,
        lines=[
            LineInput(label="<b>gras</b> & <img src=x>", quantity=1, unit_price_cents=1000, vat_rate_bp=2000)
        ],
    )

    quotes.accept(quote, actor=manager, terms_version=cgv, channel=Channel.PORTAL)
    invoice = db.session.scalars(select(Invoice)).one()
    pdf = documents.invoice_pdf(invoice)
    for text in (pdf_text(documents.quote_pdf(quote)), pdf_text(pdf)):
        assert "<b>gras</b> & <img src=x>" in text
        assert "Dupont <script>alert(1)</script> & Fils" in text
        assert "Vendeur <i>Test</i> & Cie" in text
        assert "&lt;" not in text and "&amp;" not in text
    root = assert_valid_xsd(embedded_xml(pdf))
    assert one(root, "//ram:SpecifiedTradeProduct/ram:Name") == "<b>gras</b> & <img src=x>"
    assert one(root, "//ram:BuyerTradeParty/ram:Name") == "Dupont <script>alert(1)</script> & Fils"


# --- Bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("company_name", "raison sociale"),
        ("legal_form", "forme juridique"),
        ("share_capital", "capital social"),
        ("address_line1", "adresse"),
        ("postal_code", "code postal"),
        ("city", "ville"),
        ("siren", "SIREN"),
        ("rcs_city", "RCS"),
        ("vat_number", "TVA"),
    ],
)
def test_issuing_with_a_missing_seller_mention_is_refused_naming_it(make, field, named):
    make.seller_settings(**{field: ""})
    org = make.organisation()
    line = billing.LineDraft(label="Prestation", quantity=1, unit_price_cents=1000, vat_rate_bp=2000)
    with pytest.raises(SellerSettingsIncomplete) as refused:
        billing.issue_invoice(organisation=org, lines=[line])
    assert named in str(refused.value)
    assert "Paramètres vendeur incomplets" in str(refused.value)
    db.session.rollback()
    assert db.session.scalar(select(Invoice.id)) is None


def test_accepting_a_per_order_quote_without_seller_siren_is_refused_and_writes_nothing(make):
    world = make.world()
    db.session.get(SellerSettings, 1).siren = ""
    db.session.commit()
    with pytest.raises(SellerSettingsIncomplete, match="SIREN"):
        quotes.accept(
            world["quote"],
            actor=world["users"][ClientRole.GESTIONNAIRE],
            terms_version=world["terms"],
            channel=Channel.PORTAL,
        )
    db.session.rollback()
    assert db.session.scalar(select(Invoice.id)) is None
    assert db.session.get(type(world["quote"]), world["quote"].id).status.value == "sent"


def test_the_category_of_operation_is_what_the_lines_supply_as_written_in_the_quote(make):
    """Goods only: « Livraison de biens »; the product turned into services afterwards changes
    neither the quote's line nor its invoice. Both kinds on one invoice: « Mixte » (see the monthly
    invoice above)."""
    make.seller_settings()  # its category of operations: services
    world = make.world()
    goods, manager = make.product(supply_kind=SupplyKind.GOODS), world["users"][ClientRole.GESTIONNAIRE]
    quote = make.sent_quote(world["org"], actor=world["admin"], recipient=manager,
                            lines=[LineInput(product_id=goods.id, quantity=1)])
    goods.supply_kind = SupplyKind.SERVICES
    quotes.accept(quote, actor=manager, terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    invoice = db.session.scalars(select(Invoice).where(Invoice.quote_id == quote.id)).one()
    assert [line.supply_kind for line in invoice.lines] == [SupplyKind.GOODS]
    assert "Catégorie de l'opération : Livraison de biens" in pdf_text(documents.invoice_pdf(invoice))
    assert "Catégorie de l'opération : Livraison de biens" in documents.facturx_xml(invoice).decode()


@pytest.mark.parametrize(("kinds", "seller_category", "category"), [
    ([SupplyKind.GOODS, SupplyKind.GOODS], "services", "goods"),
    ([SupplyKind.SERVICES], "goods", "services"),
    ([SupplyKind.GOODS, SupplyKind.SERVICES], "services", "mixed"),
    ([None, None], "goods", "goods"),  # issued before lines had a kind: the seller's frozen setting
])
def test_the_category_rule(kinds, seller_category, category):
    lines = [type("Line", (), {"supply_kind": kind})() for kind in kinds]
    assert documents.operation_category(lines, {"operation_category": seller_category}) == category
