"""organisation name search: an index on lower(name)

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


def upgrade():
    # Search results are ordered by lower(name) with a LIMIT: in this index's order, the database
    # stops at the last row shown instead of sorting every organisation that matches.
    op.create_index('ix_organisation_lower_name', 'organisation', [text('lower(name)')], unique=False)


def downgrade():
    op.drop_index('ix_organisation_lower_name', table_name='organisation')
