"""quote lists read from indexes: id added to (status, valid_until); (id, organisation_id)

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
    # The quote list searched by organisation name: PostgreSQL reads this index backwards, testing
    # the owner on each entry, and fetches only the rows of the page (SQLite gains nothing).
    if op.get_bind().dialect.name == "postgresql":
        op.create_index('ix_quote_newest_owner', 'quote', ['id', 'organisation_id'], unique=False)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index('ix_quote_newest_owner', table_name='quote')
    op.drop_index('ix_quote_status_valid_until', table_name='quote')
    op.create_index('ix_quote_status_valid_until', 'quote', ['status', 'valid_until'], unique=False)
