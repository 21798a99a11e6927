"""Benchmark of invoice documents: one PDF/A-3 with its Factur-X XML, then 100 in a row.

Runs the real code (quotes accepted per order, hence invoiced; `documents.invoice_pdf` renders,
checks the XML against the XSD and stores the PDF; one commit per invoice, as a download would)
on a temporary SQLite database. Usage, from the repository root:

    .venv/bin/python -m bench.bench_documents [--count 100] [--samples 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from portal import create_app, documents, quotes
from portal.config import Config
from portal.extensions import db
from portal.models import (
    BillingMode,
    Channel,
    ClientRole,
    Invoice,
    Organisation,
    Product,
    SellerSettings,
    StaffRole,
    TermsVersion,
    User,
    UserKind,
)
from portal.quotes import LineInput

NOW = datetime(2026, 3, 2, 9)


def _seed(count: int) -> list[int]:
    """Seller settings, a CGV, one organisation and `count` accepted per-order quotes."""
    db.session.add(
        SellerSettings(
            id=1,
            company_name="Vendeur Bench",
            legal_form="SAS",
            share_capital="10 000 €",
            address_line1="1 rue du Banc",
            postal_code="75001",
            city="Paris",
            siren="123456789",
            rcs_city="Paris",
            vat_number="FR32123456789",
            iban="FR7630006000011234567890189",
            bic="AGRIFRPP",
            email="facturation@vendeur.test",
        )
    )
    staff = User(
        email="staff@vendeur.test",
        full_name="Équipe commerciale",
        kind=UserKind.STAFF,
        staff_role=StaffRole.ADMIN,
    )
    org = Organisation(
        name="Client Bench SARL",
        legal_form="SARL",
        siren="987654321",
        vat_number="FR12987654321",
        address_line1="2 avenue du Client",
        postal_code="69001",
        city="Lyon",
        billing_mode=BillingMode.PER_ORDER,
    )
    manager = User(
        email="client@example.test",
        full_name="Gestionnaire",
        kind=UserKind.CLIENT,
        client_role=ClientRole.GESTIONNAIRE,
        organisation=org,
    )
    products = [
        Product(
            sku=f"SKU-{n}",
            name=f"Pack de crédits n° {n}",
            unit_price_cents=9990 + n,
            vat_rate_bp=rate,
            credits_per_unit=10,
        )
        for n, rate in enumerate((2000, 2000, 1000, 550, 0), start=1)
    ]
    terms = TermsVersion(version_label="2026-01", body="Conditions Générales de Vente du banc.")
    db.session.add_all([staff, org, manager, terms, *products])
    db.session.flush()
    quotes.publish_terms(terms, actor=staff, now=NOW)
    invoice_ids = []
    for n in range(count):
        lines = [
            LineInput(product_id=product.id, quantity=1 + (n + i) % 4)
            for i, product in enumerate(products[: 1 + n % len(products)])
        ]
        quote = quotes.create_draft(organisation=org, actor=staff, recipient=manager, lines=lines)
        quotes.send(quote, actor=staff, now=NOW)
        quotes.accept(quote, actor=manager, terms_version=terms, channel=Channel.PORTAL, now=NOW)
        invoice_ids.append(db.session.scalar(db.select(Invoice.id).where(Invoice.quote_id == quote.id)))
    db.session.commit()
    return invoice_ids


def _download(invoice_id: int) -> int:
    """What a first download does: load the invoice, render and store its PDF, commit."""
    invoice = db.session.get(Invoice, invoice_id)
    size = len(documents.invoice_pdf(invoice))
    db.session.commit()
    db.session.expunge_all()
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="invoices rendered in a row")
    parser.add_argument("--samples", type=int, default=15, help="single renders for the median")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-documents-") as tmp:
        config = type(
            "BenchConfig",
            (Config,),
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{Path(tmp) / 'bench.db'}",
                "MAIL_SERVER": None,
                "MAIL_OUTBOX_DIR": str(Path(tmp) / "mail"),
            },
        )
        app = create_app(config)
        with app.app_context():
            db.create_all()
            invoice_ids = _seed(1 + args.samples + args.count)
            warmup, samples, batch = (
                invoice_ids[0],
                invoice_ids[1 : 1 + args.samples],
                invoice_ids[1 + args.samples :],
            )

            started = time.perf_counter()
            _download(warmup)  # loads fonts and templates: paid once per process
            cold = time.perf_counter() - started

            timings, sizes = [], []
            for invoice_id in samples:
                started = time.perf_counter()
                sizes.append(_download(invoice_id))
                timings.append(time.perf_counter() - started)

            started = time.perf_counter()
            for invoice_id in batch:
                _download(invoice_id)
            total = time.perf_counter() - started
            db.session.remove()
            db.engine.dispose()

    median = statistics.median(timings)
    rows = [
        ("premier rendu (à froid)", f"{cold * 1000:.1f} ms"),
        (
            f"médiane sur {len(timings)} rendus",
            f"{median * 1000:.1f} ms (min {min(timings) * 1000:.1f}, max {max(timings) * 1000:.1f})",
        ),
        (f"{len(batch)} factures à la suite", f"{total:.2f} s ({len(batch) / total:.1f} factures/s)"),
        ("taille médiane d'un PDF", f"{statistics.median(sizes) / 1024:.1f} Kio"),
    ]
    print("Documents : facture PDF/A-3b + Factur-X EN 16931 (XSD vérifié), SQLite temporaire")
    for label, value in rows:
        print(f"  {label:<32} {value}")


if __name__ == "__main__":
    main()
