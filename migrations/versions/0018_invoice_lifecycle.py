"""The life cycle of issued invoices (e-invoicing reform): each status with its time and source,
append-only like the other evidence

Revision ID: 0018
Revises: 0017

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

# Copied from portal.schema_guards when this revision was written: a migration never changes later.
SQLITE_TRIGGERS = [
    "CREATE TRIGGER invoice_lifecycle_event_no_update BEFORE UPDATE ON invoice_lifecycle_event BEGIN SELECT RAISE(ABORT, 'invoice lifecycle events are never modified'); END",
    "CREATE TRIGGER invoice_lifecycle_event_no_delete BEFORE DELETE ON invoice_lifecycle_event BEGIN SELECT RAISE(ABORT, 'invoice lifecycle events are never deleted'); END",
]
POSTGRESQL_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION evidence_guard() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION '% are never %', TG_ARGV[0], CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'modified' END; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER invoice_lifecycle_event_guard BEFORE UPDATE OR DELETE ON invoice_lifecycle_event FOR EACH ROW EXECUTE FUNCTION evidence_guard('invoice lifecycle events')",
]


def upgrade():
    op.create_table(
        'invoice_lifecycle_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('invoice_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('occurred_at', sa.DateTime(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['actor_id'], ['user.id'], name=op.f('fk_invoice_lifecycle_event_actor_id_user')),
        sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_invoice_lifecycle_event_invoice_id_invoice')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_lifecycle_event')),
    )
    op.create_index(op.f('ix_invoice_lifecycle_event_invoice_id'), 'invoice_lifecycle_event', ['invoice_id'])
    triggers = {"sqlite": SQLITE_TRIGGERS, "postgresql": POSTGRESQL_TRIGGERS}
    for statement in triggers.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade():
    op.drop_table('invoice_lifecycle_event')
