"""Bulk loading for the benchmarks: a fresh schema (the models' `create_all`), then rows written
with executemany (SQLite) or COPY (PostgreSQL, psycopg), never through the ORM.

The schema comes from `db.create_all()`, not from the Alembic migrations: the models may be ahead
of the migrations while they are being regenerated, and the benchmark must measure the models'
indexes. Foreign keys are not checked during the load (SQLite `foreign_keys=OFF`, PostgreSQL
`session_replication_role = replica`): the generator builds consistent rows by construction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import make_url

from portal import create_app
from portal.config import Config, DevelopmentConfig
from portal.extensions import db
from portal.models import email_domain, fold_for_search
from portal.schema_guards import ORGANISATION_NAME_SEARCH, SQLITE_NAME_SEARCH_DDL, index_names, is_built_on

BATCH = 20_000
# Columns the models compute from another one as the ORM sets it (Organisation.folded_name from the
# name, User.email_domain from the email): a bulk load writes rows directly, so it computes them here.
DERIVED_COLUMNS = {"organisation": {"folded_name": ("name", fold_for_search)},
                   "user": {"email_domain": ("email", email_domain)}}


def bench_config(url: str, **overrides: Any) -> type[Config]:
    """`make run`'s config on `url` (no SMTP: the outbox writes files under /tmp). Sign-in rate
    limits are off: the benchmark signs in again and again from 127.0.0.1; no measured page has one."""
    values = {"SQLALCHEMY_DATABASE_URI": url, "MAIL_SERVER": None,
              "MAIL_OUTBOX_DIR": "/tmp/portal-bench-mail", "SECRET_KEY": BENCH_SECRET_KEY,
              "RATE_LIMITS_ENABLED": False, "SESSION_COOKIE_SECURE": False, **overrides}
    return type("BenchConfig", (DevelopmentConfig,), values)


BENCH_SECRET_KEY = "bench-secret-key-not-for-production"


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def sqlite_path(url: str) -> Path:
    return Path(make_url(url).database)


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as a libpq connection string (psycopg)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def recreate_database(url: str) -> None:
    """Drop and create the database (PostgreSQL) or delete the file (SQLite), then create the schema."""
    if is_postgres(url):
        target = make_url(url)
        admin = libpq_url(url).rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{target.database}"')
    else:
        path = sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    app = create_app(bench_config(url))
    with app.app_context():
        db.create_all()
        db.engine.dispose()


def missing_columns(url: str) -> list[str]:
    """The models' columns an existing bench database lacks (it was generated before they were
    added): such a dataset is generated again, its rows would not fill them."""
    from sqlalchemy import inspect

    app = create_app(bench_config(url))
    with app.app_context():
        inspector = inspect(db.engine)
        missing = [f"{table.name}.{column.name}" for table in db.metadata.sorted_tables
                   if inspector.has_table(table.name)
                   for column in table.columns
                   if column.name not in {present["name"] for present in inspector.get_columns(table.name)}]
        db.engine.dispose()
    return missing


def ensure_indexes(url: str) -> list[str]:
    """Create the models' indexes missing from an existing bench database (added to the models
    after it was generated), so that the benchmark always measures the models' indexes."""
    from sqlalchemy import inspect

    created = []
    app = create_app(bench_config(url))
    with app.app_context():
        if is_postgres(url):
            with db.engine.begin() as connection:  # as the migration does (see portal/schema_guards.py)
                connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        inspector = inspect(db.engine)
        for table in db.metadata.sorted_tables:
            if not inspector.has_table(table.name):
                table.create(db.engine)
                created.append(table.name)
                continue
            with db.engine.connect() as connection:
                present = index_names(connection, table.name)
            for index in table.indexes:
                if index.name not in present and is_built_on(index, db.engine.dialect.name):
                    index.create(db.engine)
                    created.append(index.name)
        if not is_postgres(url) and not inspector.has_table(ORGANISATION_NAME_SEARCH):
            _create_name_search(db.engine)
            created.append(ORGANISATION_NAME_SEARCH)
        if created:
            with db.engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE")
        db.engine.dispose()
    return created


def _create_name_search(engine) -> None:
    """SQLite's name search table (as the models create it), filled from the organisations."""
    with engine.begin() as connection:
        for statement in SQLITE_NAME_SEARCH_DDL:
            connection.exec_driver_sql(statement)
        connection.exec_driver_sql(
            f"INSERT INTO {ORGANISATION_NAME_SEARCH}({ORGANISATION_NAME_SEARCH}) VALUES ('rebuild')")


def database_exists(url: str) -> bool:
    if not is_postgres(url):
        return sqlite_path(url).exists()
    admin = libpq_url(url).rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        row = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (make_url(url).database,)).fetchone()
    return row is not None


