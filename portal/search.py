"""Finding organisations from the back office's search bar: by name, SIREN/SIRET, a member's
email, or a quote or invoice number."""

from __future__ import annotations

import re

from sqlalchemy import Row, Select, column, func, select, table

from .extensions import db
from .models import ORGANISATION_NAME_SEARCH, Invoice, Organisation, Quote, User

# Numbers have at least five digits (DV-2026-00012), more past 99,999 in a year.
DOCUMENT_NUMBER = re.compile(r"^(DV|FA|AV)-\d{4}-\d{1,9}(-R\d+)?$", re.IGNORECASE)
DIGITS = re.compile(r"^\d{9}(\d{5})?$")
# What a result shows: a search lists up to 20 organisations, not their 28 columns each.
HIT_COLUMNS = (Organisation.id, Organisation.name, Organisation.siren, Organisation.city,
               Organisation.billing_mode)
# SQLite's FTS5 table of names (see models.ORGANISATION_NAME_SEARCH); rowid is the organisation's id.
NAME_SEARCH = table(ORGANISATION_NAME_SEARCH, column("rowid"), column("name"))
TRIGRAM = 3


def search_organisations(query: str, *, limit: int = 20) -> list[Row]:
    """Organisations matching `query`, best matches first, as rows of HIT_COLUMNS; empty for an
    empty query."""
    text = " ".join((query or "").split())
    if len(text) < 2:
        return []
    return list(db.session.execute(_search_statement(text).limit(limit)))


def _search_statement(text: str) -> Select:
    compact = text.replace(" ", "")
    hits = select(*HIT_COLUMNS)
    if DOCUMENT_NUMBER.match(text):
        return hits.where(Organisation.id.in_(_owners_of_document(text.upper()))).order_by(Organisation.name)
    if DIGITS.match(compact):
        number = Organisation.siren if len(compact) == 9 else Organisation.siret
        return hits.where(number == compact).order_by(Organisation.name)
    if "@" in text:
        members = select(User.organisation_id).where(User.email == text.lower())
        return hits.where(Organisation.id.in_(members)).order_by(Organisation.name)
    return hits.where(_name_contains(text)).order_by(func.lower(Organisation.name))


def organisation_ids_named(query: str) -> Select | None:
    """Ids of the organisations whose name contains `query` (None for an empty query)."""
    text = " ".join((query or "").split())
    if not text:
        return None
    return select(Organisation.id).where(_name_contains(text))


def _name_contains(text: str):
    """ILIKE, which PostgreSQL's trigram index serves (lower(name) LIKE would scan every row).
    On SQLite, a plain LIKE: it ignores ASCII case, and SQLite's lower() folds nothing more, so
    the matches are the same without calling lower() on every name (2.5 times faster); from three
    letters on, only on the candidates of the trigram FTS table. The pattern is lowered here, for
    the non-ASCII letters neither folds."""
    lowered = text.lower()
    pattern = f"%{_escape_like(lowered)}%"
    if db.session.get_bind().dialect.name != "sqlite":
        return Organisation.name.ilike(pattern, escape="\\")
    contains = Organisation.name.like(pattern, escape="\\")
    if len(lowered) < TRIGRAM or lowered != _escape_like(lowered):
        # Fewer letters than a trigram, or a LIKE wildcard typed: the FTS table would read every name.
        return contains
    # The FTS table finds the candidates (its trigrams fold case beyond ASCII, so they include
    # every LIKE match); LIKE, on those few, keeps the matches exactly those of the plain search.
    candidates = select(NAME_SEARCH.c.rowid).where(NAME_SEARCH.c.name.like(f"%{lowered}%"))
    return Organisation.id.in_(candidates) & contains


def _owners_of_document(number: str) -> Select:
    base = number.split("-R")[0]
    if base.startswith("DV"):
        return select(Quote.organisation_id).where(Quote.number == base)
    return select(Invoice.organisation_id).where(Invoice.number == base)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
