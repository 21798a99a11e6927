"""Sessions that end (user.session_version) and quote PDFs rendered once (quote_document)

Revision ID: 0005
Revises: 0004

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='0', nullable=False))

    op.create_table(
        'quote_document',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('quote_id', sa.Integer(), nullable=False),
        sa.Column('state_key', sa.String(length=64), nullable=False),
        sa.Column('pdf', sa.LargeBinary(), nullable=False),
        sa.Column('pdf_sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['quote_id'], ['quote.id'], name=op.f('fk_quote_document_quote_id_quote')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_quote_document')),
        sa.UniqueConstraint('quote_id', 'state_key', name=op.f('uq_quote_document_quote_id_state_key')),
    )


def downgrade():
    op.drop_table('quote_document')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('session_version')
