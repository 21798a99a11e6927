"""The paid rendering of an invoice, stored once beside its frozen original

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'invoice_document',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('invoice_id', sa.Integer(), nullable=False),
        sa.Column('state_key', sa.String(length=64), nullable=False),
        sa.Column('pdf', sa.LargeBinary(), nullable=False),
        sa.Column('pdf_sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_invoice_document_invoice_id_invoice')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_document')),
        sa.UniqueConstraint('invoice_id', 'state_key', name=op.f('uq_invoice_document_invoice_id_state_key')),
    )


def downgrade():
    op.drop_table('invoice_document')
