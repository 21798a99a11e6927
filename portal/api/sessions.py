"""API: single sign-on into the client portal for the platform's signed-in users.

The platform asks for a session for one client user and opens the returned URL in that user's
browser (a page, or the iframe that embeds the portal). The URL carries a one-time token: stored
as its hash only, bound to the user, valid `auth.API_SESSION_TTL` (2 minutes), used up by the
first GET of `<prefix>/sso/<token>` (portal/client/signin.py), which signs the user in afresh and
lands on `next`. Each call makes a new link: no Idempotency-Key here.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from flask import current_app
from sqlalchemy import select

from .. import auth
from ..exceptions import ClientUserNotFound, InvalidPortalPath
from ..extensions import db
from ..models import User, UserKind
from ..representations import iso, portal_link, portal_path
from ..security import safe_next_url
from . import blueprint, operation
from .credits import json_body, text_field

MAX_EMAIL = 254
MAX_PATH = 500  # login_token.next_path


@blueprint.post("/sessions")
@operation("sessions:write")
def create_session():
    """A one-time sign-in URL for a client user, landing on `next` (default: their quotes)."""
    body = json_body()
    user = _active_client(text_field(body, "email", MAX_EMAIL))
    token, seed = auth.create_api_session_link(user, next_path=_portal_destination(body.get("next")))
    url = portal_link("client.platform_sign_in", token=auth.raw_token_from_seed(seed))
    return {"object": "portal_session", "url": url, "expires_at": iso(token.expires_at)}, 201


def _active_client(email: str) -> User:
    user = db.session.scalar(select(User).where(User.email == email.lower(), User.kind == UserKind.CLIENT,
                                                User.active.is_(True)))
    if user is None:
        raise ClientUserNotFound(email=email)
    return user


def _portal_destination(candidate: object) -> str:
    """`candidate` if it is the path of a portal page (a query string allowed), else 422; the
    quote list when absent."""
    if candidate is None:
        return portal_path("client.quote_list")
    prefix = "/" + str(current_app.config["PORTAL_URL_PREFIX"] or "/espace-client").strip("/")
    if not isinstance(candidate, str) or not _inside_portal(candidate, prefix):
        raise InvalidPortalPath(prefix=prefix + "/")
    return candidate


def _inside_portal(path: str, prefix: str) -> bool:
    """A same-site path (`safe_next_url`) under `prefix`, without dot segments, even encoded: a
    browser would resolve /espace-client/../admin/ (or %2e%2e) outside the portal."""
    if len(path) > MAX_PATH or safe_next_url(path, "") != path:
        return False
    segments, expected = unquote(urlsplit(path).path).split("/"), prefix.split("/")
    return segments[:len(expected)] == expected and not any(part in (".", "..") for part in segments)
