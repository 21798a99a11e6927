"""Amounts: integer cents, VAT rounded per line, and their French display."""

from __future__ import annotations


def vat_cents(total_ht_cents: int, vat_rate_bp: int) -> int:
    """VAT of one line, rounded half up to the cent."""
    return (total_ht_cents * vat_rate_bp + 5000) // 10000


def format_amount(cents: int) -> str:
    """French display of an amount: 1 234,50 €."""
    euros, rest = divmod(abs(cents), 100)
    grouped = f"{euros:,}".replace(",", "\u202f")
    return f"{'-' if cents < 0 else ''}{grouped},{rest:02d}\u00a0€"
