"""How the platform writes counts, amounts and times in French."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def credits(count: int) -> str:
    """« 1 crédit », « 5 crédits »: French puts 0 and 1 in the singular."""
    return f"{count} crédit{'s' if abs(count) > 1 else ''}"


def euros(cents: int) -> str:
    """« 1 234,50 € » (a narrow no-break space between thousands, as the portal writes them)."""
    whole, rest = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{whole:,}".replace(",", "\u202f") + f",{rest:02d}\u00a0€"


def paris_time(unix_time: int) -> str:
    """« 14/03/2026 09:05 », Paris time."""
    return datetime.fromtimestamp(unix_time, PARIS).strftime("%d/%m/%Y %H:%M")
