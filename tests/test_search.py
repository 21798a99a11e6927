"""The search bar's "name contains": the same organisations whatever the path the database takes
(SQLite's trigram table for three letters or more, LIKE otherwise; PostgreSQL's trigram index)."""

from __future__ import annotations

import pytest

from portal.extensions import db
from portal.search import search_organisations

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
    expected = sorted(name for name in NAMES if query.lower() in name.lower())
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

