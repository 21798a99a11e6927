"""The back office's search bar: organisations by name (accents and case aside), SIREN/SIRET, a
member's email or email domain, or the number of one of their quotes or invoices, whole or its
start; and the quotes and invoices a number names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from sqlalchemy import (
    Integer,
    Row,
    Select,
    String,
    and_,
    any_,
    bindparam,
    cast,
    column,
    func,
    literal,
    select,
    table,
    true,
    union_all,
)

from .billing import CREDIT_NOTE_SERIES, INVOICE_SERIES, QUOTE_SERIES
from .extensions import db
from .models import Invoice, NumberCounter, Organisation, Quote, User, fold_for_search
from .schema_guards import ORGANISATION_NAME_SEARCH

# A whole number: DV-2026-00012 (five digits, more past 99,999 in a year), a quote's revision after it.
WHOLE_NUMBER = re.compile(r"^(DV|FA|AV)-(\d{4})-(\d{5,9})(?:-R(\d{1,4}))?$")
# The start of one: DV-2026-0001, DV-2026, FA-2026-, 2026-0001 (the year and a dash: any series).
NUMBER_START = re.compile(r"^(?:(DV|FA|AV)-(\d{4})(?:-(\d{0,9}))?|(\d{4})-(\d{0,9}))$")
# Digits alone, other than a SIREN or SIRET: the start of a number's sequence, in any series and
# year (00012), or a name's digits (Remise 100 %).
SEQUENCE_DIGITS = re.compile(r"^\d{2,8}$")
DIGITS = re.compile(r"^\d{9}(\d{5})?$")
DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")
# The tables, not the mapped classes: a search reads plain rows, and a statement on tables alone
# skips the ORM's part of each execution (a sixth of the search statement's time on PostgreSQL).
ORGANISATION, QUOTE, INVOICE, USER, COUNTER = (
    model.__table__ for model in (Organisation, Quote, Invoice, User, NumberCounter))
# What a result shows: a search lists up to 20 organisations, not their 28 columns each.
HIT_COLUMNS = (ORGANISATION.c.id, ORGANISATION.c.name, ORGANISATION.c.siren, ORGANISATION.c.city,
               ORGANISATION.c.billing_mode)
# SQLite's FTS5 table of folded names (see schema_guards.ORGANISATION_NAME_SEARCH); rowid is the
# organisation's id.
NAME_SEARCH = table(ORGANISATION_NAME_SEARCH, column("rowid"), column("folded_name"))
TRIGRAM = 3
# How many documents a number's start reads, at most, to find their organisations: "DV-2026"
# names every quote of the year.
DOCUMENTS_READ = 500
# Sorts after every digit, in byte order (SQLite, PostgreSQL's C collations) and in the linguistic
# ones (letters after digits; checked with ICU's): a number starting with P lies in [P, P + "Z").
AFTER_DIGITS = "Z"


@dataclass(frozen=True)
class NumberStart:
    """What a whole or partial number names: a series (None: any), a year (None: any), the start
    of the sequence, and a quote's revision (whole numbers only)."""

    series: str | None
    year: int | None
    sequence: str
    revision: int | None = None

    @property
    def sides(self) -> tuple[str, ...]:
        """The tables holding such numbers: "quote", "invoice" (invoices and credit notes)."""
        if self.series is None:
            return ("quote", "invoice")
        return ("quote",) if self.series == QUOTE_SERIES else ("invoice",)

    @property
    def parameters(self) -> dict:
        given = {"series": self.series, "year": self.year, "revision": self.revision}
        return {"sequence": self.sequence, **{name: value for name, value in given.items()
                                              if value is not None}}

    @property
    def shape(self) -> tuple:
        """What the statement depends on (its values are parameters)."""
        return self.sides, self.series is not None, self.year is not None


def search_organisations(query: str, *, limit: int = 20) -> list[Row]:
    """Organisations matching `query`, best matches first, as rows of HIT_COLUMNS; empty for an
    empty query."""
    text = " ".join((query or "").split())
    if len(text) < 2 or limit < 1:
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


def find_document(query: str) -> Row | None:
    """The quote or invoice (credit note) whose whole number `query` is, as a row of kind ("quote",
    "invoice", "credit_note"), id, number, revision and organisation_name; a number without its
    revision names the quote's latest. None for anything else."""
    number = whole_number(query)
    if number is None:
        return None
    statement = _document_statement(number.sides[0], number.revision is not None)
    parameters = {"number": f"{number.series}-{number.year}-{number.sequence}"}
    if number.revision is not None:
        parameters["revision"] = number.revision
    return db.session.execute(statement, parameters).first()


def documents_numbered(query: str, *, limit: int = 10) -> list[Row]:
    """The quotes and invoices whose number starts as `query` does (a whole number: its quote's
    revisions, or the one revision given), in number order, as rows like find_document's; empty
    when `query` is no number."""
    text = "".join((query or "").split()).upper()
    whole = whole_number(text)
    if whole is not None and whole.revision is not None:
        found = find_document(text)
        return [found] if found else []
    number = whole or _number_start(text) or (
        NumberStart(None, None, text) if SEQUENCE_DIGITS.match(text) else None)
    if number is None:
        return []
    return list(db.session.execute(_documents_statement(number.shape, _dialect(), limit),
                                   number.parameters))


