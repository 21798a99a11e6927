"""Finding organisations from the back office's search bar: by name, SIREN/SIRET, a member's
email, or a quote or invoice number."""

from __future__ import annotations

import re
from functools import cache

from sqlalchemy import Row, Select, String, bindparam, column, func, select, table

from .extensions import db
from .models import Invoice, Organisation, Quote, User
from .schema_guards import ORGANISATION_NAME_SEARCH

# Numbers have at least five digits (DV-2026-00012), more past 99,999 in a year.
DOCUMENT_NUMBER = re.compile(r"^(DV|FA|AV)-\d{4}-\d{1,9}(-R\d+)?$", re.IGNORECASE)
DIGITS = re.compile(r"^\d{9}(\d{5})?$")
# The tables, not the mapped classes: a search reads plain rows, and a statement on tables alone
# skips the ORM's part of each execution (a sixth of the search statement's time on PostgreSQL).
ORGANISATION, QUOTE, INVOICE, USER = (model.__table__ for model in (Organisation, Quote, Invoice, User))
# What a result shows: a search lists up to 20 organisations, not their 28 columns each.
HIT_COLUMNS = (ORGANISATION.c.id, ORGANISATION.c.name, ORGANISATION.c.siren, ORGANISATION.c.city,
               ORGANISATION.c.billing_mode)
# SQLite's FTS5 table of names (see schema_guards.ORGANISATION_NAME_SEARCH); rowid is the organisation's id.
NAME_SEARCH = table(ORGANISATION_NAME_SEARCH, column("rowid"), column("name"))
TRIGRAM = 3


def search_organisations(query: str, *, limit: int = 20) -> list[Row]:
    """Organisations matching `query`, best matches first, as rows of HIT_COLUMNS; empty for an
    empty query."""
    text = " ".join((query or "").split())
    if len(text) < 2:
        return []
    kind, parameters = _search_kind(text)
    return list(db.session.execute(_search_statement(kind, _dialect(), limit), parameters))


def organisation_ids_named(query: str, *, limit: int | None = None
                           ) -> tuple[Select, dict[str, str]] | None:
    """The statement of the ids of the organisations whose name contains `query` (up to `limit`),
    and its parameters; None for an empty query."""
    text = " ".join((query or "").split())
    if not text:
        return None
    kind, parameters = _name_kind(text)
    return _named_statement(kind, _dialect(), limit), parameters


# Each kind of search is one statement, built once with its parameters left open: building a
# statement and its cache key took longer than running it.

def _search_kind(text: str) -> tuple[str, dict[str, str]]:
    """Which statement serves `text`, and its parameters."""
    compact = text.replace(" ", "")
    if DOCUMENT_NUMBER.match(text):
        number = text.upper().split("-R")[0]
        return ("quote-number" if number.startswith("DV") else "invoice-number"), {"number": number}
    if DIGITS.match(compact):
        return ("siren" if len(compact) == 9 else "siret"), {"number": compact}
    if "@" in text:
        return "email", {"email": text.lower()}
    kind, parameters = _name_kind(text)
    return f"name-{kind}", parameters


def _name_kind(text: str) -> tuple[str, dict[str, str]]:
    """How a name is searched for (see _name_condition), and its parameters. The pattern is
    lowered here, for the non-ASCII letters neither ILIKE nor SQLite's LIKE folds."""
    lowered = text.lower()
    parameters = {"pattern": f"%{_escape_like(lowered)}%"}
    if len(lowered) < TRIGRAM or lowered != _escape_like(lowered):
        # Fewer letters than a trigram, or a LIKE wildcard typed: the FTS table would read every name.
        return "like", parameters
    return "trigram", {**parameters, "trigram_pattern": f"%{lowered}%"}


def _dialect() -> str:
    return db.session.get_bind().dialect.name


@cache
def _search_statement(kind: str, dialect: str, limit: int) -> Select:
    hits = select(*HIT_COLUMNS)
    if kind == "quote-number":
        owners = select(QUOTE.c.organisation_id).where(QUOTE.c.number == bindparam("number"))
    elif kind == "invoice-number":
        owners = select(INVOICE.c.organisation_id).where(INVOICE.c.number == bindparam("number"))
    elif kind == "email":
        owners = select(USER.c.organisation_id).where(USER.c.email == bindparam("email"))
    elif kind in ("siren", "siret"):
        number = ORGANISATION.c.siren if kind == "siren" else ORGANISATION.c.siret
        return hits.where(number == bindparam("number")).order_by(ORGANISATION.c.name).limit(limit)
    else:
        return (hits.where(_name_condition(kind.removeprefix("name-"), dialect))
                .order_by(func.lower(ORGANISATION.c.name)).limit(limit))
    return hits.where(ORGANISATION.c.id.in_(owners)).order_by(ORGANISATION.c.name).limit(limit)


@cache
def _named_statement(kind: str, dialect: str, limit: int | None) -> Select:
    return select(ORGANISATION.c.id).where(_name_condition(kind, dialect)).limit(limit)


def _name_condition(kind: str, dialect: str):
    """ILIKE on PostgreSQL, which its trigram index serves (lower(name) LIKE would scan every row).
    On SQLite, a plain LIKE: it ignores ASCII case, and SQLite's lower() folds nothing more, so
    the matches are the same without calling lower() on every name (2.5 times faster); from three
    letters on, only on the candidates of the trigram FTS table."""
    pattern = bindparam("pattern", type_=String)
    if dialect != "sqlite":
        # Backslash is PostgreSQL's escape character already; an ESCAPE clause would be evaluated
        # (like_escape) on every row the trigram index hands over, once the statement is prepared.
        return ORGANISATION.c.name.ilike(pattern)
    contains = ORGANISATION.c.name.like(pattern, escape="\\")
    if kind == "like":
        return contains
    # The FTS table finds the candidates (its trigrams fold case beyond ASCII, so they include
    # every LIKE match); LIKE, on those few, keeps the matches exactly those of the plain search.
    candidates = select(NAME_SEARCH.c.rowid).where(
        NAME_SEARCH.c.name.like(bindparam("trigram_pattern", type_=String)))
    return ORGANISATION.c.id.in_(candidates) & contains


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
