"""The Factur-X XML of invoices and credit notes: EN 16931, UN/CEFACT CII D16B.

Built from the values the invoice's PDF prints, so that both say the same: `documents` hands over
its invoice context (the frozen seller and buyer, the covered quotes, the mentions, the VAT
breakdown, the payment days, and for a paid invoice's rendering how it was paid) and embeds the
result in the PDF/A-3. Nothing here renders or stores anything; the XSD check is the `facturx`
library's, at embedding.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from lxml import etree

from .dates import billing_period_bounds
from .models import Invoice, InvoiceKind, PaymentProvider

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
TYPE_CODES = {InvoiceKind.INVOICE: "380", InvoiceKind.CREDIT_NOTE: "381"}
SIREN_SCHEME = "0002"  # ISO 6523 ICD of the French SIRENE register
# Electronic address scheme (EAS) of the French e-invoicing directory: the address is the SIREN.
FRENCH_DIRECTORY_SCHEME = "0225"
CARD_PAYMENT = "48"  # UNTDID 4461: bank card
SEPA_TRANSFER = "58"  # UNTDID 4461: SEPA credit transfer
# BT-8, when the seller opted to pay VAT on debits: the tax is due at the invoice's date (UNTDID 2475).
VAT_DUE_AT_INVOICE_DATE = "5"


def xml_amount(cents: int) -> str:
    """Integer cents as a CII amount: 123456 → 1234.56."""
    return f"{Decimal(cents) / 100:.2f}"


def vat_category(vat_rate_bp: int) -> str:
    """UNCL 5305 category: S (standard rates); Z (zero rated) for 0 %, which needs no reason."""
    return "S" if vat_rate_bp else "Z"


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    prefix, name = tag.split(":")
    element = etree.SubElement(parent, f"{{{NS[prefix]}}}{name}", attrs)
    if text is not None:
        element.text = text
    return element


def _date(parent: etree._Element, tag: str, value: date) -> None:
    _el(_el(parent, tag), "udt:DateTimeString", value.strftime("%Y%m%d"), format="102")


def cii_xml(invoice: Invoice, context: dict[str, Any]) -> bytes:
    """The CII XML of an invoice or credit note, from the values its PDF prints (`context`, see the
    module's docstring)."""
    seller, buyer = context["seller"], context["buyer"]
    root = etree.Element(f"{{{NS['rsm']}}}CrossIndustryInvoice", nsmap=NS)
    guideline = _el(
        _el(root, "rsm:ExchangedDocumentContext"), "ram:GuidelineSpecifiedDocumentContextParameter"
    )
    _el(guideline, "ram:ID", "urn:cen.eu:en16931:2017")
    document = _el(root, "rsm:ExchangedDocument")
    _el(document, "ram:ID", invoice.number)
    _el(document, "ram:TypeCode", TYPE_CODES[invoice.kind])
    _date(document, "ram:IssueDateTime", invoice.issue_date)
    for subject, content in _xml_notes(invoice, context):
        note = _el(document, "ram:IncludedNote")
        _el(note, "ram:Content", content)
        if subject:
            _el(note, "ram:SubjectCode", subject)

    transaction = _el(root, "rsm:SupplyChainTradeTransaction")
    for line in invoice.lines:
        item = _el(transaction, "ram:IncludedSupplyChainTradeLineItem")
        _el(_el(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", str(line.position))
        _el(_el(item, "ram:SpecifiedTradeProduct"), "ram:Name", line.label)
        price = _el(_el(item, "ram:SpecifiedLineTradeAgreement"), "ram:NetPriceProductTradePrice")
        _el(price, "ram:ChargeAmount", xml_amount(line.unit_price_cents))
        _el(
            _el(item, "ram:SpecifiedLineTradeDelivery"),
            "ram:BilledQuantity",
            str(line.quantity),
            unitCode="C62",
        )
        settlement = _el(item, "ram:SpecifiedLineTradeSettlement")
        tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(tax, "ram:TypeCode", "VAT")
        _el(tax, "ram:CategoryCode", vat_category(line.vat_rate_bp))
        _el(tax, "ram:RateApplicablePercent", xml_amount(line.vat_rate_bp))
        _el(
            _el(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation"),
            "ram:LineTotalAmount",
            xml_amount(line.total_ht_cents),
        )

    agreement = _el(transaction, "ram:ApplicableHeaderTradeAgreement")
    _xml_party(agreement, "ram:SellerTradeParty", name=seller["company_name"], party=seller)
    _xml_party(agreement, "ram:BuyerTradeParty", name=buyer["name"], party=buyer)
    if invoice.quote is not None:
        _el(
            _el(agreement, "ram:SellerOrderReferencedDocument"),
            "ram:IssuerAssignedID",
            invoice.quote.reference,
        )
    delivery = _el(transaction, "ram:ApplicableHeaderTradeDelivery")
    if invoice.sale_date is not None:
        _date(
            _el(delivery, "ram:ActualDeliverySupplyChainEvent"), "ram:OccurrenceDateTime", invoice.sale_date
        )

    settlement = _el(transaction, "ram:ApplicableHeaderTradeSettlement")
    _el(settlement, "ram:PaymentReference", invoice.number)
    _el(settlement, "ram:InvoiceCurrencyCode", invoice.currency)
    if invoice.kind == InvoiceKind.INVOICE:
        _xml_payment_means(settlement, seller, context["paid"])
    for group in context["vat_breakdown"]:
        tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(tax, "ram:CalculatedAmount", xml_amount(group["vat"]))
        _el(tax, "ram:TypeCode", "VAT")
        _el(tax, "ram:BasisAmount", xml_amount(group["basis"]))
        _el(tax, "ram:CategoryCode", vat_category(group["rate_bp"]))
        if context["vat_on_debits"]:
            _el(tax, "ram:DueDateTypeCode", VAT_DUE_AT_INVOICE_DATE)
        _el(tax, "ram:RateApplicablePercent", xml_amount(group["rate_bp"]))
    if invoice.billing_period:
        first, last = billing_period_bounds(invoice.billing_period)
        period = _el(settlement, "ram:BillingSpecifiedPeriod")
        _date(period, "ram:StartDateTime", first)
        _date(period, "ram:EndDateTime", last)
    terms = _el(settlement, "ram:SpecifiedTradePaymentTerms")
    days = context["payment_days"]
    _el(terms, "ram:Description", f"Paiement à {days} jours" if days else "Paiement à réception")
    _date(terms, "ram:DueDateDateTime", invoice.due_date)
    totals = _el(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    _el(totals, "ram:LineTotalAmount", xml_amount(sum(line.total_ht_cents for line in invoice.lines)))
    _el(totals, "ram:TaxBasisTotalAmount", xml_amount(invoice.total_ht_cents))
    _el(totals, "ram:TaxTotalAmount", xml_amount(invoice.total_vat_cents), currencyID=invoice.currency)
    _el(totals, "ram:GrandTotalAmount", xml_amount(invoice.total_ttc_cents))
    paid_cents = context["paid"]["amount_cents"] if context["paid"] else 0
    if paid_cents:
        # BT-113 paid amount: BR-CO-16 wants due (BT-115) = grand total - paid.
        _el(totals, "ram:TotalPrepaidAmount", xml_amount(paid_cents))
    _el(totals, "ram:DuePayableAmount", xml_amount(invoice.total_ttc_cents - paid_cents))
    credited = invoice.credited_invoice
    if credited is not None:
        reference = _el(settlement, "ram:InvoiceReferencedDocument")
        _el(reference, "ram:IssuerAssignedID", credited.number)
        _el(
            _el(reference, "ram:FormattedIssueDateTime"),
            "qdt:DateTimeString",
            credited.issue_date.strftime("%Y%m%d"),
            format="102",
        )
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _xml_payment_means(
    settlement: etree._Element, seller: dict[str, str], paid: dict[str, Any] | None
) -> None:
    """How the invoice is to be paid (a transfer to the seller's IBAN) or, on a paid invoice's
    rendering, how it was (BR-61: a transfer names the IBAN; a card needs no card number)."""
    providers = paid["providers"] if paid else [PaymentProvider.BANK_TRANSFER]
    for provider in providers:
        if provider == PaymentProvider.STRIPE:
            means = _el(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
            _el(means, "ram:TypeCode", CARD_PAYMENT)
            _el(means, "ram:Information", "Carte bancaire")
        elif seller.get("iban"):
            means = _el(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
            _el(means, "ram:TypeCode", SEPA_TRANSFER)
            _el(means, "ram:Information", "Virement SEPA")
            _el(
                _el(means, "ram:PayeePartyCreditorFinancialAccount"),
                "ram:IBANID",
                "".join(seller["iban"].split()),
            )
            if seller.get("bic"):
                _el(_el(means, "ram:PayeeSpecifiedCreditorFinancialInstitution"), "ram:BICID", seller["bic"])


def _xml_party(parent: etree._Element, tag: str, *, name: str, party: dict[str, str]) -> None:
    element = _el(parent, tag)
    _el(element, "ram:Name", name)
    if party.get("siren"):
        _el(_el(element, "ram:SpecifiedLegalOrganization"), "ram:ID", party["siren"], schemeID=SIREN_SCHEME)
    address = _el(element, "ram:PostalTradeAddress")
    for key, tag_name in (
        ("postal_code", "ram:PostcodeCode"),
        ("address_line1", "ram:LineOne"),
        ("address_line2", "ram:LineTwo"),
        ("city", "ram:CityName"),
    ):
        if party.get(key):
            _el(address, tag_name, party[key])
    _el(address, "ram:CountryID", party.get("country") or "FR")
    # The electronic address (BT-34, BT-49; one per party): the SIREN in the French directory's scheme,
    # where the reform's platforms route invoices; else the email address.
    if party.get("siren"):
        _el(_el(element, "ram:URIUniversalCommunication"), "ram:URIID", party["siren"],
            schemeID=FRENCH_DIRECTORY_SCHEME)
    elif party.get("email"):
        _el(_el(element, "ram:URIUniversalCommunication"), "ram:URIID", party["email"], schemeID="EM")
    if party.get("vat_number"):
        _el(_el(element, "ram:SpecifiedTaxRegistration"), "ram:ID", party["vat_number"], schemeID="VA")


def _xml_notes(invoice: Invoice, context: dict[str, Any]) -> list[tuple[str | None, str]]:
    """The French mentions as CII notes, with their UNTDID 4451 subject codes."""
    seller = context["seller"]
    notes: list[tuple[str | None, str]] = [
        (
            "REG",
            f"{seller['legal_form']} au capital de {seller['share_capital']} — "
            f"SIREN {seller['siren']} RCS {seller['rcs_city']}",
        ),
        ("AAB", f"Escompte pour paiement anticipé : {context['early_payment_discount']}"),
        ("PMD", f"Pénalités de retard : {context['late_penalty_rate']}"),
        ("PMT", f"Indemnité forfaitaire pour frais de recouvrement : {context['recovery_indemnity']}"),
        ("AAI", f"Catégorie de l'opération : {context['operation_category']}"),
    ]
    if context["covered_quotes"]:
        references = ", ".join(quote.reference for quote in context["covered_quotes"])
        notes.append(("AAI", f"Devis concernés : {references}"))
    if invoice.reason:
        notes.append(("AAI", f"Motif : {invoice.reason}"))
    if context["paid"]:
        notes.append(("AAI", context["paid"]["mention"]))
    return notes
