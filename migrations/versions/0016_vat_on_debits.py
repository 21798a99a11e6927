"""The seller's option for paying VAT on debits (« d'après les débits »), printed on its invoices

Revision ID: 0016
Revises: 0015

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('seller_settings', sa.Column('vat_on_debits', sa.Boolean(), server_default=sa.false(),
                                               nullable=False))


def downgrade():
    op.drop_column('seller_settings', 'vat_on_debits')
