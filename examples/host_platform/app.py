"""Plateforme d'exemple: the seller's platform, hosting the client portal and consuming its credits.

Its own users sign in here (a table in memory, PLATFORM_USERS). Each one is also a client user of
the portal (the same email), in the portal organisation whose `external_id` is the user's account
id on the platform. Server side, with the platform's API key, the home page:

- finds that organisation: GET /api/v1/organisations/by-external-id/<account id>;
- shows its credit balance: GET /api/v1/organisations/<id>/credits;
- frames the client portal after single sign-on: POST /api/v1/sessions {"email", "next"} gives a
  one-time URL, the iframe's `src`, which signs the user in to the portal and opens `next`;
- « Utiliser 10 crédits »: POST /api/v1/organisations/<id>/credits/consumptions, with an
  Idempotency-Key made when the page was shown (the same form sent twice consumes once);
- « Événements reçus »: the account's quote.accepted, invoice.paid and credits.granted events, which
  the portal sends to POST /webhooks/portail (received_events.py), read again by the page every few
  seconds from /evenements: the platform learns of them without asking the portal.

Settings, from the environment: PORTAL_URL (http://127.0.0.1:5000), PORTAL_API_KEY (scopes
organisations:read credits:read credits:consume sessions:write), PORTAL_PREFIX (/espace-client),
PLATFORM_USERS ("email:password:account_id" entries, comma separated), PLATFORM_SECRET_KEY,
PORTAL_WEBHOOK_SECRET (the secret of the platform's webhook endpoint in the portal).
Run it with `make example-platform`, or `flask --app examples.host_platform.app run --port 5050`.
"""

from __future__ import annotations

import hmac
import os
import secrets
import uuid
from dataclasses import dataclass

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from . import received_events
from .formatting import credits
from .portal_api import PortalApi, PortalApiError

CREDITS_PER_USE = 10
# The portal pages the iframe can open (after the portal's prefix).
PORTAL_PAGES = {"credits": ("Crédits", "/credits"), "devis": ("Devis", "/devis")}
DEFAULT_USERS = ("gestionnaire@martin.example:plateforme-2026:compte-martin,"
                 "gestionnaire@dupont.example:plateforme-2026:compte-dupont")

blueprint = Blueprint("platform", __name__)


@dataclass(frozen=True)
class PlatformUser:
    email: str
    password: str
    account_id: str  # the platform's id of the user's company: the portal organisation's external_id


def parse_users(value: str) -> dict[str, PlatformUser]:
    """`email:password:account_id` entries separated by commas, by email."""
    users = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        email, password, account_id = entry.split(":", 2)
        users[email.strip().lower()] = PlatformUser(email.strip().lower(), password, account_id.strip())
    return users


def create_app(settings: dict | None = None) -> Flask:
    """The platform, configured by the environment, then by `settings`."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("PLATFORM_SECRET_KEY") or secrets.token_hex(32),
        # Cookies ignore ports: beside the portal on 127.0.0.1, the platform's cookie needs its own name.
        SESSION_COOKIE_NAME="plateforme_session",
        SESSION_COOKIE_SAMESITE="Lax",
        PORTAL_URL=os.environ.get("PORTAL_URL", "http://127.0.0.1:5000"),
        PORTAL_API_KEY=os.environ.get("PORTAL_API_KEY", ""),
        PORTAL_PREFIX=os.environ.get("PORTAL_PREFIX", "/espace-client"),
        PLATFORM_USERS=os.environ.get("PLATFORM_USERS", DEFAULT_USERS),
        PORTAL_WEBHOOK_SECRET=os.environ.get("PORTAL_WEBHOOK_SECRET", ""),
        PORTAL_WEBHOOK_TOLERANCE=300,  # seconds: an older (or later) signature is refused, a replay
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.config.update(settings or {})
    app.extensions["platform_users"] = parse_users(app.config["PLATFORM_USERS"])
    app.extensions["portal_events"] = received_events.EventInbox()
    app.jinja_env.globals.update(csrf_token=csrf_token, credits=credits)
    app.before_request(check_csrf)
    app.register_blueprint(blueprint)
    app.register_blueprint(received_events.blueprint)
    return app


# --- The platform's own sign-in ----------------------------------------------------------------


def signed_in_user() -> PlatformUser | None:
    return current_app.extensions["platform_users"].get(session.get("email", ""))


def csrf_token() -> str:
    """The session's token, put in every form of the platform."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    if request.blueprint == received_events.blueprint.name:
        return  # the portal's events: no browser sends them, their signature is checked instead
    expected = session.get("csrf")
    if request.method == "POST" and not (
            expected and hmac.compare_digest(request.form.get("csrf_token", ""), expected)):
        abort(400)


