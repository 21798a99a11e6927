"""HTTP security of every response: a Content-Security-Policy with a per-request nonce, no MIME
sniffing, a referrer policy, HSTS in production, nothing but static files kept in a cache, and
one-time link pages kept out of referrers and access logs."""

from __future__ import annotations

import logging
import re
import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, g, request

DEFAULT_STRIPE_JS_URL = "https://js.stripe.com/v3/"
DEFAULT_STRIPE_API_BASE = "https://api.stripe.com"
# Real Stripe.js opens its 3-D Secure challenge frames from this origin, not from js.stripe.com.
STRIPE_3DS_FRAMES = {"https://js.stripe.com": "https://hooks.stripe.com"}
# Pages whose URL carries a one-time token: never cached, never sent as a referrer.
TOKEN_ENDPOINTS = frozenset({"client.magic_link", "client.consume_link", "client.invitation",
                             "client.platform_sign_in"})
# Access loggers that would otherwise write those tokens to disk with the request line.
ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")
TOKEN_IN_PATH = re.compile(r"(/(?:lien|invitation|sso)/)[^/\s?#\"']+")
MASK = r"\1[masqué]"
# Parameters that name where to go next (ours: `next`; Flask-Admin's: `url`).
REDIRECT_PARAMETERS = ("next", "url")
HEADER_BREAKING = re.compile(r"[\r\n\x00]")


def register(app: Flask) -> None:
    """Install the headers hook, the `csp_nonce()` template function and the log redaction."""
    app.before_request(refuse_broken_redirect_targets)
    app.after_request(security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactLinkTokens) for existing in logger.filters):
            logger.addFilter(RedactLinkTokens())


def refuse_broken_redirect_targets() -> None:
    """400 for a redirect target with a line break: it could only end up in a Location header,
    which Werkzeug refuses with an exception (a 500) rather than let it split the response."""
    for name in REDIRECT_PARAMETERS:
        if any(HEADER_BREAKING.search(value) for value in request.values.getlist(name)):
            abort(400)


def csp_nonce() -> str:
    """This request's CSP nonce (the same for every tag of the page; Flask-Admin's generator too)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def origin(url: str) -> str:
    """scheme://host[:port] of a URL (the CSP source naming exactly that site)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not an absolute URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def frame_ancestors(value: str | None) -> str:
    """PORTAL_FRAME_ANCESTORS as CSP sources (space or comma separated); nothing after a ';' (it
    would start another directive), 'self' when empty."""
    sources = (value or "").split(";")[0].replace(",", " ").split()
    return " ".join(sources) or "'self'"


def content_security_policy(nonce: str, *, portal: bool) -> str:
    """The policy of a page: our own files and nonce-bearing tags only, plus, on the client
    portal, exactly what Stripe.js needs (its script and frames' origin, its API's origin)."""
    config = current_app.config
    scripts, frames, connects = ["'self'", f"'nonce-{nonce}'"], ["'self'"], ["'self'"]
    ancestors = "'self'"
    if portal:
        stripe_js = origin(config.get("STRIPE_JS_URL") or DEFAULT_STRIPE_JS_URL)
        scripts.append(stripe_js)
        frames.append(stripe_js)
        if stripe_js in STRIPE_3DS_FRAMES:
            frames.append(STRIPE_3DS_FRAMES[stripe_js])
        connects.append(origin(config.get("STRIPE_API_BASE") or DEFAULT_STRIPE_API_BASE))
        ancestors = frame_ancestors(config.get("PORTAL_FRAME_ANCESTORS"))
    directives = {
        "default-src": ["'self'"],
        "script-src": scripts,
        "style-src": ["'self'", f"'nonce-{nonce}'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": connects,
        "frame-src": frames,
        "frame-ancestors": [ancestors],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(dict.fromkeys(sources))}" for name, sources in directives.items())


def _is_portal_request() -> bool:
    return (request.blueprint or "") == "client" or request.path.startswith(
        (current_app.config.get("PORTAL_URL_PREFIX") or "/espace-client").rstrip("/") + "/")


def security_headers(response: Response) -> Response:
    """after_request: the headers every response carries (a view's own CSP is kept)."""
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if "Content-Security-Policy" not in headers:
        headers["Content-Security-Policy"] = content_security_policy(csp_nonce(),
                                                                     portal=_is_portal_request())
        # frame-ancestors decides who may frame the page; an X-Frame-Options would contradict it.
        headers.pop("X-Frame-Options", None)
    hsts = int(current_app.config.get("HSTS_SECONDS") or 0)
    if hsts > 0:
        headers["Strict-Transport-Security"] = f"max-age={hsts}; includeSubDomains"
    if request.endpoint in TOKEN_ENDPOINTS:
        headers["Referrer-Policy"] = "no-referrer"
    if not is_static_file():
        # Pages and PDFs show a signed-in person's data (and forms their CSRF token): no browser
        # cache, back button of a shared computer or proxy may keep them. Set here, for every
        # view, so that a new page cannot forget it; it replaces send_file's `no-cache`.
        headers["Cache-Control"] = "no-store"
    return response


def is_static_file() -> bool:
    """The request is for a static file (the app's or a blueprint's, Flask-Admin's included)."""
    endpoint = request.endpoint or ""
    return endpoint == "static" or endpoint.endswith(".static")


def redact(text: str) -> str:
    """`text` with the token of any /lien/…, /invitation/… or /sso/… path masked."""
    return TOKEN_IN_PATH.sub(MASK, text)


class RedactLinkTokens(logging.Filter):
    """Masks one-time tokens in access-log lines (the request line carries the link's path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, dict):  # gunicorn's atoms: changed in place, they keep their class
            for key, value in list(record.args.items()):
                if isinstance(value, str):
                    record.args[key] = redact(value)
        elif isinstance(record.args, tuple):
            record.args = tuple(redact(value) if isinstance(value, str) else value
                                for value in record.args)
        return True
