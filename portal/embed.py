"""Mount the client portal « Espace client » inside another Flask app (the host).

`mount_portal(host_app, url_prefix=..., layout=..., database_url=...)` gives the host what
`create_app` gives the portal's own app, for the portal's pages only:

- the portal's settings (`portal.config.Config`) as defaults: `setdefault`, so the host's own
  values win, Flask's built-in ones too (the session cookie's flags are the host's);
- its extensions bound to the host: the database, Flask-Login, CSRF, Babel (with the portal's
  catalogues), the rate limiter, the mailer, Flask-Migrate (`flask db upgrade` on the host);
- its blueprint at `url_prefix`, its error pages (a host's own handler for a status code wins),
  its security headers on the portal's responses only, its CLI commands; the platform API
  (`/api/v1`) with `api=True`;
- its templates found after the host's, so that the host's `layout` (a template of the host's own
  folder, e.g. "host/layout.html") frames every page, and a host template of the same name as one
  of the portal's replaces it.

The host shares its session cookie and its Flask-Login with the portal: a host that signs its own
users in with Flask-Login, or translates with its own Flask-Babel, frames the portal instead (an
iframe and single sign-on through the API: examples/host_platform/).
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, Response, request
from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader

from . import DatabaseIdConverter, register_extensions, register_read_only_pages
from .config import Config

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR.parent / "templates"
TRANSLATIONS_DIR = PACKAGE_DIR / "translations"
# The blueprints whose responses carry the portal's security headers (CSP, no-store…).
PORTAL_BLUEPRINTS = frozenset({"client", "api"})


class PortalMountError(RuntimeError):
    """The host app cannot take the portal as it is configured (a message for its developer)."""


def mount_portal(app: Flask, *, url_prefix: str | None = None, layout: str | None = None,
                 database_url: str | None = None, api: bool = False) -> Flask:
    """Mount the client portal in `app` at `url_prefix`, its pages extending the host's `layout`,
    its data in `database_url` (each defaults to the host's setting, then the portal's)."""
    refuse_conflicts(app)
    apply_settings(app, url_prefix=url_prefix, layout=layout, database_url=database_url)
    add_portal_templates(app)
    # Set before the portal's routes are added: an id beyond a database INTEGER is a 404.
    app.url_map.converters["int"] = DatabaseIdConverter
    init_extensions(app)
    register_portal(app, api=api)
    return app


def refuse_conflicts(app: Flask) -> None:
    """A host with its own Flask-Login, Flask-Babel or CSRFProtect would lose it silently."""
    from .extensions import csrf

    taken = [name for name, present in (
        ("Flask-Login", getattr(app, "login_manager", None) is not None),
        ("Flask-Babel", "babel" in app.extensions),
        ("CSRFProtect", app.extensions.get("csrf") not in (None, csrf)),
    ) if present]
    if taken:
        raise PortalMountError(
            f"The host app already uses {', '.join(taken)}: the mounted portal brings its own. "
            "Frame the portal in an iframe instead (single sign-on through the API).")
    if not app.config.get("SECRET_KEY"):
        raise PortalMountError("The host app needs a SECRET_KEY: the portal's sessions and CSRF "
                               "tokens are signed with it.")


def apply_settings(app: Flask, *, url_prefix: str | None, layout: str | None,
                   database_url: str | None) -> None:
    """The arguments given, then the host's settings, then the portal's defaults."""
    explicit = {"PORTAL_URL_PREFIX": url_prefix, "PORTAL_CLIENT_LAYOUT": layout,
                "SQLALCHEMY_DATABASE_URI": database_url}
    app.config.update({name: value for name, value in explicit.items() if value is not None})
    for name in dir(Config):
        if name.isupper():
            app.config.setdefault(name, getattr(Config, name))
    # Flask-Babel looks for catalogues under the host's folder unless told where the portal's are.
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))


def add_portal_templates(app: Flask) -> None:
    """The host's templates first (its layout, its overrides), then the portal's."""
    loaders: list[BaseLoader] = [app.jinja_loader] if app.jinja_loader is not None else []
    app.jinja_loader = ChoiceLoader([*loaders, FileSystemLoader(str(TEMPLATES_DIR))])


def init_extensions(app: Flask) -> None:
    """The portal's extensions, bound to the host by the functions `create_app` binds them with."""
    register_extensions(app)
    register_read_only_pages(app)


def register_portal(app: Flask, *, api: bool) -> None:
    """The portal's blueprint and Jinja helpers, its error pages, its headers and commands."""
    from . import cli, errors, fragments, labels
    from .client import init_portal

    labels.register(app)
    fragments.register(app)
    init_portal(app)
    if api:
        from .api import init_api

        init_api(app)
    if app.config.get("STRIPE_WEBHOOK_SECRET"):  # card payments confirmed by Stripe's events
        from .webhooks import blueprint as webhooks

        app.register_blueprint(webhooks)
    register_portal_headers(app)
    cli.register(app)
    errors.register(app)


def register_portal_headers(app: Flask) -> None:
    """The portal's security headers on its own responses; the host's pages keep theirs."""
    from . import headers

    prefix = str(app.config["PORTAL_URL_PREFIX"]).rstrip("/") + "/"
    app.jinja_env.globals["csp_nonce"] = headers.csp_nonce
    for name in headers.ACCESS_LOGGERS:  # one-time link tokens kept out of the access log
        logger = logging.getLogger(name)
        if not any(isinstance(existing, headers.RedactLinkTokens) for existing in logger.filters):
            logger.addFilter(headers.RedactLinkTokens())

    def is_portal_request() -> bool:
        return request.blueprint in PORTAL_BLUEPRINTS or request.path.startswith(prefix)

    @app.before_request
    def refuse_broken_redirect_targets() -> None:
        if is_portal_request():
            headers.refuse_broken_redirect_targets()

    @app.after_request
    def portal_security_headers(response: Response) -> Response:
        return headers.security_headers(response) if is_portal_request() else response