@blueprint.route("/connexion", methods=["GET", "POST"])
def sign_in():
    if request.method == "POST":
        user = current_app.extensions["platform_users"].get(request.form.get("email", "").strip().lower())
        if user and hmac.compare_digest(user.password, request.form.get("password", "")):
            session.clear()
            session["email"] = user.email
            return redirect(url_for("platform.home"))
        flash("Adresse email ou mot de passe incorrect.", "error")
    return render_template("signin.html")


@blueprint.post("/deconnexion")
def sign_out():
    session.clear()
    return redirect(url_for("platform.sign_in"))


# --- The portal, through its API ---------------------------------------------------------------


def portal_api() -> PortalApi:
    return PortalApi(current_app.config["PORTAL_URL"], current_app.config["PORTAL_API_KEY"])


def chosen_page() -> str:
    page = request.values.get("page", "credits")
    return page if page in PORTAL_PAGES else "credits"


@blueprint.get("/")
def home():
    """The balance, the button that uses credits, and the portal in an iframe (signed in)."""
    user = signed_in_user()
    if user is None:
        return redirect(url_for("platform.sign_in"))
    page, api = chosen_page(), portal_api()
    prefix = current_app.config["PORTAL_PREFIX"].rstrip("/")
    try:
        organisation = api.organisation_by_external_id(user.account_id)
        balance = api.balance(organisation["id"])
        frame_url = api.sign_on(user.email, prefix + PORTAL_PAGES[page][1])
    except PortalApiError as error:
        return render_template("home.html", user=user, page=page, pages=PORTAL_PAGES,
                               portal_error=error.detail), 502
    return render_template("home.html", user=user, page=page, pages=PORTAL_PAGES, organisation=organisation,
                           balance=balance, frame_url=frame_url, use_id=str(uuid.uuid4()),
                           credits_per_use=CREDITS_PER_USE, events=_events_of(user))


@blueprint.get("/evenements")
def events():
    """The account's latest events received from the portal, as JSON for the dashboard."""
    user = signed_in_user()
    if user is None:
        return {"error": "Connexion requise."}, 401
    return {"events": _events_of(user)}


def _events_of(user: PlatformUser) -> list[dict]:
    return [event.describe() for event in received_events.inbox().shown_for(user.account_id)]


@blueprint.post("/credits/utiliser")
def use_credits():
    """Consume CREDITS_PER_USE credits; say how it went (the portal's French refusal if any)."""
    user = signed_in_user()
    if user is None:
        return redirect(url_for("platform.sign_in"))
    use_id = _uuid_or_new(request.form.get("use_id", ""))
    api = portal_api()
    try:
        organisation = api.organisation_by_external_id(user.account_id)
        entry = api.consume(organisation["id"], CREDITS_PER_USE, reference=f"analyse-{use_id[:8]}",
                            description="Analyse lancée depuis la plateforme d'exemple",
                            idempotency_key=use_id)
    except PortalApiError as error:
        flash(f"Crédits non utilisés : {error.detail}", "error")
    else:
        flash(f"{CREDITS_PER_USE} crédits utilisés (référence {entry['external_reference']}) : "
              f"solde restant {credits(entry['balance_after'])}.", "success")
    return redirect(url_for("platform.home", page=chosen_page()), code=303)


def _uuid_or_new(value: str) -> str:
    """The form's use id (one per page shown) if it is one, else a new one."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return str(uuid.uuid4())
