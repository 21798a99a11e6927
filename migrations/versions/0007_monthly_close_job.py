"""Monthly closes queued from the back office and run by the outbox worker (monthly_close_job)

Revision ID: 0007
Revises: 0006

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('queued', 'running')")


def upgrade():
    op.create_table(
        'monthly_close_job',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('period', sa.String(length=7), nullable=False),
        sa.Column('status', sa.Enum('queued', 'running', 'done', 'failed', name='closejobstatus',
                                    native_enum=False, create_constraint=False, length=20),
                  nullable=False),
        sa.Column('requested_by_id', sa.Integer(), nullable=True),
        sa.Column('requested_at', sa.DateTime(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('issued_count', sa.Integer(), nullable=False),
        sa.Column('already_billed_count', sa.Integer(), nullable=False),
        sa.Column('failures_count', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['requested_by_id'], ['user.id'],
                                name=op.f('fk_monthly_close_job_requested_by_id_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_monthly_close_job')),
    )
    op.create_index('uq_monthly_close_job_active', 'monthly_close_job', ['period'], unique=True,
                    sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    op.create_index('ix_monthly_close_job_status', 'monthly_close_job', ['status', 'id'])


def downgrade():
    op.drop_index('ix_monthly_close_job_status', table_name='monthly_close_job')
    op.drop_index('uq_monthly_close_job_active', table_name='monthly_close_job')
    op.drop_table('monthly_close_job')
