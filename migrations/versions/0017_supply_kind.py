"""What each product and each line supplies (goods or services), from which an invoice's category of
operation is computed (goods, services, or mixed)

Revision ID: 0017
Revises: 0016

Products and quote lines already written take the seller's category of operations when it is goods
or services (services otherwise). Invoice lines already issued keep none (they are never modified):
their invoice's category stays the seller's setting frozen with it. Plain ALTER TABLE (no batch): a
batch migration rebuilds a SQLite table and would drop the triggers of invoice_line.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

SELLER_KIND = ("(SELECT CASE WHEN operation_category = 'goods' THEN 'goods' ELSE 'services' END"
               " FROM seller_settings WHERE id = 1)")


def upgrade():
    for table in ('product', 'quote_line'):
        op.add_column(table, sa.Column('supply_kind', sa.String(length=20), server_default='services',
                                       nullable=False))
        op.execute(f"UPDATE {table} SET supply_kind = coalesce({SELLER_KIND}, 'services')")
    op.add_column('invoice_line', sa.Column('supply_kind', sa.String(length=20), nullable=True))


def downgrade():
    for table in ('invoice_line', 'quote_line', 'product'):
        op.drop_column(table, 'supply_kind')
