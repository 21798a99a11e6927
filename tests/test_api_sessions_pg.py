"""Twenty simultaneous openings of one single sign-on URL (PostgreSQL, real connections): one
browser is signed in, nineteen are sent to the sign-in page."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

from sqlalchemy import select

from portal import auth
from portal.extensions import db
from portal.models import ClientRole, LoginToken

from .api_helpers import API, api_headers

OPENINGS = 20
TIMEOUT = 30


def test_twenty_concurrent_openings_sign_in_one_browser(wide_app, make):
    world = make.world()
    gestionnaire = world["users"][ClientRole.GESTIONNAIRE]
    db.session.commit()
    created = wide_app.test_client().post(f"{API}/sessions", json={"email": gestionnaire.email},
                                          headers=api_headers("sessions:write"))
    path = urlsplit(created.get_json()["url"]).path
    clients = [wide_app.test_client() for _ in range(OPENINGS)]
    barrier = threading.Barrier(OPENINGS, timeout=TIMEOUT)
    responses: list = [None] * OPENINGS
    errors: list[BaseException] = []

    def open_url(index: int) -> None:
        try:
            barrier.wait()
            responses[index] = clients[index].get(path)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=open_url, args=(index,), daemon=True) for index in range(OPENINGS)]
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
    assert responses[winners[0]].headers["Location"] == "/espace-client/devis"
    for index, response in enumerate(responses):
        if index != winners[0]:
            assert urlsplit(response.headers["Location"]).path == "/espace-client/connexion"
    db.session.expire_all()
    used = db.session.scalars(select(LoginToken.used_at)
                              .where(LoginToken.purpose == auth.MAGIC_LINK_API_SESSION)).all()
    assert len(used) == 1 and used[0] is not None
