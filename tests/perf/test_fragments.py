"""The one HTML cache (portal/fragments.py): a sent quote's line table on the portal quote page is
rendered once per process and locale, so its lines are read only the first time."""

from __future__ import annotations

import re

import pytest

from portal.extensions import db
from portal.models import ClientRole

from ..web import count_queries, sign_in_client

pytestmark = pytest.mark.perf


def _line_table(html: str) -> str:
    return re.search(r'<table class="lines">.*?</table>', html, re.S).group(0)


def test_a_sent_quotes_line_table_is_rendered_once_per_locale(client, make):
    world = make.world()
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    url = f"/espace-client/devis/{world['quote'].id}"
    with count_queries() as first_queries:
        first = client.get(url).get_data(as_text=True)
    with count_queries() as second_queries:
        second = client.get(url).get_data(as_text=True)
    with count_queries() as english_queries:
        english = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)

    assert any("FROM quote_line" in statement for statement in first_queries.statements)
    assert not any("FROM quote_line" in statement for statement in second_queries.statements)
    assert any("FROM quote_line" in statement for statement in english_queries.statements)
    assert _line_table(second) == _line_table(first)
    assert "Item" in _line_table(english) and "Désignation" not in _line_table(english)
