"""Error pages and JSON errors; a domain refusal becomes a 4xx with its French message."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request, url_for
from flask.globals import request_ctx
from sqlalchemy.exc import DataError, DBAPIError
from werkzeug.exceptions import HTTPException

from .exceptions import DomainError
from .extensions import db
from .i18n import lazy_gettext as _l
from .problems import domain_problem, http_problem, is_api_request

HTTP_MESSAGES = {
    400: _l("La requête est invalide ou le formulaire a expiré : rechargez la page et recommencez."),
    403: _l("Vous n'avez pas accès à cette page."),
    404: _l("La page demandée n'existe pas ou ne vous est pas accessible."),
    405: _l("Cette action n'est pas possible ici."),
    429: _l("Trop de tentatives : patientez quelques minutes avant de réessayer."),
    503: _l("Le service est momentanément indisponible : réessayez dans quelques secondes."),
    500: _l("Une erreur inattendue est survenue ; l'équipe technique est prévenue."),
}
# The API's wording where the pages' would speak of a page or a form.
API_MESSAGES = {
    400: _l("La requête est invalide (corps JSON, paramètres ou en-têtes)."),
    404: _l("Ressource introuvable."),
    405: _l("Méthode non permise sur cette ressource."),
    429: _l("Trop de requêtes pour cette clé d'API : réessayez après le délai de l'en-tête Retry-After."),
}
ERROR_TITLES = {
    403: _l("Accès refusé"),
    404: _l("Page introuvable"),
}
DEFAULT_TITLE = _l("Une erreur est survenue")
ADMIN_PREFIX = "/admin/"
log = logging.getLogger(__name__)


def log_refusal(error: Exception, status: int | None = None) -> None:
    """One warning line per refused request: where, which refusal, which status (a domain error's
    own by default). Never the value (it may be a password or a token) and never a traceback:
    a refusal is not a bug."""
    status = status or getattr(error, "http_status", 400)
    log.warning("Request refused at %s: %s (%s)", request.endpoint, type(error).__name__, status)


def _wants_json() -> bool:
    return request.path.startswith(("/webhooks/", "/api/", "/healthz")) or request.is_json


def register(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        db.session.rollback()
        log_refusal(error)
        if is_api_request():
            return domain_problem(error)
        if _wants_json():
            return jsonify(error=str(error)), error.http_status
        return _page(error.http_status, str(error))

    @app.errorhandler(DataError)
    def invalid_data(error: DataError):
        # A value the database refuses (a number out of range, a text too long, a NUL byte…)
        # came from the request: the request is refused, nothing is written. The statement's
        # parameters are not logged (they may hold a password or a token).
        db.session.rollback()
        log_refusal(error.orig, 400)
        if is_api_request():
            return http_problem(400, str(HTTP_MESSAGES[400]))
        if _wants_json():
            return jsonify(error=str(HTTP_MESSAGES[400])), 400
        return _page(400, str(HTTP_MESSAGES[400]))

    @app.errorhandler(DBAPIError)
    def connection_lost(error: DBAPIError):
        # The database connection broke under this request (a server restart, a killed backend):
        # nothing was committed, the pool replaces the connection, and the same request succeeds
        # when retried. Any other database error is a bug, and stays a 500 with its traceback.
        if not error.connection_invalidated:
            raise error
        db.session.rollback()
        log.warning("Database connection lost at %s: %s (503)", request.endpoint, type(error.orig).__name__)
        headers = {"Retry-After": "5"}
        if is_api_request():
            return http_problem(503, str(HTTP_MESSAGES[503]), headers)
        if _wants_json():
            return jsonify(error=str(HTTP_MESSAGES[503])), 503, headers
        return *_page(503, str(HTTP_MESSAGES[503])), headers

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        if status in (400, 413, 422):  # the request's fault (bad form, CSRF, JSON, size): said once
            log_refusal(error, status)
        if is_api_request():
            # A 405 keeps the Allow header werkzeug gives it (RFC 9110 requires it).
            allow = {name: value for name, value in error.get_headers() if name == "Allow"}
            return http_problem(status, str(API_MESSAGES.get(status) or HTTP_MESSAGES.get(status)
                                            or error.description or ""), allow or None)
        message = str(HTTP_MESSAGES.get(status, error.description or ""))
        if _wants_json():
            return jsonify(error=message), status
        return _page(status, message)


def _page(status: int, message: str):
    """The error page, in the layout of the part of the site the URL belongs to."""
    if status >= 500:
        db.session.rollback()  # the layout may read the signed-in user: not from a failed transaction
    context = {"status": status, "message": message,
               "error_title": str(ERROR_TITLES.get(status, DEFAULT_TITLE))}
    if request_ctx.url_adapter is None:  # refused before routing (an untrusted Host): no URL to build
        return render_template("errors/error.html", ways_back=[], can_link=False, **context), status
    try:
        return _in_layout(context), status
    except Exception:  # an error page must not fail: the bare page, and the cause logged
        log.exception("Error page %s could not be rendered in its layout", status)
        return render_template("errors/error.html", ways_back=_ways_back(), can_link=True, **context), status


def _in_layout(context: dict) -> str:
    admin = _admin()
    if admin is not None and (request.path + "/").startswith(ADMIN_PREFIX):
        back = [(url_for("admin.index"), str(_l("Retour à la gestion courante")))]
        return admin.index_view.render("errors/admin.html", ways_back=back, **context)
    if request.path.startswith(_portal_prefix()):
        back = [(url_for("client.home"), str(_l("Retour à votre espace client")))]
        return render_template("errors/portal.html", ways_back=back, **context)
    return render_template("errors/error.html", ways_back=_ways_back(), can_link=True, **context)


def _ways_back() -> list[tuple[str, str]]:
    """Outside the portal and the back office: both entrances (the back office's if mounted)."""
    ways = [(url_for("client.home"), str(_l("Aller à l’espace client")))]
    if _admin() is not None:
        ways.append((url_for("admin.index"), str(_l("Aller à la gestion courante"))))
    return ways


def _admin():
    """The back office's Flask-Admin, when this app has one (a host mounting the portal has not)."""
    admins = current_app.extensions.get("admin") or []
    return admins[0] if admins else None


def _portal_prefix() -> str:
    return str(current_app.config.get("PORTAL_URL_PREFIX") or "/espace-client").rstrip("/") + "/"
