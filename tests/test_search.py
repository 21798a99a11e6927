"""The search bar (portal/search.py): a name contains the words typed, accents and case aside, with
the same organisations whatever the path the database takes (SQLite's trigram table for three
letters or more, LIKE otherwise; PostgreSQL's trigram index); a quote or invoice number, whole or
its start, names its documents and their organisations; a member's email or its domain, theirs."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import insert

from portal.extensions import db
from portal.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    NumberCounter,
    Quote,
    QuoteStatus,
    fold_for_search,
    quote_reference,
    utcnow,
)
from portal.search import documents_numbered, find_document, search_organisations

from .web import count_queries

NAMES = ["Atelier Martin", "MARTINEZ Frères", "Boulangerie Amartine", "Remise 100% Atelier",
         "Remise 1000 Atelier", "Garage_Nord", "Garage Nord", "Café de la gare", "Ma Petite Entreprise",
         "Import\\Export"]


def _names(query: str) -> list[str]:
    return sorted(row.name for row in search_organisations(query, limit=50))


@pytest.mark.parametrize("query", ["martin", "MARTIN", "art", "ma", "100%", "100", "e_n", "garage_",
                                   "Garage Nord", "café", "atelier", "zzz", "t\\e", "\\ex"])
def test_name_search_finds_exactly_the_names_containing_the_words(make, query):
    for name in NAMES:
        make.organisation(name=name)
    db.session.commit()
    expected = sorted(name for name in NAMES if fold_for_search(query) in fold_for_search(name))
    assert _names(query) == expected


def test_name_search_follows_new_renamed_and_deleted_organisations(make):
    kept = make.organisation(name="Menuiserie Brunet")
    renamed = make.organisation(name="Atelier Brunet")
    gone = make.organisation(name="Brunet et Fils")
    db.session.commit()
    assert _names("brunet") == ["Atelier Brunet", "Brunet et Fils", "Menuiserie Brunet"]
    renamed.name = "Atelier Morel"
    db.session.delete(gone)
    db.session.commit()
    assert _names("brunet") == [kept.name]
    assert _names("morel") == ["Atelier Morel"]



# --- Accents and case -----------------------------------------------------------------------------

LEFEVRE = "Cabinet Lefèvre & Associés"


@pytest.mark.parametrize(("name", "folded"), [
    (LEFEVRE, "cabinet lefevre & associes"), ("Bœuf  et Cæsar", "boeuf et caesar"),
    ("STRAẞE Café", "strasse cafe"), ("L’Atelier ﬁn", "l'atelier fin"), ("Ærø Øst", "aero ost")])
def test_names_are_folded_without_accents_case_or_extra_spaces(name, folded):
    assert fold_for_search(name) == folded


@pytest.mark.parametrize("query", ["lefevre", "associes", "LEFÈVRE", "Lefèvre & Ass", "lefèvre",
                                   "LEFEVRE & ASSOCIES", "cabinet  lefevre", "VRE & AS"])
def test_name_search_ignores_accents_and_case(make, query):
    for name in (LEFEVRE, "Cabinet Lefebvre Conseil", "Associations du Nord", "Lefort Industries"):
        make.organisation(name=name)
    db.session.commit()
    assert _names(query) == [LEFEVRE]


@pytest.mark.parametrize(("query", "expected"), [
    ("lefe", ["Cabinet Lefebvre Conseil", LEFEVRE]),  # three letters and more: the trigram path
    ("lé", ["Cabinet Lefebvre Conseil", LEFEVRE, "Les Éditions Lemaître"]),  # two: LIKE alone
    ("boeuf", ["Bœuf Gourmand"]), ("BŒUF", ["Bœuf Gourmand"]), ("strasse", ["Brasserie Straße"]),
    ("l'atelier", ["L’Atelier Roux"])])
def test_name_search_folds_the_query_as_the_names(make, query, expected):
    for name in (LEFEVRE, "Cabinet Lefebvre Conseil", "Les Éditions Lemaître", "Bœuf Gourmand",
                 "Brasserie Straße", "L’Atelier Roux"):
        make.organisation(name=name)
    db.session.commit()
    assert sorted(_names(query)) == sorted(expected)


def test_results_come_in_alphabetical_order_accents_aside(make):
    for name in ("Zèbre Atelier", "Atelier Ouest", "Éclair Atelier", "atelier est"):
        make.organisation(name=name)
    db.session.commit()
    found = [row.name for row in search_organisations("atelier")]
    assert found == ["atelier est", "Atelier Ouest", "Éclair Atelier", "Zèbre Atelier"]


def test_a_renamed_organisation_is_found_by_its_new_name_only(make):
    org = make.organisation(name="Atelier Morel")
    db.session.commit()
    org.name = "Atelier Mérel Frères"
    db.session.commit()
    assert org.folded_name == "atelier merel freres"
    assert _names("merel frere") == ["Atelier Mérel Frères"]
    assert _names("morel") == []


# --- Numbers --------------------------------------------------------------------------------------


def _document(org, number: str, *, revision: int = 1) -> int:
    """A quote (DV-…) or an invoice / credit note (FA-…, AV-…) numbered `number`, inserted as
    rows (an issued invoice is never renumbered), with its series' counter; returns its id."""
    series, year, value = number.split("-")
    counter = db.session.get(NumberCounter, (series, int(year)))
    if counter is None:
        db.session.add(NumberCounter(series=series, year=int(year), last_value=int(value)))
    else:
        counter.last_value = max(counter.last_value, int(value))
    db.session.flush()
    if series == "DV":
        statement = insert(Quote).values(
            organisation_id=org.id, number=number, revision=revision, title="", status=QuoteStatus.SENT,
            total_ht_cents=100, total_vat_cents=20, total_ttc_cents=120, total_credits=0,
            reminders_sent=0, created_at=utcnow())
    else:
        statement = insert(Invoice).values(
            kind=InvoiceKind.INVOICE if series == "FA" else InvoiceKind.CREDIT_NOTE, number=number,
            organisation_id=org.id, status=InvoiceStatus.ISSUED, currency="EUR",
            issue_date=date(int(year), 1, 1), due_date=date(int(year), 1, 31), total_ht_cents=100,
            total_vat_cents=20, total_ttc_cents=120, seller={}, buyer={}, issued_at=utcnow())
    return db.session.execute(statement.returning(statement.table.c.id)).scalar_one()


