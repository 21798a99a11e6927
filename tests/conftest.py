"""Fixtures: the app on SQLite (default) or PostgreSQL (TEST_DATABASE_URL), a clean database per test."""

from __future__ import annotations

import contextvars
import os

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, text

from portal import create_app, fragments
from portal.config import TestConfig
from portal.extensions import db, limiter

from . import factories
from .web import sign_in

IS_POSTGRES = os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql")

# Tests that only make sense with several real connections (row locks, SKIP LOCKED) are
# collected in the PostgreSQL half of the suite, which `make test` always runs in CI.
collect_ignore_glob = [] if IS_POSTGRES else ["*_pg.py"]


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    url = os.environ.get("TEST_DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    )
    config = type("SuiteConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": url})
    app = create_app(config)
    if not IS_POSTGRES:
        with app.app_context():
            event.listen(db.engine, "connect", _fast_sqlite)
    yield app
    with app.app_context():
        db.engine.dispose()  # close pooled connections before the interpreter does


def _fast_sqlite(dbapi_connection, _record) -> None:
    """Test databases are throwaway: skip fsync, keep the rollback journal in memory."""
    dbapi_connection.execute("PRAGMA synchronous=OFF")
    dbapi_connection.execute("PRAGMA journal_mode=MEMORY")


@pytest.fixture(scope="session")
def _schema(app):
    with app.app_context():
        if IS_POSTGRES:
            db.drop_all()
            db.create_all()
        else:
            _recreate_sqlite_schema()
    yield


@pytest.fixture(autouse=True)
def app_ctx(app, _schema):
    """Each test runs in an app context on an empty database."""
    with app.app_context():
        yield
        db.session.remove()
        _empty_database()
        app.extensions[fragments.CACHE].clear()  # the next test's quote 1 is another quote


def _empty_database() -> None:
    if IS_POSTGRES:
        tables = ", ".join(f'"{table.name}"' for table in db.metadata.sorted_tables)
        with db.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    else:
        _recreate_sqlite_schema()


def _recreate_sqlite_schema() -> None:
    """Issued invoices refuse DELETE (a trigger), so SQLite starts over with a fresh schema;
    foreign keys are off meanwhile because quote and invoice reference each other."""
    with db.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        db.metadata.drop_all(connection)
        db.metadata.create_all(connection)
        connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")


class IsolatedClient(FlaskClient):
    """Each request runs outside the test's app context, as in production: its own app context,
    `g` and database session. Tests commit what a request must see, and expire what it changed."""

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture
def client(app):
    app.test_client_class = IsolatedClient
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make():
    """The factories (tests/factories.py), e.g. `make.organisation(name="ACME")`."""
    return factories


@pytest.fixture
def staff_client(client, make):
    """A back-office session of the world's admin (make.world(), kept as `client.world`)."""
    world = make.world()
    sign_in(client, world["admin"])
    client.world = world
    return client


# --- Email ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="session")
def _mail_outbox_dir(app, tmp_path_factory):
    """Without MAIL_SERVER the outbox writes .eml files: keep them out of the real instance/."""
    app.config["MAIL_OUTBOX_DIR"] = str(tmp_path_factory.mktemp("mail"))


@pytest.fixture
def smtp_server(app, monkeypatch):
    """A real SMTP server (aiosmtpd) on 127.0.0.1; the app's MAIL_SERVER/MAIL_PORT point to it."""
    from .smtp import SmtpServer

    server = SmtpServer()
    server.start()
    monkeypatch.setitem(app.config, "MAIL_SERVER", server.host)
    monkeypatch.setitem(app.config, "MAIL_PORT", server.port)
    monkeypatch.setitem(app.config, "MAIL_TIMEOUT", 5)
    yield server
    server.stop()


# --- Card payments: localstripe (tests/stripe_server.py) --------------------------------------

from .stripe_server import card_payments, localstripe  # noqa: E402, F401  (fixtures)

# --- Security tests -----------------------------------------------------------------------------


@pytest.fixture
def other_app(app):
    """Build more apps, each with its own settings (`other_app(PROXY_FIX_X_FOR=1)`), on the test
    database; the rate limiter, shared by every app of the process, is given back to `app` after."""
    from portal.extensions import limiter

    made = []

    def build(**settings):
        config = type("OtherConfig", (TestConfig,), {
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "MAIL_OUTBOX_DIR": app.config["MAIL_OUTBOX_DIR"], **settings})
        made.append(create_app(config))
        return made[-1]

    yield build
    limiter.init_app(app)
    for other in made:
        with other.app_context():
            db.engine.dispose()


@pytest.fixture
def new_client(app, client):
    """Another browser: `new_client()` is a client of its own session, isolated like `client`."""
    return app.test_client


# --- Hypothesis -------------------------------------------------------------------------------
# "portal" (default): a modest, reproducible run for the suite; HYPOTHESIS_PROFILE=explore searches
# further, with fresh random examples each run.
from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

hypothesis_settings.register_profile("portal", max_examples=25, deadline=None, database=None,
                                     derandomize=True, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.register_profile("explore", max_examples=300, deadline=None, database=None,
                                     suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "portal"))


# --- A wide pool (PostgreSQL tests of 20 simultaneous requests) ----------------------------------

WIDE_POOL_TIMEOUT = 30


@pytest.fixture(scope="module")
def wide_app(app):
    """The test database behind a pool for 20 simultaneous connections, and a lock timeout so that
    a stuck request fails instead of hanging the suite (PostgreSQL only: `options`)."""
    wide = create_app({**app.config, "SQLALCHEMY_ENGINE_OPTIONS": {
        "pool_size": 25, "max_overflow": 0, "pool_timeout": WIDE_POOL_TIMEOUT,
        "connect_args": {"options": f"-c lock_timeout={WIDE_POOL_TIMEOUT * 1000}"}}})
    yield wide
    limiter.init_app(app)  # create_app bound the process's one limiter to the wide app
    with wide.app_context():
        db.engine.dispose()


# --- A pool of one connection (tests of the idle ping and of killed connections) ----------------


def _own_pool_app(app, idle_ping_seconds: float):
    """The test database behind a pool of its own, so that its connections can be killed."""
    return create_app({**app.config, "DB_IDLE_PING_SECONDS": idle_ping_seconds,
                       "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0}})


@pytest.fixture
def own_pool_app(app):
    isolated = _own_pool_app(app, 10.0)
    yield isolated
    with isolated.app_context():
        db.engine.dispose()


@pytest.fixture
def pinging_pool_app(app):
    """Every checkout counts as idle long enough to be pinged."""
    isolated = _own_pool_app(app, 0.0)
    yield isolated
    with isolated.app_context():
        db.engine.dispose()
