"""The staff search ignores accents and finds members' email domains: organisation.folded_name
(indexed by trigrams: pg_trgm on PostgreSQL, SQLite's FTS5 table now reads it) and user.email_domain

Revision ID: 0014
Revises: 0013

Added with plain ALTER TABLE (no batch): a batch migration rebuilds a SQLite table and would drop
its triggers. The existing rows are filled in Python, a batch at a time, by the same folding as
the models' (copied here as it is when this migration is written).
"""
import unicodedata

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

BATCH = 1000
SEARCH = "organisation_name_search"
SPELLINGS = str.maketrans({"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ø": "o", "Ø": "o",
                           "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "’": "'", "‘": "'"})


def fold_for_search(text):
    decomposed = unicodedata.normalize("NFKD", text.translate(SPELLINGS))
    bare = "".join(character for character in decomposed if not unicodedata.combining(character))
    return " ".join(bare.casefold().split())


def email_domain(email):
    local, at, domain = (email or "").rpartition("@")
    return domain.strip().lower() or None if at and local else None


def _is_sqlite():
    return op.get_bind().dialect.name == "sqlite"


def upgrade():
    if _is_sqlite():
        _drop_name_search()
    op.add_column('organisation', sa.Column('folded_name', sa.Text(), nullable=False, server_default=''))
    op.add_column('user', sa.Column('email_domain', sa.String(length=254), nullable=True))
    _fill('organisation', 'name', 'folded_name', lambda name: fold_for_search(name or ""))
    _fill('user', 'email', 'email_domain', email_domain)
    op.create_index('ix_user_email_domain', 'user', ['email_domain'], unique=False)
    op.drop_index('ix_organisation_name_trgm', table_name='organisation')
    if _is_sqlite():
        # SQLite cannot drop a column's default without rebuilding the table: '' stays, unused.
        op.drop_index('ix_organisation_lower_name', table_name='organisation')
        op.create_index('ix_organisation_folded_name', 'organisation', ['folded_name'], unique=False)
        _create_name_search("folded_name")
    else:
        op.alter_column('organisation', 'folded_name', server_default=None)
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index('ix_organisation_folded_name_trgm', 'organisation', ['folded_name'], unique=False,
                        postgresql_using='gin', postgresql_ops={'folded_name': 'gin_trgm_ops'})


def downgrade():
    op.drop_index('ix_user_email_domain', table_name='user')
    op.drop_column('user', 'email_domain')
    if _is_sqlite():
        _drop_name_search()
        op.drop_index('ix_organisation_folded_name', table_name='organisation')
        op.create_index('ix_organisation_lower_name', 'organisation', [sa.text('lower(name)')], unique=False)
        op.create_index('ix_organisation_name_trgm', 'organisation', ['name'], unique=False)
        op.drop_column('organisation', 'folded_name')
        _create_name_search("name")
    else:
        op.drop_index('ix_organisation_folded_name_trgm', table_name='organisation',
                      postgresql_using='gin', postgresql_ops={'folded_name': 'gin_trgm_ops'})
        op.create_index('ix_organisation_name_trgm', 'organisation', ['name'], unique=False,
                        postgresql_using='gin', postgresql_ops={'name': 'gin_trgm_ops'})
        op.drop_column('organisation', 'folded_name')


def _fill(table_name, source, target, compute):
    """`target` computed from `source` on every row, BATCH rows at a time in id order."""
    connection = op.get_bind()
    table = sa.table(table_name, sa.column('id'), sa.column(source), sa.column(target))
    update = (sa.update(table).where(table.c.id == sa.bindparam('row_id'))
              .values({target: sa.bindparam('computed')}))
    last = 0
    while True:
        rows = connection.execute(sa.select(table.c.id, table.c[source]).where(table.c.id > last)
                                  .order_by(table.c.id).limit(BATCH)).all()
        if not rows:
            return
        connection.execute(update, [{'row_id': row_id, 'computed': compute(value)} for row_id, value in rows])
        last = rows[-1][0]


def _drop_name_search():
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS {SEARCH}_{trigger}")
    op.execute(f"DROP TABLE IF EXISTS {SEARCH}")


def _create_name_search(column):
    """SQLite's FTS5 table of `column` of the organisations, its triggers, filled from the rows."""
    op.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH} USING fts5("
               f"{column}, content='organisation', content_rowid='id', tokenize='trigram')")
    op.execute(f"CREATE TRIGGER {SEARCH}_insert AFTER INSERT ON organisation BEGIN "
               f"INSERT INTO {SEARCH}(rowid, {column}) VALUES (new.id, new.{column}); END")
    op.execute(f"CREATE TRIGGER {SEARCH}_delete AFTER DELETE ON organisation BEGIN "
               f"INSERT INTO {SEARCH}({SEARCH}, rowid, {column}) "
               f"VALUES ('delete', old.id, old.{column}); END")
    op.execute(f"CREATE TRIGGER {SEARCH}_update AFTER UPDATE OF {column} ON organisation BEGIN "
               f"INSERT INTO {SEARCH}({SEARCH}, rowid, {column}) "
               f"VALUES ('delete', old.id, old.{column}); "
               f"INSERT INTO {SEARCH}(rowid, {column}) VALUES (new.id, new.{column}); END")
    op.execute(f"INSERT INTO {SEARCH}({SEARCH}) VALUES ('rebuild')")
