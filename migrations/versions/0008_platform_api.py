"""The platform API: keys, idempotency keys, organisations' external ids, consumption references,
single sign-on links' destinations, an index that sums a balance

Revision ID: 0008
Revises: 0007

Columns are added with plain ALTER TABLE (no batch): a batch migration rebuilds a SQLite table and
would drop the evidence triggers of credit_entry.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def _on_sqlite() -> bool:
    # SQLite cannot ALTER a constraint in: its foreign keys are written in the ADD COLUMN itself.
    return op.get_context().dialect.name == 'sqlite'


def upgrade():
    op.create_table(
        'api_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('prefix', sa.String(length=20), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('scopes', sa.String(length=300), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_used_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['created_by_id'], ['user.id'], name=op.f('fk_api_key_created_by_id_user')),
        sa.ForeignKeyConstraint(['revoked_by_id'], ['user.id'], name=op.f('fk_api_key_revoked_by_id_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_key')),
        sa.UniqueConstraint('secret_hash', name=op.f('uq_api_key_secret_hash')),
    )
    op.create_table(
        'api_idempotency_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('api_key_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=False),
        sa.Column('response_body', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_key.id'],
                                name=op.f('fk_api_idempotency_key_api_key_id_api_key')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_idempotency_key')),
        sa.UniqueConstraint('api_key_id', 'key', name=op.f('uq_api_idempotency_key_api_key_id_key')),
    )
    op.add_column('organisation', sa.Column('external_id', sa.String(length=100), nullable=True))
    op.create_index('uq_organisation_external_id', 'organisation', ['external_id'], unique=True)
    op.add_column('credit_entry', sa.Column('credit_note_id', sa.Integer(),
                                            sa.ForeignKey('invoice.id', name=op.f('fk_credit_entry_credit_note_id_invoice')),
                                            nullable=True), inline_references=_on_sqlite())
    op.add_column('credit_entry', sa.Column('api_key_id', sa.Integer(),
                                            sa.ForeignKey('api_key.id', name=op.f('fk_credit_entry_api_key_id_api_key')),
                                            nullable=True), inline_references=_on_sqlite())
    op.add_column('credit_entry', sa.Column('external_reference', sa.String(length=200), nullable=True))
    op.add_column('login_token', sa.Column('next_path', sa.String(length=500), nullable=True))
    op.create_index('ix_credit_entry_organisation_amount', 'credit_entry', ['organisation_id', 'amount'])


def downgrade():
    op.drop_index('ix_credit_entry_organisation_amount', table_name='credit_entry')
    op.drop_column('login_token', 'next_path')
    op.drop_column('credit_entry', 'external_reference')
    op.drop_column('credit_entry', 'api_key_id')
    op.drop_column('credit_entry', 'credit_note_id')
    op.drop_index('uq_organisation_external_id', table_name='organisation')
    op.drop_column('organisation', 'external_id')
    op.drop_table('api_idempotency_key')
    op.drop_table('api_key')
