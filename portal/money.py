"""Amounts: integer cents, VAT rounded per line, and their French display (English for the emails
and quotes of an English-speaking reader)."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency

from .i18n import current_language


def vat_cents(total_ht_cents: int, vat_rate_bp: int) -> int:
    """VAT of one line, rounded half up to the cent."""
    return (total_ht_cents * vat_rate_bp + 5000) // 10000


def format_amount(cents: int) -> str:
    """French display of an amount: 1 234,50 €."""
    euros, rest = divmod(abs(cents), 100)
    grouped = f"{euros:,}".replace(",", "\u202f")
    return f"{'-' if cents < 0 else ''}{grouped},{rest:02d}\u00a0€"


def format_amount_for_reader(cents: int) -> str:
    """An amount as the language being rendered writes it: 1 234,50 € in French, €1,234.50 in
    English (emails and quotes in the recipient's language; pages keep the French display)."""
    if current_language() == "fr":
        return format_amount(cents)
    return format_currency(Decimal(cents) / 100, "EUR", locale=current_language())
