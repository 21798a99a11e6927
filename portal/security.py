"""Small request-safety helpers shared by the back office and the client portal."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_next_url(candidate: str | None, fallback: str) -> str:
    """`candidate` if it is a path on this site, else `fallback` (no open redirect)."""
    if not candidate:
        return fallback
    candidate = candidate.strip()
    parts = urlsplit(candidate)
    if (parts.scheme or parts.netloc or not candidate.startswith("/")
            or candidate.startswith("//") or "\\" in candidate):
        return fallback
    return candidate
