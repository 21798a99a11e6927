"""SQLite: organisation names in a trigram full-text table (FTS5), kept in step by triggers

Revision ID: 0004
Revises: 0003

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TABLE = "organisation_name_search"


def upgrade():
    # PostgreSQL's search reads its trigram index (pg_trgm); SQLite's LIKE '%…%' tested every name.
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5("
               "name, content='organisation', content_rowid='id', tokenize='trigram')")
    op.execute(f"CREATE TRIGGER {TABLE}_insert AFTER INSERT ON organisation BEGIN "
               f"INSERT INTO {TABLE}(rowid, name) VALUES (new.id, new.name); END")
    op.execute(f"CREATE TRIGGER {TABLE}_delete AFTER DELETE ON organisation BEGIN "
               f"INSERT INTO {TABLE}({TABLE}, rowid, name) VALUES ('delete', old.id, old.name); END")
    op.execute(f"CREATE TRIGGER {TABLE}_update AFTER UPDATE OF name ON organisation BEGIN "
               f"INSERT INTO {TABLE}({TABLE}, rowid, name) VALUES ('delete', old.id, old.name); "
               f"INSERT INTO {TABLE}(rowid, name) VALUES (new.id, new.name); END")
    # The organisations already there.
    op.execute(f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')")


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_{trigger}")
    op.execute(f"DROP TABLE IF EXISTS {TABLE}")