def _column_fillers(table_name: str, columns: Sequence[str]) -> tuple[list[str], list[Any]]:
    """Columns of the model's table that the generator does not know (added to the models later):
    their Python default, or NULL; a NOT NULL column without a default is an error to fix here."""
    table = db.metadata.tables[table_name]
    extra_names, extra_values = [], []
    for column in table.columns:
        if column.name in columns:
            continue
        default = column.default
        if default is not None and default.is_scalar:
            value = default.arg
        elif default is not None and default.is_callable:
            value = default.arg(None)
        elif column.nullable:
            value = None
        else:
            raise RuntimeError(f"bench generator: {table_name}.{column.name} needs a value")
        extra_names.append(column.name)
        extra_values.append(getattr(value, "value", value))
    return extra_names, extra_values


# The organisations' stored credit balances, summed from the ledger: after a bulk load that wrote
# it without the database's trigger (PostgreSQL's COPY here runs with triggers off).
RECOMPUTE_CREDIT_BALANCES = (
    "UPDATE organisation SET credit_balance = coalesce((SELECT sum(amount) FROM credit_entry"
    " WHERE credit_entry.organisation_id = organisation.id), 0)")


class Writer:
    """Buffers rows per table and writes them in batches; `close()` flushes and finishes."""

    def __init__(self, url: str, columns: dict[str, Sequence[str]]) -> None:
        self.url = url
        self.counts: dict[str, int] = {}
        self._buffers: dict[str, list[tuple]] = {}
        self._columns = {}
        self._extras = {}
        self._derived: dict[str, list] = {}
        app = create_app(bench_config(url))
        with app.app_context():
            for table, names in columns.items():
                derived = {name: source for name, source in DERIVED_COLUMNS.get(table, {}).items()
                           if name not in names}
                extra_names, extra_values = _column_fillers(table, [*names, *derived])
                self._columns[table] = list(names) + list(derived) + extra_names
                self._derived[table] = [(list(names).index(source), compute)
                                        for source, compute in derived.values()]
                self._extras[table] = tuple(extra_values)
        if is_postgres(url):
            self._pg = psycopg.connect(libpq_url(url))
            self._pg.execute("SET session_replication_role = replica")
            self._pg.execute("SET synchronous_commit = off")
        else:
            self._sqlite = sqlite3.connect(sqlite_path(url), isolation_level=None)
            for pragma in ("foreign_keys=OFF", "synchronous=OFF", "journal_mode=MEMORY",
                           "cache_size=-1000000", "temp_store=MEMORY"):
                self._sqlite.execute(f"PRAGMA {pragma}")
            self._sqlite.execute("BEGIN")

    def add(self, table: str, row: tuple) -> None:
        buffer = self._buffers.setdefault(table, [])
        buffer.append(row)
        if len(buffer) >= BATCH:
            self._flush(table)

    def add_many(self, table: str, rows: Iterable[tuple]) -> None:
        for row in rows:
            self.add(table, row)

    def _flush(self, table: str) -> None:
        rows = self._buffers.get(table)
        if not rows:
            return
        extras, derived = self._extras[table], self._derived[table]
        if derived:
            rows = [row + tuple(compute(row[index]) for index, compute in derived) for row in rows]
        if extras:
            rows = [row + extras for row in rows]
        names = self._columns[table]
        quoted = ", ".join(f'"{name}"' for name in names)
        if is_postgres(self.url):
            with self._pg.cursor() as cursor, cursor.copy(
                    f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in names)
            self._sqlite.executemany(f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})', rows)
        self.counts[table] = self.counts.get(table, 0) + len(rows)
        self._buffers[table] = []

    def close(self) -> None:
        """Flush everything, commit, reset the id sequences (PostgreSQL) and gather statistics."""
        for table in list(self._buffers):
            self._flush(table)
        if is_postgres(self.url):
            self._pg.execute(RECOMPUTE_CREDIT_BALANCES)
            self._pg.commit()
            self._pg.autocommit = True
            for table in self._columns:
                if "id" in self._columns[table]:
                    self._pg.execute(
                        f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                        f'coalesce((SELECT max(id) FROM "{table}"), 0) + 1, false)')
            self._pg.execute("VACUUM (ANALYZE)")  # visibility map (index-only scans) and statistics
            self._pg.close()
        else:
            self._sqlite.execute(RECOMPUTE_CREDIT_BALANCES)
            self._sqlite.execute("COMMIT")
            self._sqlite.execute("ANALYZE")
            self._sqlite.close()


def ts(value: datetime | None) -> str | None:
    """A datetime as SQLAlchemy stores it on SQLite (and as PostgreSQL's COPY reads it)."""
    return value.isoformat(" ", "microseconds") if value is not None else None


def day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def as_json(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
