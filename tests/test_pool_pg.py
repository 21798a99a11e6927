"""Pooled connections closed by the server (PostgreSQL, real connections): one killed while idle is
replaced before use; a request whose connection was killed under it is told to retry (503) and the
next is served. Which connections are pinged, and how they are handed over: tests/perf/test_pool_pg.py."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from portal.extensions import db

from .conftest import IsolatedClient
from .web import sign_in


def _backend_pid() -> int:
    pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    db.session.rollback()  # back to the pool
    return pid


def _terminate(app, pid: int) -> None:
    killer = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], isolation_level="AUTOCOMMIT")
    with killer.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    killer.dispose()


def test_a_connection_killed_while_idle_is_replaced_before_use(pinging_pool_app):
    with pinging_pool_app.app_context():
        first = _backend_pid()
        _terminate(pinging_pool_app, first)
        assert _backend_pid() != first
        db.session.remove()


def test_a_request_whose_connection_was_killed_is_told_to_retry_and_the_next_is_served(own_pool_app, make):
    """Not a 500: the request is refused with 503 and Retry-After, one warning line, and the pool
    serves the next request on a new connection."""
    world = make.world()
    db.session.commit()
    own_pool_app.test_client_class = IsolatedClient
    client = own_pool_app.test_client()
    sign_in(client, world["admin"])
    assert client.get("/admin/tous-les-devis/").status_code == 200
    with own_pool_app.app_context():
        pid = _backend_pid()
        db.session.remove()
    _terminate(own_pool_app, pid)
    killed = client.get("/admin/tous-les-devis/")
    assert killed.status_code == 503
    assert killed.headers["Retry-After"] == "5"
    assert "momentanément indisponible" in killed.get_data(as_text=True)
    assert client.get("/admin/tous-les-devis/").status_code == 200


def test_a_connection_killed_after_the_answer_was_made_leaves_the_answer(own_pool_app, make):
    """The backend dies between the request's last statement and the end of its transaction: the
    page made stands (its closing ROLLBACK fails, the pool drops the connection), and the next
    request gets a new connection."""
    world = make.world()
    db.session.commit()

    @own_pool_app.get("/_test/killed-before-the-end")
    def killed_before_the_end():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()  # opens a transaction
        _terminate(own_pool_app, pid)
        return "page faite"

    own_pool_app.test_client_class = IsolatedClient
    client = own_pool_app.test_client()
    answer = client.get("/_test/killed-before-the-end")
    assert answer.status_code == 200 and answer.get_data(as_text=True) == "page faite"
    sign_in(client, world["admin"])
    assert client.get("/admin/tous-les-devis/").status_code == 200
