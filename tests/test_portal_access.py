"""The portal's routes, found from the URL map: another organisation's ids are 404 on every one,
and every POST needs its CSRF token."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal import quotes
from portal.extensions import db
from portal.models import Channel, ClientRole, Invoice

from .web import csrf_from, sign_in_client

PUBLIC = {"client.login", "client.request_link", "client.magic_link", "client.consume_link",
          "client.invitation", "client.logout"}


def _portal_rules(app):
    return sorted((rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("client.")),
                  key=lambda rule: rule.rule)


def _accepted_world(make):
    world = make.world()
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=world["terms"], channel=Channel.PORTAL)
    request = quotes.create_request(organisation=world["org"], requester=world["users"][ClientRole.MEMBRE],
                                    items=[(world["quote"].lines[0].product_id, 1)])
    world["invoice"] = db.session.scalar(select(Invoice).where(Invoice.quote_id == world["quote"].id))
    world["request"] = request
    return world


@pytest.mark.parametrize("role", list(ClientRole))
def test_another_organisations_ids_are_404_everywhere(app, client, make, role):
    mine, theirs = _accepted_world(make), _accepted_world(make)
    db.session.commit()
    ids = {"quote_id": theirs["quote"].id, "invoice_id": theirs["invoice"].id,
           "request_id": theirs["request"].id}
    sign_in_client(client, mine["users"][role])
    token = csrf_from(client.get("/espace-client/devis").get_data(as_text=True))
    checked = 0
    for rule in _portal_rules(app):
        names = re.findall(r"<(?:[^:>]+:)?([^>]+)>", rule.rule)
        if not names or rule.endpoint in PUBLIC:
            continue
        url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: str(ids[m.group(1)]), rule.rule)
        if "GET" in rule.methods:
            assert client.get(url).status_code == 404, url
        if "POST" in rule.methods:
            assert client.post(url, data={"csrf_token": token}).status_code == 404, url
        checked += 1
    assert checked >= 5


def test_every_post_route_needs_csrf(app, client, make):
    world = _accepted_world(make)
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.RESPONSABLE])
    ids = {"quote_id": world["quote"].id, "invoice_id": world["invoice"].id,
           "request_id": world["request"].id, "token": "x" * 43}
    posts = [rule for rule in _portal_rules(app) if "POST" in rule.methods]
    assert len(posts) >= 6
    for rule in posts:
        url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: str(ids[m.group(1)]), rule.rule)
        assert client.post(url, data={}).status_code == 400, url
