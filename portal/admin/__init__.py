"""The back office ("Gestion courante") on Flask-Admin, at /admin/."""

from __future__ import annotations

from flask import Flask
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme

from ..headers import csp_nonce
from ..i18n import lazy_gettext as _l
from . import (
    account,
    catalogue,
    finance,
    organisations,
    platform,
    quote_editor,
    quotes_list,
    requests_inbox,
    staff,
    system,
    webhooks,
)
from .home import HomeView
from .signin import blueprint as signin_blueprint

VIEW_MODULES = (organisations, quote_editor, quotes_list, requests_inbox, catalogue, finance, system, staff,
                platform, webhooks, account)


def init_admin(app: Flask) -> Admin:
    """Mount the back office and its sign-in pages (a fresh Admin and views for each app)."""
    app.register_blueprint(signin_blueprint)
    admin = Admin(
        app,
        name=_l("Portail Devis"),
        index_view=HomeView(name=_l("Gestion courante"), url="/admin", endpoint="admin"),
        theme=Bootstrap4Theme(base_template="admin/portal_base.html", fluid=True),
        csp_nonce_generator=csp_nonce,  # Flask-Admin's inline scripts carry this request's nonce
    )
    for module in VIEW_MODULES:
        module.register(admin)
    return admin
