"""Evidence that cannot be rewritten: the database itself (SQLite and PostgreSQL triggers) refuses
UPDATE and DELETE of audit events, decisions, credit entries and published CGV versions, whoever
writes; and a decision records the role its actor decided in."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from portal import credits, quotes
from portal.extensions import db
from portal.models import (
    AuditEvent,
    BillingMode,
    Channel,
    ClientRole,
    CreditEntry,
    Decision,
    StaffRole,
    TermsVersion,
)

from .web import sign_in, sign_in_client


def _rows(table: str) -> list[tuple]:
    """Every row of `table`, read by the database (not the session's identity map)."""
    return [tuple(row) for row in db.session.execute(text(f"SELECT * FROM {table} ORDER BY id"))]


@pytest.fixture
def evidence(make):
    """A monthly organisation's accepted quote, committed: its decision, its credit grant, an
    adjustment and their audit events."""
    world = make.world(BillingMode.MONTHLY)
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE],
                  terms_version=world["terms"], channel=Channel.PORTAL)
    credits.adjust_credits(world["org"], 5, actor=world["admin"], reason="Geste commercial")
    db.session.commit()
    for model in (AuditEvent, Decision, CreditEntry):
        assert db.session.scalar(select(func.count()).select_from(model)) > 0
    return world


# table → (what the refusal calls its rows, a forgery of its rows)
EVIDENCE = {
    "audit_event": ("audit events", "action = 'forged', ip = '203.0.113.9'"),
    "decision": ("decisions", "reason = 'forged', ip = '203.0.113.9'"),
    "credit_entry": ("credit entries", "amount = amount * 100"),
}


@pytest.mark.parametrize("table", sorted(EVIDENCE))
@pytest.mark.parametrize("operation", ["update", "delete"])
def test_plain_sql_cannot_rewrite_evidence(evidence, table, operation):
    rows, forgery = EVIDENCE[table]
    if operation == "update":
        statement, message = f"UPDATE {table} SET {forgery}", f"{rows} are never modified"
    else:
        statement, message = f"DELETE FROM {table}", f"{rows} are never deleted"
    before = _rows(table)
    with pytest.raises(DatabaseError, match=message):
        db.session.execute(text(statement))
    db.session.rollback()
    assert _rows(table) == before


def test_the_orm_cannot_rewrite_evidence_either(evidence):
    decision = db.session.scalar(select(Decision))
    decision.reason = "forged"
    with pytest.raises(DatabaseError, match="decisions are never modified"):
        db.session.flush()
    db.session.rollback()
    db.session.delete(db.session.scalar(select(CreditEntry)))
    with pytest.raises(DatabaseError, match="credit entries are never deleted"):
        db.session.flush()
    db.session.rollback()
    assert db.session.scalar(select(Decision.reason)) is None
    assert db.session.scalar(select(func.count()).select_from(CreditEntry)) == 2


def test_a_draft_cgv_may_be_edited_published_and_deleted(make):
    draft = make.terms(publish=False, body="Brouillon")
    other = make.terms(publish=False)
    db.session.commit()
    db.session.execute(text("UPDATE terms_version SET body = 'Corrigé' WHERE id = :id"), {"id": draft.id})
    db.session.execute(text("DELETE FROM terms_version WHERE id = :id"), {"id": other.id})
    quotes.publish_terms(draft, actor=make.staff(StaffRole.ADMIN))  # an UPDATE from unpublished
    db.session.commit()
    assert db.session.execute(select(TermsVersion.id, TermsVersion.body)).all() == [(draft.id, "Corrigé")]
    assert db.session.scalar(select(TermsVersion.published_at)) is not None


@pytest.mark.parametrize("statement, message", [
    ("UPDATE terms_version SET body = 'Conditions réécrites'", "published CGV versions are never modified"),
    ("UPDATE terms_version SET published_at = NULL", "published CGV versions are never modified"),
    ("UPDATE terms_version SET version_label = 'v-autre', sha256 = NULL",
     "published CGV versions are never modified"),
    ("DELETE FROM terms_version", "published CGV versions are never deleted"),
])
def test_plain_sql_cannot_rewrite_a_published_cgv(make, statement, message):
    make.terms()
    db.session.commit()
    before = _rows("terms_version")
    with pytest.raises(DatabaseError, match=message):
        db.session.execute(text(statement))
    db.session.rollback()
    assert _rows("terms_version") == before


# --- The decider's role -----------------------------------------------------------------------


@pytest.mark.parametrize("role", [ClientRole.GESTIONNAIRE, ClientRole.RESPONSABLE])
def test_a_client_decision_records_the_client_role(make, role):
    world = make.world()
    decision = quotes.accept(world["quote"], actor=world["users"][role], terms_version=world["terms"],
                             channel=Channel.PORTAL)
    db.session.commit()
    assert db.session.scalar(select(Decision.actor_role).where(Decision.id == decision.id)) == role.value


@pytest.mark.parametrize("role", [StaffRole.ADMIN, StaffRole.SALES])
def test_a_decision_on_behalf_records_the_staff_role(make, role):
    world = make.world(mandate=True)
    decision = quotes.refuse(world["quote"], actor=make.staff(role), terms_version=world["terms"],
                             channel=Channel.BACK_OFFICE, reason="Trop cher", note="Demande par email")
    db.session.commit()
    assert db.session.scalar(select(Decision.actor_role).where(Decision.id == decision.id)) == role.value


def test_the_back_office_shows_the_role_the_client_decided_in(staff_client):
    world = staff_client.world
    decider = world["users"][ClientRole.GESTIONNAIRE]
    quotes.accept(world["quote"], actor=decider, terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    page = staff_client.get(f"/admin/devis/{world['quote'].id}").get_data(as_text=True)
    assert f"Par {decider.full_name} en tant que gestionnaire, canal" in page


def test_the_portal_names_the_staff_member_who_decided_under_the_mandate(client, make):
    world = make.world(mandate=True)
    quotes.accept(world["quote"], actor=world["admin"], terms_version=world["terms"],
                  channel=Channel.BACK_OFFICE, note="Demande par téléphone")
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    page = html.unescape(client.get(f"/espace-client/devis/{world['quote'].id}").get_data(as_text=True))
    assert f"Validé par l'équipe du vendeur ({world['admin'].full_name}) le" in page


def test_a_decision_without_a_recorded_role_shows_the_name_alone(client, make):
    """Decisions recorded before 0006 have no role: the page names the actor, nothing invented."""
    world = make.world()
    decider = world["users"][ClientRole.GESTIONNAIRE]
    quotes.accept(world["quote"], actor=decider, terms_version=world["terms"], channel=Channel.PORTAL)
    db.session.commit()
    # As 0006 found them. SQLite's schema is rebuilt after each test; PostgreSQL's trigger is back
    # on before the commit (its DDL is transactional).
    if db.engine.dialect.name == "sqlite":
        db.session.execute(text("DROP TRIGGER decision_no_update"))
        db.session.execute(text("UPDATE decision SET actor_role = NULL"))
    else:
        db.session.execute(text("ALTER TABLE decision DISABLE TRIGGER decision_guard"))
        db.session.execute(text("UPDATE decision SET actor_role = NULL"))
        db.session.execute(text("ALTER TABLE decision ENABLE TRIGGER decision_guard"))
    db.session.commit()
    staff = make.staff(StaffRole.ADMIN)
    db.session.commit()
    sign_in(client, staff)
    page = client.get(f"/admin/devis/{world['quote'].id}").get_data(as_text=True)
    assert f"Par {decider.full_name}, canal" in page
