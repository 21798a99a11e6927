"""Evidence that cannot be rewritten: triggers refusing UPDATE and DELETE of audit events, decisions,
credit entries and published CGV versions; the decider's role on each decision (decision.actor_role)

Revision ID: 0006
Revises: 0005

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# Copied from portal.schema_guards when this revision was written: a migration never changes later.
# (On SQLite, a later batch migration that recreates one of these tables must create them again.)
SQLITE_EVIDENCE_TRIGGERS = [
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event BEGIN SELECT RAISE(ABORT, 'audit events are never modified'); END",
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event BEGIN SELECT RAISE(ABORT, 'audit events are never deleted'); END",
    "CREATE TRIGGER decision_no_update BEFORE UPDATE ON decision BEGIN SELECT RAISE(ABORT, 'decisions are never modified'); END",
    "CREATE TRIGGER decision_no_delete BEFORE DELETE ON decision BEGIN SELECT RAISE(ABORT, 'decisions are never deleted'); END",
    "CREATE TRIGGER credit_entry_no_update BEFORE UPDATE ON credit_entry BEGIN SELECT RAISE(ABORT, 'credit entries are never modified'); END",
    "CREATE TRIGGER credit_entry_no_delete BEFORE DELETE ON credit_entry BEGIN SELECT RAISE(ABORT, 'credit entries are never deleted'); END",
    "CREATE TRIGGER terms_version_no_update BEFORE UPDATE ON terms_version WHEN OLD.published_at IS NOT NULL BEGIN SELECT RAISE(ABORT, 'published CGV versions are never modified'); END",
    "CREATE TRIGGER terms_version_no_delete BEFORE DELETE ON terms_version WHEN OLD.published_at IS NOT NULL BEGIN SELECT RAISE(ABORT, 'published CGV versions are never deleted'); END",
]
POSTGRESQL_EVIDENCE_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION evidence_guard() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION '% are never %', TG_ARGV[0], CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'modified' END; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER audit_event_guard BEFORE UPDATE OR DELETE ON audit_event FOR EACH ROW EXECUTE FUNCTION evidence_guard('audit events')",
    "CREATE TRIGGER decision_guard BEFORE UPDATE OR DELETE ON decision FOR EACH ROW EXECUTE FUNCTION evidence_guard('decisions')",
    "CREATE TRIGGER credit_entry_guard BEFORE UPDATE OR DELETE ON credit_entry FOR EACH ROW EXECUTE FUNCTION evidence_guard('credit entries')",
    "CREATE TRIGGER terms_version_guard BEFORE UPDATE OR DELETE ON terms_version FOR EACH ROW WHEN (OLD.published_at IS NOT NULL) EXECUTE FUNCTION evidence_guard('published CGV versions')",
]
TABLES = ("audit_event", "decision", "credit_entry", "terms_version")


def upgrade():
    # First the column (SQLite adds it in place, the table is not rebuilt), then the triggers:
    # the decisions already recorded keep an empty role, unknown rather than guessed.
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor_role', sa.String(length=20), nullable=True))

    dialect = op.get_bind().dialect.name
    triggers = {"sqlite": SQLITE_EVIDENCE_TRIGGERS, "postgresql": POSTGRESQL_EVIDENCE_TRIGGERS}
    for statement in triggers.get(dialect, []):
        op.execute(statement)


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_guard ON {table}")
        op.execute("DROP FUNCTION IF EXISTS evidence_guard()")
    elif dialect == "sqlite":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.drop_column('actor_role')
