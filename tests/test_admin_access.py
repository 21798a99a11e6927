"""Staff sign-in, and query counts that do not grow with the data. Every back-office route for every
kind of visitor is in tests/test_security_access.py (generated from the URL map)."""

from __future__ import annotations

from sqlalchemy import insert

from portal.auth import hash_password
from portal.extensions import db
from portal.models import ClientRole, Quote, QuoteStatus, utcnow

from .web import PASSWORD, count_queries, csrf_from, sign_in


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
