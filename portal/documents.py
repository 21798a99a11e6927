"""PDF of quotes and invoices (WeasyPrint, Jinja templates in templates/documents/) and Factur-X.

Invoices and credit notes are PDF/A-3b files carrying their EN 16931 (CII) XML, built by
`facturx_xml` from the same context as the PDF. An invoice's PDF is rendered once, at first need,
and stored with its SHA-256; that original is never re-rendered (a re-render would differ by its
timestamps, and by any later template change) and stays the legal original. Once the invoice is
paid, its download is another rendering of it, « acquittée » with the date and means of payment
and nothing left to pay (its XML too); the original stays downloadable beside it.

Languages. An invoice is always French, the legal language of invoicing in France (and its
mentions are French legal text): it is rendered under a forced French locale whatever the reader's
language. A quote is rendered in the language being served (the reader's, or an email's
recipient's): its words, dates and amounts; the quote stays one document whatever the language
(the decision's evidence hashes the quote's content, never a PDF).

Quotes are not frozen, but a quote's PDF is downloaded far more often than what it shows changes:
a sent (or decided…) quote's download is rendered once for each state of its document and stored
(QuoteDocument), keyed by the SHA-256 of the HTML it is rendered from (so each language is stored
apart); a draft's preview is always rendered live.

Functions take model objects, never a request; storing a PDF flushes and the caller commits.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import date
from typing import Any

import facturx
import weasyprint
from babel import dates as babel_dates
from flask_babel import force_locale
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .config import BASE_DIR
from .dates import billing_period_bounds, paris_today, period_bounds
from .extensions import db
from .facturx_xml import cii_xml
from .i18n import DEFAULT_LANGUAGE, current_language, gettext, ngettext_raw
from .i18n import lazy_gettext as _l
from .models import (
    BillingMode,
    Invoice,
    InvoiceDocument,
    InvoiceKind,
    InvoiceStatus,
    PaymentProvider,
    Quote,
    QuoteDocument,
    QuoteStatus,
    TermsVersion,
    utcnow,
)
from .money import format_amount_for_reader
from .seller import MANDATORY_SELLER_FIELDS, current_terms, seller_settings

TEMPLATES_DIR = BASE_DIR / "templates" / "documents"
FACTURX_LEVEL = "en16931"

OPERATION_CATEGORIES = {
    "services": "Prestation de services",
    "goods": "Livraison de biens",
    "mixed": "Mixte",
}
# Printed on quotes, which follow the reader's language.
BILLING_MODES = {
    BillingMode.PER_ORDER: _l("Facturation à la commande"),
    BillingMode.MONTHLY: _l("Facturation consolidée mensuelle"),
}
QUOTE_STATUSES = {
    QuoteStatus.DRAFT: _l("Brouillon (sans valeur contractuelle)"),
    QuoteStatus.SENT: _l("En attente de décision"),
    QuoteStatus.ACCEPTED: _l("Accepté"),
    QuoteStatus.REFUSED: _l("Refusé"),
    QuoteStatus.EXPIRED: _l("Expiré"),
    QuoteStatus.CANCELLED: _l("Annulé"),
    QuoteStatus.SUPERSEDED: _l("Remplacé par une révision"),
}
# How a paid invoice says it was settled: « réglée par carte », « réglée par virement ».
PAYMENT_MEANS = {PaymentProvider.STRIPE: "carte", PaymentProvider.BANK_TRANSFER: "virement"}
RECOVERY_INDEMNITY = "40 €"  # Code de commerce, art. L441-10 and D441-5
SELLER_KEYS = (*MANDATORY_SELLER_FIELDS, "address_line2", "country", "email", "phone", "iban", "bic")
BUYER_KEYS = (
    "name",
    "legal_form",
    "siren",
    "vat_number",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "country",
)


# --- Formatting (French; a quote's in the reader's language) ------------------------------------


def format_date(value: date | None) -> str:
    """A calendar date as 31/01/2026."""
    return value.strftime("%d/%m/%Y") if value else "—"


def format_date_for_reader(value: date | None) -> str:
    """A calendar date as the language being rendered writes it: 31/01/2026 in French, 31 Jan 2026
    in English (never 01/31 or 31/01, which English readers read two ways)."""
    if current_language() == "fr" or value is None:
        return format_date(value)
    return babel_dates.format_date(value, "d MMM y", locale=current_language())


def format_rate(vat_rate_bp: int) -> str:
    """A VAT rate in basis points as French text: 2000 → 20 %, 550 → 5,5 %."""
    units, hundredths = divmod(vat_rate_bp, 100)
    text = f"{units},{hundredths:02d}".rstrip("0").rstrip(",")
    return f"{text}\u00a0%"


def format_period(period: str) -> str:
    """A billing period 2026-03 as 'mars 2026'."""
    return babel_dates.format_date(period_bounds(period)[0], "MMMM y", locale="fr_FR")


def format_iban(iban: str) -> str:
    """An IBAN in groups of four, as printed on a RIB."""
    compact = "".join(iban.split())
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # The app's catalogue, looked up once per request and locale (the locale forced, if any).
    env.install_gettext_callables(gettext=gettext, ngettext=ngettext_raw, newstyle=True)
    env.filters.update(
        amount=format_amount_for_reader,
        rate=format_rate,
        date=format_date_for_reader,
        period=format_period,
        iban=format_iban,
        paris_date=paris_today,
    )
    return env


_env = _environment()


def _render_pdf(template: str, *, pdf_variant: str | None = None, **context: Any) -> bytes:
    return html_to_pdf(_env.get_template(template).render(**context), pdf_variant=pdf_variant)


def html_to_pdf(html: str, *, pdf_variant: str | None = None) -> bytes:
    """WeasyPrint's PDF of a document's HTML: the costly step (a quote: ~1 s, its HTML ~3 ms)."""
    # Documents are self-contained (CSS inlined): nothing is ever fetched while rendering.
    fetcher = weasyprint.URLFetcher(allowed_protocols=())
    return weasyprint.HTML(string=html, base_url=str(TEMPLATES_DIR), url_fetcher=fetcher).write_pdf(
        pdf_variant=pdf_variant
    )


def vat_breakdown(lines: list[Any]) -> list[dict[str, int]]:
    """Basis and VAT per rate, summed from the lines (VAT is rounded per line, see money.vat_cents)."""
    groups: dict[int, dict[str, int]] = defaultdict(lambda: {"basis": 0, "vat": 0})
    for line in lines:
        groups[line.vat_rate_bp]["basis"] += line.total_ht_cents
        groups[line.vat_rate_bp]["vat"] += line.total_vat_cents
    return [{"rate_bp": rate, **groups[rate]} for rate in sorted(groups, reverse=True)]


# --- Quotes -----------------------------------------------------------------------------------


def quote_terms(quote: Quote) -> TermsVersion | None:
    """The CGV a quote is under: the decided version, else the one in force now."""
    if quote.decision is not None:
        return quote.decision.terms_version
    return current_terms()


def quote_pdf(quote: Quote) -> bytes:
    """The PDF of a quote, rendered now; stores nothing (email attachments)."""
    return html_to_pdf(_quote_html(quote))


def stored_quote_pdf(quote: Quote) -> bytes:
    """The PDF a download serves: a draft's rendered now; any other quote's rendered once for each
    state of its document, stored and served from then on; flushes."""
    html = _quote_html(quote)
    if quote.status == QuoteStatus.DRAFT:
        return html_to_pdf(html)
    # The key is the document's HTML itself: the quote's status and dates, the CGV it is under, and
    # the live seller and client details it prints (or a template changed by a deployment) each
    # make another document; nothing else does. Rendering the HTML costs under 1 % of the PDF.
    state_key = hashlib.sha256(html.encode()).hexdigest()
    stored = _stored_quote_pdf(quote.id, state_key)
    if stored is not None:
        return stored
    pdf = html_to_pdf(html)
    # Write-once even against a concurrent first download: the unique (quote_id, state_key) keeps
    # whichever row is stored first (PostgreSQL waits for that transaction), and both serve it.
    builder = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.session.execute(
        builder(QuoteDocument)
        .values(quote_id=quote.id, state_key=state_key, pdf=pdf,
                pdf_sha256=hashlib.sha256(pdf).hexdigest(), created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["quote_id", "state_key"])
    )
    return _stored_quote_pdf(quote.id, state_key)


def _stored_quote_pdf(quote_id: int, state_key: str) -> bytes | None:
    return db.session.scalar(
        select(QuoteDocument.pdf).where(QuoteDocument.quote_id == quote_id,
                                        QuoteDocument.state_key == state_key)
    )


def _quote_html(quote: Quote) -> str:
    mode = quote.billing_mode or quote.organisation.billing_mode
    return _env.get_template("quote.html").render(
        quote=quote,
        seller=seller_settings(),
        organisation=quote.organisation,
        sent_on=paris_today(quote.sent_at) if quote.sent_at else None,
        decided_on=paris_today(quote.decided_at) if quote.decided_at else None,
        language=current_language(),
        status=str(QUOTE_STATUSES[quote.status]),
        billing_mode=str(BILLING_MODES[mode]),
        is_monthly=mode == BillingMode.MONTHLY,
        terms=quote_terms(quote),
        vat_breakdown=vat_breakdown(quote.lines),
        show_credits=quote.total_credits > 0,
    )


# --- Invoices and credit notes ----------------------------------------------------------------


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice's frozen PDF/A-3 (with Factur-X): rendered and stored at first need; flushes."""
    if invoice.pdf is not None:
        return invoice.pdf
    pdf = render_invoice_pdf(invoice)
    # Write-once even against a concurrent first download: whoever stores first wins, and the
    # other serves the stored bytes.
    db.session.execute(
        update(Invoice)
        .where(Invoice.id == invoice.id, Invoice.pdf.is_(None))
        .values(pdf=pdf, pdf_sha256=hashlib.sha256(pdf).hexdigest())
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(invoice, ["pdf", "pdf_sha256"])
    return invoice.pdf


def invoice_download(invoice: Invoice) -> tuple[bytes, str]:
    """The PDF an invoice's download serves, and its file name: a paid invoice's paid rendering,
    else its frozen original; either way the original is stored first (flushes)."""
    original = invoice_pdf(invoice)
    if invoice.status != InvoiceStatus.PAID:
        return original, f"{invoice.number}.pdf"
    return paid_invoice_pdf(invoice), f"{invoice.number}-acquittee.pdf"


PAID_STATE = "paid"


def paid_invoice_pdf(invoice: Invoice) -> bytes:
    """A paid invoice rendered « acquittée le … — réglée par … », with nothing left to pay: rendered
    at its first download, stored (`InvoiceDocument`) and served from then on; flushes.
    `invoice.pdf` stays the original's."""
    stored = _stored_invoice_pdf(invoice.id, PAID_STATE)
    if stored is not None:
        return stored
    pdf = render_invoice_pdf(invoice, paid=True)
    # Write-once against a concurrent first download, as `stored_quote_pdf`.
    builder = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.session.execute(
        builder(InvoiceDocument)
        .values(invoice_id=invoice.id, state_key=PAID_STATE, pdf=pdf,
                pdf_sha256=hashlib.sha256(pdf).hexdigest(), created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["invoice_id", "state_key"])
    )
    return _stored_invoice_pdf(invoice.id, PAID_STATE)


def _stored_invoice_pdf(invoice_id: int, state_key: str) -> bytes | None:
    return db.session.scalar(
        select(InvoiceDocument.pdf).where(InvoiceDocument.invoice_id == invoice_id,
                                          InvoiceDocument.state_key == state_key)
    )


def render_invoice_pdf(invoice: Invoice, *, paid: bool = False) -> bytes:
    """Render an invoice as PDF/A-3b with its Factur-X XML (XSD-checked): its original, or with
    `paid` its paid rendering (refused for an invoice not paid); stores nothing. In French,
    whatever the language of the request or email it is rendered for."""
    with force_locale(DEFAULT_LANGUAGE):
        return _render_invoice_pdf(invoice, paid=paid)


def _render_invoice_pdf(invoice: Invoice, *, paid: bool) -> bytes:
    context = _invoice_context(invoice)
    if paid:
        context["paid"] = payment_receipt(invoice)
    base = _render_pdf("invoice.html", pdf_variant="pdf/a-3b", **context)
    title = f"{_kind_label(invoice)} {invoice.number}"
    subject = f"{title} du {format_date(invoice.issue_date)} — {context['buyer']['name']}"
    if paid:
        subject += f" — acquittée le {format_date(context['paid']['on'])}"
    return facturx.generate_from_binary(
        base,
        cii_xml(invoice, context),
        flavor="factur-x",
        level=FACTURX_LEVEL,
        check_xsd=True,
        pdf_metadata={
            "author": context["seller"]["company_name"],
            "keywords": f"{_kind_label(invoice)}, Factur-X",
            "title": f"{context['seller']['company_name']} : {title}",
            "subject": subject,
        },
        lang="fr-FR",
    )


def facturx_xml(invoice: Invoice) -> bytes:
    """The invoice's Factur-X XML: the one embedded in its stored PDF, else built from its data."""
    if invoice.pdf is not None:
        _, xml = facturx.get_xml_from_pdf(invoice.pdf, check_xsd=False)
        if xml:
            return xml
    return build_facturx_xml(invoice)


def build_facturx_xml(invoice: Invoice) -> bytes:
    """Build the EN 16931 CII XML of an invoice or credit note from its frozen data."""
    return cii_xml(invoice, _invoice_context(invoice))


def payment_receipt(invoice: Invoice) -> dict[str, Any]:
    """When (Paris date) and how (`providers`) a paid invoice was settled, and the mention saying so
    (« Acquittée le 12/05/2026 — réglée par carte »)."""
    if invoice.status != InvoiceStatus.PAID or invoice.paid_at is None:
        raise ValueError(f"{invoice.number} is not paid")
    order = list(PaymentProvider)
    providers = sorted({payment.provider for payment in invoice.payments}, key=order.index)
    paid_on = paris_today(invoice.paid_at)
    mention = f"Acquittée le {format_date(paid_on)}"
    if providers:
        mention += " — réglée par " + " et par ".join(PAYMENT_MEANS[provider] for provider in providers)
    # Paid means paid in full (billing.record_payment takes only the invoice's total).
    return {"on": paid_on, "mention": mention, "providers": providers,
            "amount_cents": invoice.total_ttc_cents}


def _kind_label(invoice: Invoice) -> str:
    return "Avoir" if invoice.kind == InvoiceKind.CREDIT_NOTE else "Facture"


def _covered_quotes(invoice: Invoice) -> list[Quote]:
    ids = {line.quote_id for line in invoice.lines if line.quote_id is not None}
    if not ids:
        return []
    return list(
        db.session.scalars(select(Quote).where(Quote.id.in_(ids)).order_by(Quote.decided_at, Quote.id))
    )


def operation_category(lines: list[Any], seller: dict[str, Any]) -> str:
    """An invoice's « catégorie de l'opération » from what its lines supply: goods, services, or
    mixed when both; for lines issued before each had its kind, the seller's setting frozen with
    the invoice."""
    kinds = {line.supply_kind for line in lines}
    if not kinds or None in kinds:
        return seller.get("operation_category") or "services"
    return "mixed" if len(kinds) > 1 else kinds.pop().value


def _invoice_context(invoice: Invoice) -> dict[str, Any]:
    # Frozen snapshots are read as they are; an optional key absent from an old one reads blank.
    seller = dict.fromkeys(SELLER_KEYS, "") | {"country": "FR"} | invoice.seller
    buyer = dict.fromkeys(BUYER_KEYS, "") | {"country": "FR"} | invoice.buyer
    credited = invoice.credited_invoice
    category = operation_category(invoice.lines, seller)
    period = invoice.billing_period or (credited.billing_period if credited else None)
    return {
        "language": DEFAULT_LANGUAGE,
        "invoice": invoice,
        "is_credit_note": invoice.kind == InvoiceKind.CREDIT_NOTE,
        "title": _kind_label(invoice),
        "seller": seller,
        "buyer": buyer,
        "credited": credited,
        "period": period,
        "period_bounds": billing_period_bounds(period) if period else None,
        "covered_quotes": _covered_quotes(invoice),
        "show_sale_date": invoice.sale_date is not None and invoice.sale_date != invoice.issue_date,
        "operation_category": OPERATION_CATEGORIES.get(category, category),
        "vat_on_debits": seller.get("vat_on_debits") is True,
        "early_payment_discount": seller.get("early_payment_discount") or "néant",
        "late_penalty_rate": seller.get("late_penalty_rate") or "trois fois le taux d'intérêt légal",
        "recovery_indemnity": RECOVERY_INDEMNITY,
        "payment_days": (invoice.due_date - invoice.issue_date).days,
        "vat_breakdown": vat_breakdown(invoice.lines),
        "paid": None,  # the original: what it said at issue, whatever happened since
    }
