"""Back office, every quote (/admin/tous-les-devis/): read-only, newest first, filtered by status and
billing mode, searched by organisation name, paged back in time. Who may see it:
tests/test_security_access.py; its query count: tests/perf/test_admin_queries.py."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import insert

from portal.admin import quotes_list
from portal.extensions import db
from portal.models import BillingMode, ClientRole, Quote, QuoteStatus, utcnow

from .web import page_text, sign_in

LIST = "/admin/tous-les-devis/"


def _bulk(org, recipient, count: int, status=QuoteStatus.SENT, first: int = 1) -> None:
    now = utcnow()
    db.session.execute(insert(Quote), [
        dict(organisation_id=org.id, number=f"DV-2021-{n:05d}", revision=1, title=f"Lot {n}",
             status=status, recipient_id=recipient.id, total_ht_cents=100, total_vat_cents=20,
             total_ttc_cents=120, total_credits=0, reminders_sent=0, created_at=now,
             valid_until=now.date()) for n in range(first, first + count)])
    db.session.commit()


@pytest.fixture
def staff(client, make):
    world = make.world()
    sign_in(client, world["admin"])
    return world


# --- Read only --------------------------------------------------------------------------------


def test_the_list_is_read_only(client, staff):
    page = page_text(client.get(LIST))
    assert staff["quote"].reference in page
    assert "/admin/tous-les-devis/new/" not in page
    assert "/admin/tous-les-devis/edit/" not in page
    for path in ("new/", f"edit/?id={staff['quote'].id}", f"delete/?id={staff['quote'].id}"):
        response = client.get(LIST + path)
        assert response.status_code in (302, 404, 405), path
    db.session.expire_all()
    assert db.session.get(Quote, staff["quote"].id).status == QuoteStatus.SENT


# --- Content, filter, search ------------------------------------------------------------------


def test_quotes_are_listed_newest_first_with_their_organisation(client, make, staff):
    other = make.organisation(name="Zéphyr Conseil")
    later = make.sent_quote(other, actor=staff["admin"])
    db.session.commit()
    page = page_text(client.get(LIST))
    assert page.index(later.reference) < page.index(staff["quote"].reference)
    assert "Zéphyr Conseil" in page
    assert f"/admin/organisation/{other.id}/devis" in page
    assert f"/admin/devis/{later.id}" in page


def test_status_filter_keeps_only_that_status(client, make, staff):
    recipient = staff["users"][ClientRole.GESTIONNAIRE]
    _bulk(staff["org"], recipient, 3, status=QuoteStatus.REFUSED, first=100)
    refused = page_text(client.get(f"{LIST}?statut=refused"))
    assert "DV-2021-00100" in refused and "DV-2021-00102" in refused
    assert staff["quote"].reference not in refused
    sent = page_text(client.get(f"{LIST}?statut=sent"))
    assert staff["quote"].reference in sent and "DV-2021-00100" not in sent


def test_status_badges_follow_each_visitors_language(client, staff):
    """The rows' badges are made once per language: each visitor reads their own."""
    badge = '<span class="badge badge-sent">{}</span>'
    french = client.get(f"{LIST}?statut=sent").get_data(as_text=True)
    english = client.get(f"{LIST}?statut=sent", headers={"Accept-Language": "en"}).get_data(as_text=True)
    french_again = client.get(f"{LIST}?statut=sent").get_data(as_text=True)
    waiting = badge.format("En attente du client")
    assert waiting in french and waiting in french_again
    assert badge.format("Awaiting client") in english
    assert "Awaiting client" not in french_again and "En attente du client" not in english


def test_search_finds_quotes_by_part_of_the_organisation_name(client, make, staff):
    other = make.organisation(name="Boulangeries Martin SAS")
    theirs = make.sent_quote(other, actor=staff["admin"])
    db.session.commit()
    page = page_text(client.get(LIST + "?q=MARTIN"))
    assert theirs.reference in page
    assert staff["quote"].reference not in page
    assert page_text(client.get(LIST + "?q=geries mar")).count(theirs.reference) >= 1
    nothing = page_text(client.get(LIST + "?q=100%25"))  # a literal %, not a wildcard
    assert theirs.reference not in nothing and staff["quote"].reference not in nothing


def test_search_matching_many_organisations_gives_the_same_quotes(client, make, staff, monkeypatch):
    first = make.sent_quote(make.organisation(name="Alpha Martin"), actor=staff["admin"])
    second = make.sent_quote(make.organisation(name="Beta Martin"), actor=staff["admin"])
    db.session.commit()
    listed = page_text(client.get(LIST + "?q=martin"))
    monkeypatch.setattr(quotes_list, "OWNERS_LISTED", 1)  # past it, the ids are not listed first
    scanned = page_text(client.get(LIST + "?q=martin"))
    for page in (listed, scanned):
        assert first.reference in page and second.reference in page
        assert staff["quote"].reference not in page


def test_search_of_organisations_without_such_quotes_finds_none(client, make, staff):
    make.organisation(name="Menuiserie Brunet")  # no quote at all
    db.session.commit()
    for url in (LIST + "?q=brunet", LIST + "?q=organisation&statut=refused"):
        page = page_text(client.get(url))
        assert "Aucun devis ne correspond à ces filtres." in page, url
        assert staff["quote"].reference not in page, url


def test_rows_escape_what_clients_and_staff_typed(client, make, staff):
    other = make.organisation(name="<b>Gras</b> & fils")
    theirs = make.sent_quote(other, actor=staff["admin"])
    theirs.title = "<script>alert(1)</script>"
    db.session.commit()
    html = client.get(LIST).get_data(as_text=True)
    assert "&lt;b&gt;Gras&lt;/b&gt; &amp; fils" in html and "<b>Gras</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html


def test_pages_go_back_in_time_keeping_the_filters(client, staff):
    recipient = staff["users"][ClientRole.GESTIONNAIRE]
    _bulk(staff["org"], recipient, 51)  # 52 sent quotes with the world's: a page, then two more
    first = client.get(LIST + "?statut=sent").get_data(as_text=True)
    assert first.count('<tr><td class="col-number">') == 50
    older = re.search(r'href="([^"]*avant=\d+[^"]*)"', first).group(1).replace("&amp;", "&")
    assert "statut=sent" in older
    second = client.get(older).get_data(as_text=True)
    assert second.count('<tr><td class="col-number">') == 2
    assert "DV-2021-00001" in second and staff["quote"].reference in second  # the two oldest
    assert "DV-2021-00002" not in second and "DV-2021-00002" in first
    assert "avant=" not in second.split("Les plus récents")[1]  # no older page past the last


def test_billing_mode_filter(client, make, staff):
    monthly_org = make.organisation(billing_mode=BillingMode.MONTHLY, name="Mensuelle SARL")
    theirs = make.sent_quote(monthly_org, actor=staff["admin"])
    db.session.commit()
    page = page_text(client.get(f"{LIST}?mode=monthly"))
    assert theirs.reference in page and staff["quote"].reference not in page


def test_an_unknown_filter_value_is_said_and_ignored(client, staff):
    page = page_text(client.get(f"{LIST}?statut=perdu&mode=gratuit"))
    assert "Filtre ignoré : statut inconnu, mode de facturation inconnu." in page
    assert staff["quote"].reference in page


def test_filters_with_nothing_to_show_say_so(client, staff):
    page = page_text(client.get(f"{LIST}?q=introuvable"))
    assert "Aucun devis ne correspond à ces filtres." in page
    assert staff["quote"].reference not in page