@pytest.fixture
def numbered(make):
    """Three organisations and their documents: quotes DV-2026-00012 (two revisions) and
    DV-2025-00012, invoices FA-2026-00003 and FA-2026-00010, credit note AV-2026-00001."""
    lefevre = make.organisation(name=LEFEVRE)
    garage = make.organisation(name="Garage du Port")
    other = make.organisation(name="Zeta Industries")
    ids = {"DV-2026-00012": _document(lefevre, "DV-2026-00012"),
           "DV-2026-00012-R2": _document(lefevre, "DV-2026-00012", revision=2),
           "DV-2025-00012": _document(garage, "DV-2025-00012"),
           "DV-2026-00100": _document(other, "DV-2026-00100"),
           "FA-2026-00003": _document(lefevre, "FA-2026-00003"),
           "FA-2026-00010": _document(garage, "FA-2026-00010"),
           "AV-2026-00001": _document(other, "AV-2026-00001")}
    db.session.commit()
    return ids


@pytest.mark.parametrize(("query", "kind", "reference"), [
    ("DV-2026-00012", "quote", "DV-2026-00012-R2"),  # without its revision: the latest
    ("dv-2026-00012", "quote", "DV-2026-00012-R2"),
    ("DV-2026-00012-R1", "quote", "DV-2026-00012"),
    (" dv-2026-00012-r2 ", "quote", "DV-2026-00012-R2"),
    ("FA-2026-00003", "invoice", "FA-2026-00003"), ("fa-2026-00003", "invoice", "FA-2026-00003"),
    ("AV-2026-00001", "credit_note", "AV-2026-00001")])
def test_a_whole_number_names_its_document(numbered, query, kind, reference):
    document = find_document(query)
    assert (document.kind, document.id) == (kind, numbered[reference])
    assert quote_reference(document.id, document.number, document.revision) == reference or kind != "quote"


@pytest.mark.parametrize("query", ["DV-2026-00013", "DV-2026-00012-R3", "FA-2026-0000", "DV-2026",
                                   "Lefèvre", "00012"])
