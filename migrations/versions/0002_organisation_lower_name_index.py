"""organisation name search on SQLite: an index on lower(name)

Revision ID: 0002
Revises: 0001

"""
from alembic import op
from sqlalchemy import text

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade():
    # Search results are ordered by lower(name) with a LIMIT: in this index's order, SQLite stops
    # at the last row shown instead of testing and sorting every name. PostgreSQL is faster with
    # its trigram index (ix_organisation_name_trgm), and would pick this one for a LIMIT.
    if _is_sqlite():
        op.create_index('ix_organisation_lower_name', 'organisation', [text('lower(name)')], unique=False)


def downgrade():
    if _is_sqlite():
        op.drop_index('ix_organisation_lower_name', table_name='organisation')