def whole_number(text: str) -> NumberStart | None:
    """The parts of a whole quote or invoice number (any case, spaces aside), or None."""
    match = WHOLE_NUMBER.match("".join((text or "").split()).upper())
    if not match:
        return None
    series, year, sequence, revision = match.groups()
    return NumberStart(series, int(year), sequence, int(revision) if revision else None)


def _number_start(compact: str) -> NumberStart | None:
    """The parts of the start of a number (uppercase, without spaces), or None."""
    match = NUMBER_START.match(compact)
    if not match:
        return None
    series, year, sequence, any_series_year, any_series_sequence = match.groups()
    if series:
        return NumberStart(series, int(year), sequence or "")
    return NumberStart(None, int(any_series_year), any_series_sequence)


# Each kind of search is one statement, built once with its parameters left open: building a
# statement and its cache key took longer than running it.

def _search_kind(text: str) -> tuple[tuple, dict]:
    """Which statement serves `text`, and its parameters: the statement's kind is (what is
    searched, how: a number's shape, and the name's kind when the name is searched as well)."""
    compact = text.replace(" ", "")
    if DIGITS.match(compact):
        return ("siren" if len(compact) == 9 else "siret", None, None), {"number": compact}
    number = whole_number(compact) or _number_start(compact.upper())
    if number is not None:
        return ("number", number.shape, None), number.parameters
    lowered = compact.lower()
    local, at, domain = lowered.rpartition("@")
    if at and local:
        return ("email", None, None), {"email": lowered}
    if at and DOMAIN.match(domain):
        return ("domain", None, None), {"domain": domain}
    name_kind, name_parameters = _name_kind(text)
    if DOMAIN.match(lowered):  # lefevre-associes.fr: a domain, or part of a name
        return ("domain", None, name_kind), {"domain": lowered, **name_parameters}
    if SEQUENCE_DIGITS.match(compact):  # 00012: the start of a sequence, or digits of a name
        digits = NumberStart(None, None, compact)
        return ("number", digits.shape, name_kind), {**digits.parameters, **name_parameters}
    return ("name", None, name_kind), name_parameters


def _name_kind(text: str) -> tuple[str, dict[str, str]]:
    """How a name is searched for (see _name_condition), and its parameters: the text folded as
    the stored names are (Organisation.folded_name)."""
    folded = fold_for_search(text)
    parameters = {"pattern": f"%{_escape_like(folded)}%"}
    if len(folded) < TRIGRAM or folded != _escape_like(folded):
        # Fewer letters than a trigram, or a LIKE wildcard typed: the FTS table would read every name.
        return "like", parameters
    return "trigram", {**parameters, "trigram_pattern": f"%{folded}%"}


def _dialect() -> str:
    return db.session.get_bind().dialect.name


@cache
def _search_statement(kind: tuple, dialect: str, limit: int) -> Select:
    searched, shape, name_kind = kind
    hits = select(*HIT_COLUMNS)
    if searched in ("siren", "siret"):
        number = ORGANISATION.c.siren if searched == "siren" else ORGANISATION.c.siret
        return hits.where(number == bindparam("number")).order_by(ORGANISATION.c.name).limit(limit)
    if searched == "name":
        return (hits.where(_name_condition(name_kind, dialect))
                .order_by(ORGANISATION.c.folded_name).limit(limit))
    if searched == "email":
        owners = [select(USER.c.organisation_id).where(USER.c.email == bindparam("email"))]
    elif searched == "domain":
        owners = [select(USER.c.organisation_id).where(USER.c.email_domain == bindparam("domain"))]
    else:
        owners = [_owners(side, shape, dialect) for side in shape[0]]
    if name_kind is not None:
        owners.append(select(ORGANISATION.c.id).where(_name_condition(name_kind, dialect)))
    found = owners[0] if len(owners) == 1 else union_all(*owners)
    if dialect == "postgresql":
        # An array of the ids, each looked up by the primary key: as IN (subquery), PostgreSQL
        # merged them with the whole primary key index (4 ms at 50,000 organisations).
        owned = ORGANISATION.c.id == any_(func.array(found.scalar_subquery()))
    else:
        owned = ORGANISATION.c.id.in_(found)
    return hits.where(owned).order_by(ORGANISATION.c.folded_name).limit(limit)


@cache
def _named_statement(kind: str, dialect: str, limit: int | None) -> Select:
    return select(ORGANISATION.c.id).where(_name_condition(kind, dialect)).limit(limit)


