"""the home's queue of sent quotes read in index order: id added to (status, valid_until)

Revision ID: 0003
Revises: 0002

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    # The queue is ordered by (valid_until, id): with id in the index, the first ten rows are read
    # in order instead of sorting every sent quote that shares the earliest expiry date.
    op.drop_index('ix_quote_status_valid_until', table_name='quote')
    op.create_index('ix_quote_status_valid_until', 'quote', ['status', 'valid_until', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_quote_status_valid_until', table_name='quote')
    op.create_index('ix_quote_status_valid_until', 'quote', ['status', 'valid_until'], unique=False)
