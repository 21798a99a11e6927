"""Configuration, read from the environment once at import of the app factory."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = BASE_DIR / "instance"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))  # type: ignore[arg-type]


def _env_bool(name: str, default: bool) -> bool:
    return (_env(name, "1" if default else "0") or "").lower() in {"1", "true", "yes", "on"}


class Config:
    """Production settings: everything comes from the environment."""

    SECRET_KEY = _env("SECRET_KEY", "dev-insecure-secret-key-change-me")
    SQLALCHEMY_DATABASE_URI = _env("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'portal.db'}")
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    PORTAL_BASE_URL = _env("PORTAL_BASE_URL", "http://127.0.0.1:5000")
    PORTAL_URL_PREFIX = _env("PORTAL_URL_PREFIX", "/espace-client")
    PORTAL_CLIENT_LAYOUT = _env("PORTAL_CLIENT_LAYOUT", "client/layout.html")
    PORTAL_LINK_TTL_HOURS = _env_int("PORTAL_LINK_TTL", 72)
    INVITATION_TTL_HOURS = _env_int("INVITATION_TTL", 168)
    QUOTE_VALIDITY_DAYS = _env_int("QUOTE_VALIDITY_DAYS", 30)
    STAFF_NOTIFICATION_EMAIL = _env("STAFF_NOTIFICATION_EMAIL", "commercial@portail-devis.fr")
    MAIL_SERVER = _env("MAIL_SERVER")
    MAIL_PORT = _env_int("MAIL_PORT", 25)
    MAIL_USE_TLS = _env_bool("MAIL_USE_TLS", False)
    MAIL_USE_SSL = _env_bool("MAIL_USE_SSL", False)
    MAIL_USERNAME = _env("MAIL_USERNAME")
    MAIL_PASSWORD = _env("MAIL_PASSWORD")
    MAIL_DEFAULT_SENDER = _env("MAIL_DEFAULT_SENDER", "Portail Devis <no-reply@portail-devis.fr>")
    # The outbox decides what is sent; Flask-Mail must never silently drop a message.
    MAIL_SUPPRESS_SEND = False
    MAIL_TIMEOUT = _env_int("MAIL_TIMEOUT", 30)
    MAIL_MAX_ATTEMPTS = _env_int("MAIL_MAX_ATTEMPTS", 8)
    MAIL_RETRY_BASE_SECONDS = _env_int("MAIL_RETRY_BASE_SECONDS", 60)
    MAIL_OUTBOX_DIR = _env("MAIL_OUTBOX_DIR", str(INSTANCE_DIR / "mail"))
    MAIL_WORKER_INTERVAL = _env_int("MAIL_WORKER_INTERVAL", 5)
    BABEL_DEFAULT_LOCALE = "fr"
    BABEL_DEFAULT_TIMEZONE = "Europe/Paris"
    WTF_CSRF_TIME_LIMIT = None
    TESTING = False


class DevelopmentConfig(Config):
    """`make run`: the embedded defaults."""

    DEBUG = False


class TestConfig(Config):
    """The test suite: SQLite by default, PostgreSQL when TEST_DATABASE_URL is set."""

    TESTING = True
    SECRET_KEY = "test-secret-key"
    SQLALCHEMY_DATABASE_URI = _env("TEST_DATABASE_URL", "sqlite://")
    WTF_CSRF_ENABLED = True
    MAIL_SERVER = None
