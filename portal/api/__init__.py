"""The platform API `/api/v1/`: JSON for the seller's platform, authenticated by API keys.

A third kind of view on the same domain as the back office and the portal. What every operation
shares lives here and in its sibling modules:

- a key in `Authorization: Bearer <secret>` (never a cookie; CSRF does not apply), its scopes
  checked by `@operation(scope=...)`, a limit per key (`RATELIMIT_API`);
- errors as `application/problem+json` (`portal/problems.py`, used by `portal/errors.py`) with a
  stable `code` and a `detail` in the caller's language (Accept-Language: French by default, English);
- keyset pagination (`pagination.py`) and `Idempotency-Key` on writes (`idempotency.py`);
- one transaction per call, committed after a response below 400 (`transaction.transactional`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import Blueprint, Flask, g, request
from flask_limiter.util import get_remote_address

from .. import api_keys
from ..exceptions import ApiKeyInvalid, ApiScopeMissing
from ..extensions import configured_limit, csrf, limiter
from ..models import ApiKey
from ..problems import API_PREFIX
from ..transaction import transactional

View = TypeVar("View", bound=Callable)

blueprint = Blueprint("api", __name__, url_prefix=API_PREFIX)


def init_api(app: Flask) -> None:
    """Register the API's routes, its problem responses, its limit per key; exempt it from CSRF
    (a key in a header, not a cookie, authenticates it: a browser cannot forge it)."""
    from . import credits, docs, organisations, quotes, sessions  # noqa: F401

    csrf.exempt(blueprint)
    limiter.limit(configured_limit("RATELIMIT_API"), key_func=key_identity)(blueprint)
    app.register_blueprint(blueprint)


def key_identity() -> str:
    """Rate-limit key: a digest of the bearer secret (the limit applies before the key is checked,
    so an unknown key's retries count too), else the client's IP."""
    secret = bearer_secret()
    if secret:
        return "api:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:24]
    return "api-ip:" + get_remote_address()


def bearer_secret() -> str | None:
    scheme, _, secret = (request.headers.get("Authorization") or "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


def current_key() -> ApiKey:
    """The key of this call (set by `operation`)."""
    return g.api_key


def operation(scope: str) -> Callable[[View], View]:
    """An API view: authenticated by its key, which must hold `scope`; one transaction, committed
    after a response below 400. Unknown or revoked key → 401; key without `scope` → 403."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(*args, **kwargs):
            key = api_keys.find_active_key(bearer_secret() or "")
            if key is None:
                raise ApiKeyInvalid()
            if scope not in key.scope_list:
                raise ApiScopeMissing(scope=scope)
            g.api_key = key
            api_keys.record_use(key)
            return view(*args, **kwargs)

        wrapper.required_scope = scope  # type: ignore[attr-defined]  # read by the tests and the docs
        return transactional(wrapper)  # type: ignore[return-value]

    return decorate
