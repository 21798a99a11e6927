"""Each organisation's credit balance stored on its row, kept by the database: a trigger adds every
new credit entry's amount to it

Revision ID: 0015
Revises: 0014

The balance was the sum of the ledger, summed again at each consumption; the ledger stays the
evidence and the stored balance is always its sum (filled here from it, then kept by the trigger in
the statement that inserts each entry). Added with plain ALTER TABLE (no batch): a batch migration
rebuilds a SQLite table and would drop its triggers.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

# Copied from portal.schema_guards when this revision was written: a migration never changes later.
SQLITE_CREDIT_BALANCE_TRIGGERS = [
    "CREATE TRIGGER credit_entry_balance AFTER INSERT ON credit_entry BEGIN UPDATE organisation SET credit_balance = credit_balance + new.amount WHERE id = new.organisation_id; END",
]
POSTGRESQL_CREDIT_BALANCE_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION credit_entry_balance() RETURNS trigger AS $$ BEGIN UPDATE organisation SET credit_balance = credit_balance + NEW.amount WHERE id = NEW.organisation_id; RETURN NULL; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER credit_entry_balance AFTER INSERT ON credit_entry FOR EACH ROW EXECUTE FUNCTION credit_entry_balance()",
]


def upgrade():
    op.add_column('organisation', sa.Column('credit_balance', sa.Integer(), server_default='0', nullable=False))
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # No entry may be written between the sum and the trigger's creation.
        op.execute("LOCK TABLE credit_entry IN SHARE MODE")
    op.execute("UPDATE organisation SET credit_balance = coalesce((SELECT sum(amount) FROM credit_entry"
               " WHERE credit_entry.organisation_id = organisation.id), 0)")
    triggers = {"sqlite": SQLITE_CREDIT_BALANCE_TRIGGERS, "postgresql": POSTGRESQL_CREDIT_BALANCE_TRIGGERS}
    for statement in triggers.get(dialect, []):
        op.execute(statement)


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS credit_entry_balance ON credit_entry")
        op.execute("DROP FUNCTION IF EXISTS credit_entry_balance()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS credit_entry_balance")
    op.drop_column('organisation', 'credit_balance')
