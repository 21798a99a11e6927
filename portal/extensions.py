"""Flask extensions, created unbound and bound in the app factory with init_app."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask, current_app
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from limits import parse
from limits.strategies import RateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints keep Alembic batch migrations on SQLite deterministic.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
mail = Mail()
babel = Babel()

# redis-py waits 5 s for each connection and retries 10 times: a Redis that stops answering would
# hold a sign-in a minute before the limiter falls back to memory. Half a second, one retry.
REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://")
REDIS_STORAGE_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5,
                         "retry": Retry(NoBackoff(), 1)}


class PortalLimiter(Limiter):
    """Flask-Limiter, plus: its warnings in the app's log, short Redis timeouts (RATELIMIT_STORAGE_OPTIONS
    overrides them), its state for /healthz, and counters of our own (per account, per email address)
    in the same storage, so that every worker shares them and the in-memory fallback applies."""

    def init_app(self, app: Flask) -> None:
        # Flask-Limiter logs "Rate limit storage unreachable - falling back to in-memory storage" on
        # a logger without a handler; the app's logger ("portal") writes to the server's error log.
        self.logger = app.logger.getChild("ratelimit")
        if str(app.config.get("RATELIMIT_STORAGE_URI") or "").startswith(REDIS_SCHEMES):
            app.config["RATELIMIT_STORAGE_OPTIONS"] = {**REDIS_STORAGE_OPTIONS,
                                                       **app.config.get("RATELIMIT_STORAGE_OPTIONS", {})}
        super().init_app(app)
        # Flask-Limiter 4.1 (pinned) keeps its "storage is down" flag across init_app: a new storage
        # starts trusted, and the flag is raised again at its first failure.
        self._storage_dead = False

    @property
    def current_limit(self):
        """The limit this request broke, else None: the X-RateLimit-* and Retry-After headers go on
        refusals only. Flask-Limiter adds them to every answer when RATELIMIT_HEADERS_ENABLED, at
        two more storage round trips per request (the window's count and expiry), which the API's
        busiest call, a consumption, cannot spare; no caller reads them on a success."""
        limit = super().current_limit
        return limit if limit is not None and limit.breached else None

    def state(self) -> str:
        """"ok"; "degraded" while the shared storage does not answer (each process counts in its own
        memory meanwhile); "off" with rate limits switched off (RATE_LIMITS=0)."""
        if not current_app.config.get("RATE_LIMITS_ENABLED", True):
            return "off"
        return "ok" if self.storage.check() else "degraded"

    def hit(self, limit: str, *key: str) -> bool:
        """Count one against `limit` (e.g. "3 per 15 minutes") for `key`; False beyond the limit."""
        return self._counted(lambda strategy: strategy.hit(parse(limit), *self._key(key)), True)

    def test(self, limit: str, *key: str) -> bool:
        """True while `key` may still count one against `limit` (nothing is counted)."""
        return self._counted(lambda strategy: strategy.test(parse(limit), *self._key(key)), True)

    def clear(self, limit: str, *key: str) -> None:
        """Forget the count of `key` against `limit`."""
        self._counted(lambda strategy: strategy.clear(parse(limit), *self._key(key)), None)

    def seconds_left(self, limit: str, *key: str) -> int:
        """Seconds until the window of `key` against `limit` ends (at least 1)."""
        reset = self._counted(lambda strategy: strategy.get_window_stats(parse(limit), *self._key(key))
                              .reset_time, 0.0)
        return max(1, int(reset - time.time()) + 1)

    @staticmethod
    def _key(key: tuple[str, ...]) -> tuple[str, ...]:
        return (str(current_app.config.get("RATELIMIT_KEY_PREFIX") or "portal"), *key)

    def _counted(self, operation: Callable[[RateLimiter], object], when_off: object) -> object:
        """`operation` on the limiter's strategy: the shared storage's, or the in-memory fallback's
        once Flask-Limiter found the storage down (the route's own limit, checked first, finds it)."""
        if not current_app.config.get("RATE_LIMITS_ENABLED", True):
            return when_off
        try:
            return operation(self.limiter)
        except Exception:  # noqa: BLE001 - the storage went down since the route's check: count nothing
            self.logger.warning("Rate limit storage unreachable - a per-account count was skipped")
            return when_off


# Keyed by the client's IP (request.remote_addr: the proxy's unless ProxyFix is configured);
# storage and switch come from each app's config (RATELIMIT_STORAGE_URI, RATE_LIMITS_ENABLED).
limiter = PortalLimiter(key_func=get_remote_address)


@limiter.request_filter
def _rate_limits_off() -> bool:
    """Limits are switched per app (the test suite turns them off), not per process."""
    return not current_app.config.get("RATE_LIMITS_ENABLED", True)


def configured_limit(setting: str) -> Callable[[], str]:
    """A rate limit read from the config at each request, e.g. RATELIMIT_SIGNIN = "10 per minute"."""
    return lambda: current_app.config[setting]


def signed_in_user_or_ip() -> str:
    """Rate-limit key of per-user limits: the signed-in user's id, else the client's IP."""
    from flask_login import current_user  # the key is read per request, as Flask-Login's user

    if current_user.is_authenticated:
        return f"user:{current_user.get_id()}"
    return get_remote_address()


# Every PDF download (portal and back office) counts against one budget per user: a client's
# parallel downloads must not take the workers from everybody else's pages.
pdf_limit = limiter.shared_limit(configured_limit("RATELIMIT_PDF"), scope="pdf",
                                 key_func=signed_in_user_or_ip)
