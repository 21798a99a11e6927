"""Error pages and JSON errors; a domain refusal becomes a 4xx with its French message."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException

from .exceptions import DomainError
from .extensions import db
from .i18n import lazy_gettext as _l

HTTP_MESSAGES = {
    400: _l("La requête est invalide ou le formulaire a expiré : rechargez la page et recommencez."),
    403: _l("Vous n'avez pas accès à cette page."),
    404: _l("La page demandée n'existe pas ou ne vous est pas accessible."),
    405: _l("Cette action n'est pas possible ici."),
    429: _l("Trop de tentatives : patientez quelques minutes avant de réessayer."),
    500: _l("Une erreur inattendue est survenue ; l'équipe technique est prévenue."),
}
log = logging.getLogger(__name__)


def _wants_json() -> bool:
    return request.path.startswith(("/webhooks/", "/api/", "/healthz")) or request.is_json


def register(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        db.session.rollback()
        if _wants_json():
            return jsonify(error=str(error)), error.http_status
        return _page(error.http_status, str(error))

    @app.errorhandler(DataError)
    def invalid_data(error: DataError):
        # A value the database refuses (a number out of range, a text too long, a NUL byte…)
        # came from the request: the request is refused, nothing is written. The statement's
        # parameters are not logged (they may hold a password or a token).
        db.session.rollback()
        log.warning("Request refused, invalid data for the database at %s: %s",
                    request.endpoint, type(error.orig).__name__)
        if _wants_json():
            return jsonify(error=str(HTTP_MESSAGES[400])), 400
        return _page(400, str(HTTP_MESSAGES[400]))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        message = str(HTTP_MESSAGES.get(status, error.description or ""))
        if _wants_json():
            return jsonify(error=message), status
        return _page(status, message)


def _page(status: int, message: str):
    return render_template("errors/error.html", status=status, message=message), status
