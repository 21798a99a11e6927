"""Twenty simultaneous clicks on one magic link (PostgreSQL, real connections): one session is
opened, nineteen visitors are told the link was already used."""

from __future__ import annotations

import re
import threading

from sqlalchemy import select

from portal.delivery.emails import render
from portal.extensions import db
from portal.models import ClientRole, LoginToken, OutboxEmail

from .test_security_world import build_world
from .web import csrf_from

CLICKS = 20
TIMEOUT = 30


def test_twenty_concurrent_clicks_open_one_session(wide_app, make):
    world = build_world()
    gestionnaire = world.mine.users[ClientRole.GESTIONNAIRE]
    pending = world.mine.pending
    row = db.session.scalar(select(OutboxEmail).where(
        OutboxEmail.template == "quote_sent", OutboxEmail.context["quote_id"].as_integer() == pending.id))
    token = re.search(r"/espace-client/lien/([A-Za-z0-9_-]+)", render(row).text).group(1)
    url = f"/espace-client/lien/{token}"
    clients = [wide_app.test_client() for _ in range(CLICKS)]
    tokens = [csrf_from(client.get(url).get_data(as_text=True)) for client in clients]
    barrier = threading.Barrier(CLICKS, timeout=TIMEOUT)
    responses: list = [None] * CLICKS
    errors: list[BaseException] = []

    def click(index: int) -> None:
        try:
            barrier.wait()
            responses[index] = clients[index].post(url, data={"csrf_token": tokens[index]})
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=click, args=(index,), daemon=True) for index in range(CLICKS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not errors and all(response is not None for response in responses), errors
    assert all(response.status_code == 303 for response in responses)
    signed_in = []
    for client in clients:
        with client.session_transaction() as session:
            signed_in.append(session.get("_user_id"))
    winners = [index for index, user_id in enumerate(signed_in) if user_id is not None]
    assert len(winners) == 1 and signed_in[winners[0]] == str(gestionnaire.id)
    assert responses[winners[0]].headers["Location"].endswith(f"/espace-client/devis/{pending.id}")
    for index, response in enumerate(responses):
        if index != winners[0]:
            assert "/espace-client/connexion" in response.headers["Location"]
            page = clients[index].get(response.headers["Location"]).get_data(as_text=True)
            assert "déjà été utilisé" in page
    db.session.expire_all()
    used = db.session.scalars(select(LoginToken.used_at).where(LoginToken.quote_id == pending.id))
    assert len([value for value in used if value is not None]) == 1
