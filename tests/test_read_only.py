"""The back office's busiest GET pages only read: they are served outside a transaction, and a
write sent while serving one of them is refused before it reaches the database."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy import event, select, update

from portal import read_only
from portal.extensions import db
from portal.models import Organisation

LISTED = ["/admin/", "/admin/?q=Organisation", "/admin/recherche?q=Organisation",
          "/admin/tous-les-devis/", "/admin/tous-les-devis/?q=Organisation"]


@pytest.mark.parametrize("path", LISTED)
def test_every_statement_of_a_listed_page_is_read_only_and_outside_a_transaction(staff_client, path):
    seen = []

    def note(connection, *_args) -> None:
        seen.append((connection.get_execution_options().get(read_only.READ_ONLY),
                     _in_transaction(connection.connection.dbapi_connection)))

    event.listen(db.engine, "after_cursor_execute", note)
    try:
        assert staff_client.get(path).status_code == 200
    finally:
        event.remove(db.engine, "after_cursor_execute", note)
    assert seen and set(seen) == {(True, False)}  # the signed-in user's row included


def _in_transaction(dbapi_connection) -> bool:
    if isinstance(dbapi_connection, sqlite3.Connection):
        return dbapi_connection.in_transaction
    return dbapi_connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


@pytest.mark.parametrize("method, path", [("POST", "/admin/"), ("GET", "/espace-client/devis"),
                                          ("GET", "/admin/organisation/1/")])
def test_other_requests_keep_their_transaction(app, method, path):
    with app.test_request_context(path, method=method):
        read_only.begin_read_only_request()
        assert read_only.READ_ONLY not in db.session.connection().get_execution_options()
        db.session.remove()


def test_a_write_from_a_listed_page_is_refused_and_nothing_changes(app, make):
    organisation_id = make.organisation(name="Menuiserie Brunet").id
    db.session.commit()
    with app.test_request_context("/admin/?q=brunet"):
        read_only.begin_read_only_request()
        with pytest.raises(read_only.WriteOnReadOnlyPage):
            db.session.execute(update(Organisation).values(name="Écrite depuis une lecture"))
        db.session.remove()
    name = db.session.scalar(select(Organisation.name).where(Organisation.id == organisation_id))
    assert name == "Menuiserie Brunet"
