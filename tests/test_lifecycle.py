"""The life cycle of an issued invoice (e-invoicing reform): « encaissée » recorded by the payment
itself, the statuses staff learn recorded by hand (with their day, their source and a note) and shown
on the invoice's page; a status by a platform comes through the adapter's seam. Every status is
evidence: never modified nor deleted."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from portal import billing, lifecycle, quotes
from portal.dates import paris_today
from portal.exceptions import LifecycleDateInFuture, LifecycleStatusByPaymentOnly
from portal.extensions import db
from portal.models import (
    Channel,
    ClientRole,
    Invoice,
    InvoiceLifecycleEvent,
    LifecycleSource,
    LifecycleStatus,
    PaymentProvider,
)

from .web import page_text, post_form


@pytest.fixture
def invoice(make) -> Invoice:
    make.seller_settings()
    world = make.world()
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    return db.session.scalars(select(Invoice).where(Invoice.quote_id == world["quote"].id)).one()


def _statuses(invoice: Invoice) -> list[tuple[LifecycleStatus, LifecycleSource]]:
    return [(event.status, event.source) for event in lifecycle.history(invoice)]


def test_a_payment_records_cashed_with_its_reference(invoice, make):
    billing.record_payment(invoice, provider=PaymentProvider.BANK_TRANSFER, provider_reference="VIR-1",
                           amount_cents=invoice.total_ttc_cents, currency="EUR", actor=make.staff())
    [event] = lifecycle.history(invoice)
    assert (event.status, event.source, event.note) == (LifecycleStatus.CASHED, LifecycleSource.PORTAL,
                                                        "VIR-1")


def test_staff_record_what_they_learn_and_see_it_on_the_invoice_page(invoice, staff_client):
    url = f"/admin/factures/{invoice.id}/cycle-de-vie"
    yesterday = paris_today() - timedelta(days=1)
    answer = post_form(staff_client, url, {"status": "deposited", "occurred_on": yesterday.isoformat(),
                                           "note": "Déposée sur la plateforme"})
    assert answer.status_code == 302
    post_form(staff_client, url, {"status": "refused", "occurred_on": paris_today().isoformat(),
                                  "note": "Refusée par le client : bon de commande manquant"})
    db.session.expire_all()
    assert _statuses(invoice) == [(LifecycleStatus.DEPOSITED, LifecycleSource.STAFF),
                                  (LifecycleStatus.REFUSED, LifecycleSource.STAFF)]
    page = page_text(staff_client.get(f"/admin/factures/details/?id={invoice.id}"))
    assert "Cycle de vie (facturation électronique)" in page
    assert "Déposée" in page and "Refusée par le client : bon de commande manquant" in page
    assert yesterday.strftime("%d/%m/%Y") in page


def test_a_future_day_or_cashed_by_hand_is_refused_and_nothing_is_recorded(invoice, staff_client):
    url = f"/admin/factures/{invoice.id}/cycle-de-vie"
    tomorrow = paris_today() + timedelta(days=1)
    refused = post_form(staff_client, url, {"status": "approved", "occurred_on": tomorrow.isoformat()})
    assert refused.status_code == 200 and "ne peut pas être dans le futur" in page_text(refused)
    cashed = post_form(staff_client, url, {"status": "cashed", "occurred_on": paris_today().isoformat()})
    assert cashed.status_code == 200 and "pas un choix valide" in page_text(cashed)  # not offered
    assert lifecycle.history(invoice) == []
    with pytest.raises(LifecycleStatusByPaymentOnly):
        lifecycle.record_by_staff(invoice, LifecycleStatus.CASHED, actor=None, occurred_at=None, note=None)
    with pytest.raises(LifecycleDateInFuture):
        lifecycle.record_by_staff(invoice, LifecycleStatus.APPROVED, actor=None, note=None,
                                  occurred_at=datetime.now() + timedelta(days=2))


def test_a_platforms_report_is_recorded_through_the_seam_by_its_code(invoice):
    approved = lifecycle.PlatformReport(invoice.number, 205, datetime(2026, 12, 1, 9), "Approuvée")
    assert lifecycle.apply_platform_report(approved).status == LifecycleStatus.APPROVED
    for number, code in (("FA-1999-00001", 205), (invoice.number, 999)):  # not ours, not a status
        assert lifecycle.apply_platform_report(lifecycle.PlatformReport(number, code, datetime.now())) is None
    assert _statuses(invoice) == [(LifecycleStatus.APPROVED, LifecycleSource.PLATFORM)]


def test_a_recorded_status_is_never_modified_nor_deleted(invoice):
    lifecycle.record(invoice, LifecycleStatus.DEPOSITED, source=LifecycleSource.STAFF)
    db.session.commit()
    for statement in ("UPDATE invoice_lifecycle_event SET note = 'changée'",
                      "DELETE FROM invoice_lifecycle_event"):
        with pytest.raises(DatabaseError):
            db.session.execute(text(statement))
        db.session.rollback()
    assert db.session.scalars(select(InvoiceLifecycleEvent)).one().note is None
