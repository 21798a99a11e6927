"""Small request-safety helpers shared by the back office and the client portal."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_next_url(candidate: str | None, fallback: str) -> str:
    """`candidate` if it is a path on this site, else `fallback` (no open redirect). Control
    characters are refused: browsers drop a tab or newline inside a URL, turning "/<tab>/host"
    into "//host"."""
    if not candidate:
        return fallback
    candidate = candidate.strip()
    try:
        parts = urlsplit(candidate)
    except ValueError:  # "//[": a host with an unclosed IPv6 bracket
        return fallback
    if (parts.scheme or parts.netloc or not candidate.startswith("/")
            or candidate.startswith("//") or "\\" in candidate
            or any(ord(char) < 32 or ord(char) == 127 for char in candidate)):
        return fallback
    return candidate
