"""Portail Devis: the app factory."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from .config import INSECURE_SECRET_KEY, INSTANCE_DIR, PORTAL_ENV, Config, DevelopmentConfig

# Alembic's scripts, beside the package: the same for the portal's app and a host mounting it.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def create_app(config: type[Config] | dict | None = None) -> Flask:
    """Build the application: config → extensions → blueprints → cli → errors."""
    app = Flask(__name__, instance_path=str(INSTANCE_DIR), template_folder="../templates")
    app.config.from_object(Config if PORTAL_ENV == "production" else DevelopmentConfig)
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)
    check_production_config(app)
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    register_proxy_fix(app)
    app.url_map.converters["int"] = DatabaseIdConverter
    register_extensions(app)
    register_read_only_pages(app)
    register_blueprints(app)
    register_security_headers(app)
    register_cli(app)
    register_errors(app)
    return app


def check_production_config(app: Flask) -> None:
    """PORTAL_ENV=production refuses to start with the development SECRET_KEY, without
    PORTAL_BASE_URL (the links of the emails), with rate limits counted in each process's memory
    (each worker would allow its own share) but for one worker, or with webhooks allowed to local
    addresses."""
    if PORTAL_ENV != "production" or app.testing:
        return
    if app.config["SECRET_KEY"] == INSECURE_SECRET_KEY:
        raise RuntimeError("PORTAL_ENV=production: set SECRET_KEY (a long random value).")
    if not app.config.get("PORTAL_BASE_URL"):
        raise RuntimeError(
            "PORTAL_ENV=production: set PORTAL_BASE_URL to the portal's public address (for example "
            "https://portail.example.fr): every link of every email is built on it.")
    if (app.config.get("RATE_LIMITS_ENABLED", True) and not app.config.get("SINGLE_WORKER")
            and str(app.config.get("RATELIMIT_STORAGE_URI") or "memory://").startswith("memory://")):
        raise RuntimeError(
            "PORTAL_ENV=production: RATELIMIT_STORAGE_URI=memory:// counts sign-in attempts in each "
            "worker process, so every worker would allow its own share. Set RATELIMIT_STORAGE_URI="
            "redis://host:6379/0 (shared by all workers), or PORTAL_SINGLE_WORKER=1 if a single "
            "worker process serves the site.")
    if app.config.get("WEBHOOKS_ALLOW_LOCAL"):
        raise RuntimeError(
            "PORTAL_ENV=production: WEBHOOKS_ALLOW_LOCAL would let webhooks reach this network's own "
            "addresses (loopback, private, cloud metadata). It is for development and tests only.")


class DatabaseIdConverter(IntegerConverter):
    """`<int:…>` in URLs: at most a database INTEGER, so a huge id is a 404, not a database error."""

    def __init__(self, map, *args, max: int | None = 2**31 - 1, **kwargs) -> None:
        super().__init__(map, *args, max=max, **kwargs)


PROXY_FIX_SETTINGS = ("x_for", "x_proto", "x_host", "x_port", "x_prefix")


def register_proxy_fix(app: Flask) -> None:
    """Behind a reverse proxy, trust its X-Forwarded-* headers as configured (PROXY_FIX_X_FOR…)."""
    counts = {name: int(app.config.get(f"PROXY_FIX_{name.upper()}") or 0) for name in PROXY_FIX_SETTINGS}
    if any(counts.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **counts)  # type: ignore[method-assign]


def register_extensions(app: Flask) -> None:
    from . import (
        auth,  # noqa: F401  (registers the user loader)
        database,
        i18n,
        schema_guards,  # noqa: F401  (the flush guard; the triggers built with the tables)
    )
    from .extensions import babel, csrf, db, limiter, login_manager, mail, migrate

    db.init_app(app)
    database.register(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True, compare_type=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale)
    i18n.install(app)
    mail.init_app(app)
    limiter.init_app(app)


def register_blueprints(app: Flask) -> None:
    from . import fragments, labels
    from .admin import init_admin
    from .api import init_api
    from .client import init_portal
    from .health import blueprint as health

    app.register_blueprint(health)
    labels.register(app)
    fragments.register(app)
    init_admin(app)
    init_portal(app)
    init_api(app)
    register_webhooks(app)
    register_favicon(app)


def register_favicon(app: Flask) -> None:
    """/favicon.ico, which browsers ask for at the root whatever the pages link to."""
    icon = (Path(app.static_folder or "static") / "favicon.ico").read_bytes()  # 3 KB, read once

    def favicon():
        return app.response_class(icon, mimetype="image/vnd.microsoft.icon")

    app.add_url_rule("/favicon.ico", endpoint="favicon", view_func=favicon)


def register_webhooks(app: Flask) -> None:
    from .webhooks import blueprint as webhooks

    app.register_blueprint(webhooks)


def register_read_only_pages(app: Flask) -> None:
    from .read_only import register

    register(app)


def register_security_headers(app: Flask) -> None:
    from .headers import register

    register(app)


def register_cli(app: Flask) -> None:
    from .cli import register

    register(app)


def register_errors(app: Flask) -> None:
    from .errors import register

    register(app)
