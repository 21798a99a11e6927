"""Each user's language for the pages, emails and documents they receive

Revision ID: 0013
Revises: 0012

NULL means French, the product's language; `en` is the only other one.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('user', sa.Column('language', sa.String(length=2), nullable=True))


def downgrade():
    op.drop_column('user', 'language')
