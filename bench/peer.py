"""The peer of the comparison: the same models behind plain Flask-Admin `ModelView`s with their
default settings (COUNT(*) and the numbered pager, 20 rows a page, every column listed, no
sort), in a throwaway Flask app on the same database; only search and filters are declared,
since the compared searches need them."""

from __future__ import annotations

from flask import Flask
from flask_admin import Admin
from flask_admin.contrib.sqla import ModelView
from flask_babel import Babel

from portal.extensions import db
from portal.models import Organisation, Quote, QuoteStatus

from .bulk import BENCH_SECRET_KEY


class PeerQuoteView(ModelView):
    column_searchable_list = ("organisation.name",)
    column_filters = ("status",)


class PeerOrganisationView(ModelView):
    column_searchable_list = ("name",)


def create_peer_app(url: str) -> Flask:
    """A bare Flask app: Flask-SQLAlchemy on `url`, Flask-Babel and Flask-Admin at /peer."""
    app = Flask("peer")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, SECRET_KEY=BENCH_SECRET_KEY)
    db.init_app(app)
    Babel(app)  # Flask-Admin needs it once Flask-Babel is installed
    admin = Admin(app, name="Peer", url="/peer")
    admin.add_view(PeerQuoteView(Quote, db.session, endpoint="peer_quotes"))
    admin.add_view(PeerOrganisationView(Organisation, db.session, endpoint="peer_organisations"))
    return app


def peer_urls(app: Flask, name_term: str) -> dict[str, str]:
    """Peer URLs of the compared searches, keyed like ours (see bench/pages.py)."""
    view = next(v for v in app.extensions["admin"][0]._views if v.endpoint == "peer_quotes")
    index = next(i for i, flt in enumerate(view._filters)
                 if type(flt).__name__ == "EnumEqualFilter")
    status = f"flt0_{view.get_filter_arg(index, view._filters[index])}"
    return {
        "Devis, organisation nom": f"/peer/peer_quotes/?search={name_term}",
        # Flask-Admin's default enum filter takes the member's name.
        "Devis, statut envoyé": f"/peer/peer_quotes/?{status}={QuoteStatus.SENT.name}",
        "Devis, statut accepté": f"/peer/peer_quotes/?{status}={QuoteStatus.ACCEPTED.name}",
        "Recherche : nom": f"/peer/peer_organisations/?search={name_term}",
    }