def test_anything_else_names_no_document(numbered, query):
    assert find_document(query) is None


@pytest.mark.parametrize(("query", "expected"), [
    ("DV-2026-00012", [LEFEVRE]), ("DV-2026-00012-R2", [LEFEVRE]),
    ("00012", [LEFEVRE, "Garage du Port"]),  # the sequence's start, in any series and year
    ("0001", [LEFEVRE, "Garage du Port"]), ("001", ["Zeta Industries"]),
    ("2026-0001", [LEFEVRE, "Garage du Port"]),  # a year: any series
    ("DV-2026-0001", [LEFEVRE]), ("dv-2026-000", [LEFEVRE]), ("DV-2025", ["Garage du Port"]),
    ("FA-2026-", [LEFEVRE, "Garage du Port"]), ("AV-2026-00001", ["Zeta Industries"]),
    ("DV-2026-00013", []), ("2024-", []), ("FA-2026-00012", [])])
def test_a_whole_or_partial_number_finds_the_organisations_of_its_documents(numbered, query, expected):
    assert _names(query) == sorted(expected, key=fold_for_search)


def test_digits_find_the_names_holding_them_too(numbered, make):
    make.organisation(name="Remise 00012 Atelier")
    db.session.commit()
    assert _names("00012") == [LEFEVRE, "Garage du Port", "Remise 00012 Atelier"]


@pytest.mark.parametrize(("query", "expected"), [
    ("DV-2026-0001", ["DV-2026-00012", "DV-2026-00012-R2"]),
    ("DV-2026-00012", ["DV-2026-00012", "DV-2026-00012-R2"]),
    ("DV-2026-00012-R2", ["DV-2026-00012-R2"]),
    ("00012", ["DV-2025-00012", "DV-2026-00012", "DV-2026-00012-R2"]),
    ("2026-0001", ["DV-2026-00012", "DV-2026-00012-R2", "FA-2026-00010"]),
    ("0000", ["AV-2026-00001", "FA-2026-00003"]),
    ("Lefèvre", []), ("lefevre-associes.fr", [])])
def test_a_number_lists_its_documents_in_number_order(numbered, query, expected):
    found = documents_numbered(query)
    assert [quote_reference(row.id, row.number, row.revision) if row.kind == "quote" else row.number
            for row in found] == expected
    assert all(row.organisation_name for row in found)


def test_a_number_lists_no_more_documents_than_asked(numbered):
    assert len(documents_numbered("2026-", limit=2)) == 2


# --- Members' email --------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["@lefevre-associes.fr", "lefevre-associes.fr", "@LEFEVRE-Associes.FR",
                                   "marie.durand@lefevre-associes.fr"])
def test_a_members_email_or_its_domain_finds_the_organisation(make, query):
    lefevre = make.organisation(name=LEFEVRE)
    other = make.organisation(name="Associés du Sud")
    make.client_user(lefevre, email="marie.durand@lefevre-associes.fr")
    make.client_user(lefevre, email="paul@lefevre-associes.fr")
    make.client_user(other, email="contact@associes-du-sud.fr")
    make.staff(email="commercial@lefevre-associes.fr.example")
    db.session.commit()
    assert _names(query) == [LEFEVRE]


def test_a_domain_typed_without_at_sign_also_searches_the_names(make):
    make.organisation(name="Conseil-Nord.fr")
    db.session.commit()
    assert _names("conseil-nord.fr") == ["Conseil-Nord.fr"]
    assert _names("@conseil-nord.fr") == []


def test_a_members_domain_follows_a_changed_email(make):
    org = make.organisation(name=LEFEVRE)
    member = make.client_user(org, email="marie@ancien-domaine.fr")
    db.session.commit()
    member.email = "marie@lefevre-associes.fr"
    db.session.commit()
    assert member.email_domain == "lefevre-associes.fr"
    assert _names("@lefevre-associes.fr") == [LEFEVRE]
    assert _names("@ancien-domaine.fr") == []


# --- One statement a search -------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["lefevre", "le", "123456789", "12345678900012", "a@b.fr", "@b.fr",
                                   "b.fr", "DV-2026-00012", "2026-0001", "00012"])
def test_each_search_is_one_statement(numbered, query):
    with count_queries() as counter:
        search_organisations(query)
    assert counter.n == 1
