"""The monthly close's foreign-key checks read the invoice's primary key (PostgreSQL, plans read
back from a real backend by auto_explain), even on a connection that cached them while the
invoice table was nearly empty: a cached scan of the whole table, run for each line and quote the
close writes, made the close grow quadratically."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from portal import create_app, monthly, quotes
from portal.extensions import db
from portal.models import Channel, ClientRole

from .. import factories
from ..test_concurrency_pg import monthly_world

pytestmark = pytest.mark.perf

EXPLAIN_EVERY_PLAN = " ".join((
    "-c session_preload_libraries=auto_explain", "-c auto_explain.log_min_duration=0",
    "-c auto_explain.log_nested_statements=on", "-c client_min_messages=log"))
INVOICE_REFERENCE_CHECK = 'FROM ONLY "public"."invoice" x WHERE "id"'


@pytest.fixture
def explained_app(app):
    """The test database behind one connection that sends back the plan of every statement it
    runs, foreign-key checks included."""
    explained = create_app({**app.config, "SQLALCHEMY_ENGINE_OPTIONS": {
        "pool_size": 1, "max_overflow": 0, "connect_args": {"options": EXPLAIN_EVERY_PLAN}}})
    explained.plans = []

    def collect_plans(dbapi_connection, _record) -> None:
        dbapi_connection.add_notice_handler(
            lambda diagnostic: explained.plans.append(diagnostic.message_primary or ""))

    with explained.app_context():
        event.listen(db.engine, "connect", collect_plans)
    yield explained
    with explained.app_context():
        db.engine.dispose()


def _reference_checks(plans: list[str]) -> list[str]:
    return [plan for plan in plans if INVOICE_REFERENCE_CHECK in plan]


def test_the_close_checks_invoice_references_by_primary_key(explained_app):
    with explained_app.app_context():
        period, org_ids, _quote_ids, _late_id = monthly_world(3)
        # Per-order invoices first, on this same connection, with statistics taken while the
        # invoice table held one: their lines' checks get cached as scans of that small table.
        world = factories.world()
        for number in range(8):
            quote = factories.sent_quote(world["org"], actor=world["admin"],
                                         recipient=world["users"][ClientRole.GESTIONNAIRE])
            quotes.accept(quote, actor=world["users"][ClientRole.GESTIONNAIRE],
                          terms_version=world["terms"], channel=Channel.PORTAL)
            if number == 0:
                db.session.execute(text("ANALYZE invoice"))
        db.session.commit()
        assert any("Seq Scan on invoice x" in plan for plan in _reference_checks(explained_app.plans))

        explained_app.plans.clear()
        summary = monthly.close_month(period)

        assert (len(summary.invoices), summary.failures) == (len(org_ids), [])
        checks = _reference_checks(explained_app.plans)
        assert checks, "the close's foreign-key checks were not seen"
        assert all("Seq Scan" not in plan and "Index" in plan for plan in checks), checks[0]
        db.session.remove()

