"""The client portal "Espace client": an embeddable blueprint mounted at PORTAL_URL_PREFIX."""

from __future__ import annotations

from flask import Blueprint, Flask

# Its own static files (portal.css, payment.js) under its prefix: a host app mounting the portal
# (portal/embed.py) serves its own /static.
blueprint = Blueprint("client", __name__, static_folder="../static")


def init_portal(app: Flask) -> None:
    """Mount the portal under its configured prefix; pages extend PORTAL_CLIENT_LAYOUT."""
    from . import account, documents_views, my_account, payment_views, quotes_views, signin  # noqa: F401

    app.register_blueprint(blueprint, url_prefix=app.config["PORTAL_URL_PREFIX"] or "/espace-client")

    @app.context_processor
    def portal_layout() -> dict[str, str]:
        return {"portal_layout": app.config["PORTAL_CLIENT_LAYOUT"]}
