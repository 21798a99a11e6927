"""A quote request is answered when its quote is sent: requests marked answered by a draft that was
never sent go back to new (the draft stays linked, shown « Devis en préparation »)

Revision ID: 0011
Revises: 0010
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.execute(
        "UPDATE quote_request SET status = 'new', handled_at = NULL "
        "WHERE status = 'answered' AND id IN "
        "(SELECT request_id FROM quote WHERE request_id IS NOT NULL AND sent_at IS NULL)"
    )


def downgrade():
    pass  # the drafts' requests were wrongly answered: nothing to restore
