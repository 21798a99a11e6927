"""Every back-office endpoint, found from the URL map, for every kind of visitor; and query counts
that do not grow with the data."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import insert

from portal import quotes
from portal.auth import hash_password
from portal.extensions import db
from portal.models import ClientRole, Quote, QuoteStatus, utcnow

from .web import PASSWORD, count_queries, csrf_from, sign_in, sign_in_client

PUBLIC = {"staff_auth.login", "staff_auth.logout", "admin.static"}
VISITORS = ["anonymous", "responsable", "gestionnaire", "membre", "staff"]


def _admin_rules(app):
    return sorted((rule for rule in app.url_map.iter_rules()
                   if rule.rule.startswith("/admin") and rule.endpoint not in PUBLIC),
                  key=lambda rule: rule.rule)


def _url(rule, ids: dict[str, int]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1).split(":")[-1]
        return str(ids.get(name, "csv" if name == "export_type" else 1))

    return re.sub(r"<([^>]+)>", value, rule.rule)


def _sign_in(client, world, visitor: str) -> None:
    if visitor == "staff":
        sign_in(client, world["admin"])
    elif visitor != "anonymous":
        sign_in_client(client, world["users"][ClientRole(visitor)])


@pytest.mark.parametrize("visitor", VISITORS)
def test_every_admin_endpoint_is_closed_to_all_but_staff(app, client, make, visitor):
    world = make.world()
    request = quotes.create_request(organisation=world["org"],
                                    requester=world["users"][ClientRole.MEMBRE],
                                    items=[(world["quote"].lines[0].product_id, 1)])
    db.session.commit()
    ids = {"organisation_id": world["org"].id, "quote_id": world["quote"].id,
           "request_id": request.id, "id": world["org"].id}
    _sign_in(client, world, visitor)
    token = csrf_from(client.get("/admin/connexion").get_data(as_text=True))
    checked = 0
    for rule in _admin_rules(app):
        url = _url(rule, ids)
        get = "GET" in rule.methods
        response = client.get(url) if get else client.post(url, data={"csrf_token": token})
        checked += 1
        where = f"{rule.endpoint} {url}"
        if visitor == "anonymous":
            assert response.status_code == 302, where
            assert "/admin/connexion" in response.headers["Location"], where
        elif visitor != "staff":
            assert response.status_code == 403, where
        else:
            assert response.status_code < 500, where
            assert response.status_code != 403, where
            assert "/admin/connexion" not in response.headers.get("Location", ""), where
    assert checked >= 15


def test_staff_sign_in_refuses_wrong_passwords_and_clients(client, make):
    world = make.world()
    sign_in(client, world["admin"])
    home = client.get("/admin/").get_data(as_text=True)
    client.post("/admin/deconnexion", data={"csrf_token": csrf_from(home)})
    assert client.get("/admin/").status_code == 302
    token = csrf_from(client.get("/admin/connexion").get_data(as_text=True))
    wrong = client.post("/admin/connexion", data={"csrf_token": token, "email": world["admin"].email,
                                                 "password": "mauvais"})
    assert "incorrect" in wrong.get_data(as_text=True)
    client_user = world["users"][ClientRole.RESPONSABLE]
    client_user.password_hash = hash_password(PASSWORD)
    db.session.commit()
    refused = client.post("/admin/connexion", data={"csrf_token": token, "email": client_user.email,
                                                   "password": PASSWORD})
    assert "incorrect" in refused.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_sign_in_needs_csrf(client, make):
    world = make.world()
    response = client.post("/admin/connexion", data={"email": world["admin"].email, "password": "x"})
    assert response.status_code == 400


def test_sign_in_next_is_never_an_open_redirect(client, make):
    world = make.world()
    world["admin"].password_hash = hash_password("p" * 12)
    db.session.commit()
    token = csrf_from(client.get("/admin/connexion").get_data(as_text=True))
    response = client.post("/admin/connexion?next=https://evil.example/",
                           data={"csrf_token": token, "email": world["admin"].email, "password": "p" * 12})
    assert response.headers["Location"] == "/admin/"


def _bulk_quotes(org_id: int, recipient_id: int, first: int, count: int) -> None:
    now = utcnow()
    rows = [dict(organisation_id=org_id, number=f"DV-2020-{n:05d}", revision=1, title=f"Devis {n}",
                 status=QuoteStatus.SENT, recipient_id=recipient_id, total_ht_cents=100,
                 total_vat_cents=20, total_ttc_cents=120, total_credits=0, reminders_sent=0,
                 created_at=now, valid_until=now.date()) for n in range(first, first + count)]
    db.session.execute(insert(Quote), rows)
    db.session.commit()


def _queries(client, url: str) -> int:
    with count_queries() as counter:
        assert client.get(url).status_code == 200
    return counter.n


def test_main_pages_run_as_many_queries_with_10_and_1000_quotes(client, make):
    world = make.world()
    org, recipient = world["org"], world["users"][ClientRole.GESTIONNAIRE]
    sign_in(client, world["admin"])
    pages = ["/admin/", f"/admin/organisation/{org.id}/devis", f"/admin/organisation/{org.id}/",
             "/admin/organisations/", "/admin/demandes/", f"/admin/devis/{world['quote'].id}",
             "/admin/?q=" + org.name[:6]]
    _bulk_quotes(org.id, recipient.id, 0, 9)
    small = {url: _queries(client, url) for url in pages}
    _bulk_quotes(org.id, recipient.id, 9, 990)
    large = {url: _queries(client, url) for url in pages}
    assert large == small
