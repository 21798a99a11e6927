"""A write sent while serving one of the busiest GET pages (the views marked @read_only) is refused
before it reaches the database, and nothing changes. How those pages are served (read-only, outside
a transaction on PostgreSQL) and which they are: tests/perf/test_read_only.py."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update

from portal import read_only
from portal.extensions import db
from portal.models import Organisation


def test_a_write_from_a_read_only_page_is_refused_and_nothing_changes(app, make):
    organisation_id = make.organisation(name="Menuiserie Brunet").id
    db.session.commit()
    with app.test_request_context("/admin/?q=brunet"):
        read_only.begin_read_only_request()
        with pytest.raises(read_only.WriteOnReadOnlyPage):
            db.session.execute(update(Organisation).values(name="Écrite depuis une lecture"))
        db.session.remove()
    name = db.session.scalar(select(Organisation.name).where(Organisation.id == organisation_id))
    assert name == "Menuiserie Brunet"


@pytest.mark.parametrize("statement", ["DELETE FROM organisation", " update organisation set name = 'x'"])
def test_a_textual_write_from_a_read_only_page_is_refused(app, make, statement):
    make.organisation(name="Menuiserie Brunet")
    db.session.commit()
    with app.test_request_context("/admin/tous-les-devis/"):
        read_only.begin_read_only_request()
        with pytest.raises(read_only.WriteOnReadOnlyPage):
            db.session.execute(text(statement))
        db.session.remove()
    assert db.session.scalar(select(Organisation.name)) == "Menuiserie Brunet"