def _name_condition(kind: str, dialect: str):
    """LIKE on the folded names: PostgreSQL's trigram index serves it. On SQLite (whose LIKE
    ignores ASCII case, which folded names and patterns no longer have), from three letters on,
    only on the candidates of the trigram FTS table."""
    pattern = bindparam("pattern", type_=String)
    if dialect != "sqlite":
        # Backslash is PostgreSQL's escape character already; an ESCAPE clause would be evaluated
        # (like_escape) on every row the trigram index hands over, once the statement is prepared.
        return ORGANISATION.c.folded_name.like(pattern)
    contains = ORGANISATION.c.folded_name.like(pattern, escape="\\")
    if kind == "like":
        return contains
    # The FTS table finds the candidates (every LIKE match among them); LIKE, on those few, keeps
    # the matches exactly those of the plain search.
    candidates = select(NAME_SEARCH.c.rowid).where(
        NAME_SEARCH.c.folded_name.like(bindparam("trigram_pattern", type_=String)))
    return ORGANISATION.c.id.in_(candidates) & contains


# --- Numbers ------------------------------------------------------------------------------------
# A number's start is looked up as a range of the number's index, [start, start + "Z"), for each
# (series, year) of the numbering counters, from which every number was taken (billing.next_numbers):
# the counters say which series and years exist, the index finds their numbers. A range, not
# LIKE 'start%': PostgreSQL uses an index for a LIKE prefix only in the C collation.

def _numbered(side: str, shape: tuple, dialect: str, count: int) -> Select:
    """Up to `count` documents of `side` ("quote", "invoice": invoices and credit notes) whose
    number starts with the parameters' series, year and sequence, in number order, as rows of
    kind, id, number, revision and organisation_id."""
    _sides, by_series, by_year = shape
    document = QUOTE if side == "quote" else INVOICE
    start = (COUNTER.c.series + "-" + cast(COUNTER.c.year, String) + "-"
             + bindparam("sequence", type_=String))
    in_range = and_(document.c.number >= start, document.c.number < start + AFTER_DIGITS)
    columns = (
        (literal("quote", String) if side == "quote" else cast(INVOICE.c.kind, String)).label("kind"),
        document.c.id, document.c.number,
        (QUOTE.c.revision if side == "quote" else literal(1, Integer)).label("revision"),
        document.c.organisation_id)
    order = (document.c.number, QUOTE.c.revision) if side == "quote" else (document.c.number,)
    counters = [COUNTER.c.series == bindparam("series") if by_series
                else COUNTER.c.series.in_(_series_of(side))]
    if by_year:
        counters.append(COUNTER.c.year == bindparam("year", type_=Integer))
    if dialect == "postgresql":
        # Each counter's range read through the index by a lateral subquery: joined to the
        # counters, PostgreSQL walked the whole number index in order (for ORDER BY … LIMIT),
        # testing the join on each of 500,000 quotes (0.4 s).
        found = select(*columns).where(in_range).order_by(*order).limit(count).lateral("found")
        return (select(*found.c).select_from(COUNTER.join(found, true())).where(*counters)
                .order_by(found.c.number, found.c.revision).limit(count))
    return (select(*columns).select_from(COUNTER.join(document, in_range)).where(*counters)
            .order_by(*order).limit(count))


def _series_of(side: str) -> tuple[str, ...]:
    return (QUOTE_SERIES,) if side == "quote" else (INVOICE_SERIES, CREDIT_NOTE_SERIES)


def _owners(side: str, shape: tuple, dialect: str) -> Select:
    """The organisations of the first DOCUMENTS_READ documents of `side` the number names, as a
    statement a UNION may hold (SQLite refuses a LIMIT inside one)."""
    documents = _numbered(side, shape, dialect, DOCUMENTS_READ).subquery()
    return select(documents.c.organisation_id)


@cache
def _documents_statement(shape: tuple, dialect: str, limit: int) -> Select:
    parts = [_numbered(side, shape, dialect, limit).subquery() for side in shape[0]]
    documents = (parts[0] if len(parts) == 1
                 else union_all(*(select(*part.c) for part in parts)).subquery())
    return (select(documents.c.kind, documents.c.id, documents.c.number, documents.c.revision,
                   ORGANISATION.c.name.label("organisation_name"))
            .join(ORGANISATION, ORGANISATION.c.id == documents.c.organisation_id)
            .order_by(documents.c.number, documents.c.revision).limit(limit))


@cache
def _document_statement(side: str, by_revision: bool) -> Select:
    """The document of a whole number: a quote's given revision or its latest; an invoice."""
    if side == "invoice":
        return (select(cast(INVOICE.c.kind, String).label("kind"), INVOICE.c.id, INVOICE.c.number,
                       literal(1, Integer).label("revision"),
                       ORGANISATION.c.name.label("organisation_name"))
                .join(ORGANISATION, ORGANISATION.c.id == INVOICE.c.organisation_id)
                .where(INVOICE.c.number == bindparam("number")))
    statement = (select(literal("quote", String).label("kind"), QUOTE.c.id, QUOTE.c.number,
                        QUOTE.c.revision, ORGANISATION.c.name.label("organisation_name"))
                 .join(ORGANISATION, ORGANISATION.c.id == QUOTE.c.organisation_id)
                 .where(QUOTE.c.number == bindparam("number")))
    if by_revision:
        return statement.where(QUOTE.c.revision == bindparam("revision"))
    return statement.order_by(QUOTE.c.revision.desc()).limit(1)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


