"""A decision taken on the client's behalf keeps staff's note of how the client asked

Revision ID: 0012
Revises: 0011

Added with plain ALTER TABLE (no batch): a batch migration rebuilds a SQLite table and would drop
the evidence triggers of decision.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('decision', sa.Column('on_behalf_note', sa.Text(), nullable=True))


def downgrade():
    op.drop_column('decision', 'on_behalf_note')
