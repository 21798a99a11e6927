"""Portail Devis: the app factory."""

from __future__ import annotations

from flask import Flask, has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .config import INSTANCE_DIR, Config, DevelopmentConfig


def create_app(config: type[Config] | dict | None = None) -> Flask:
    """Build the application: config → extensions → blueprints → cli → errors."""
    app = Flask(__name__, instance_path=str(INSTANCE_DIR), template_folder="../templates")
    app.config.from_object(DevelopmentConfig)
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    register_extensions(app)
    register_blueprints(app)
    register_cli(app)
    register_errors(app)
    return app


def register_extensions(app: Flask) -> None:
    from . import auth  # noqa: F401  (registers the user loader)
    from .extensions import babel, csrf, db, login_manager, mail, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.root_path + "/../migrations"),
                     render_as_batch=True, compare_type=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    mail.init_app(app)


SUPPORTED_LOCALES = ["fr", "en"]


def select_locale() -> str:
    """French first; English for a browser that prefers it."""
    if has_request_context():
        return request.accept_languages.best_match(SUPPORTED_LOCALES, default="fr")
    return "fr"


def register_blueprints(app: Flask) -> None:
    from . import labels
    from .admin import init_admin
    from .client import init_portal
    from .health import blueprint as health

    app.register_blueprint(health)
    labels.register(app)
    init_admin(app)
    init_portal(app)


def register_cli(app: Flask) -> None:
    from .cli import register

    register(app)


def register_errors(app: Flask) -> None:
    from .errors import register

    register(app)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """SQLite enforces foreign keys only when asked, per connection."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()
