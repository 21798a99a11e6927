"""Configuration, read from the environment once at import of the app factory."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = BASE_DIR / "instance"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))  # type: ignore[arg-type]


def _env_bool(name: str, default: bool) -> bool:
    return (_env(name, "1" if default else "0") or "").lower() in {"1", "true", "yes", "on"}


def _env_list(name: str) -> list[str] | None:
    """A list written with spaces or commas; None when unset."""
    value = _env(name)
    return value.replace(",", " ").split() if value else None


INSECURE_SECRET_KEY = "dev-insecure-secret-key-change-me"
LOCAL_BASE_URL = "http://127.0.0.1:5000"
# `production` selects Config (secure cookies, HSTS, a real SECRET_KEY required) for `wsgi:app`;
# anything else, DevelopmentConfig (`make run` on http://127.0.0.1).
PORTAL_ENV = _env("PORTAL_ENV", "development")


class Config:
    """Production settings: everything comes from the environment."""

    SECRET_KEY = _env("SECRET_KEY", INSECURE_SECRET_KEY)
    SQLALCHEMY_DATABASE_URI = _env("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'portal.db'}")
    # Idle connections are checked before use by portal.database.IdlePing, not on every checkout.
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    # A pooled connection idle for longer than this many seconds is tried (SELECT 1) before use.
    DB_IDLE_PING_SECONDS = float(_env("DB_IDLE_PING_SECONDS", "10"))  # type: ignore[arg-type]
    # The portal's public address, the base of every link in every email (never a request's Host).
    # No default: PORTAL_ENV=production refuses to start without it (portal.check_production_config),
    # so a localhost address can never reach a client's inbox.
    PORTAL_BASE_URL = _env("PORTAL_BASE_URL")
    PORTAL_URL_PREFIX = _env("PORTAL_URL_PREFIX", "/espace-client")
    PORTAL_CLIENT_LAYOUT = _env("PORTAL_CLIENT_LAYOUT", "client/layout.html")
    PORTAL_LINK_TTL_HOURS = _env_int("PORTAL_LINK_TTL", 72)
    INVITATION_TTL_HOURS = _env_int("INVITATION_TTL", 168)
    QUOTE_VALIDITY_DAYS = _env_int("QUOTE_VALIDITY_DAYS", 30)
    STAFF_NOTIFICATION_EMAIL = _env("STAFF_NOTIFICATION_EMAIL", "commercial@portail-devis.fr")
    MAIL_SERVER = _env("MAIL_SERVER")
    MAIL_PORT = _env_int("MAIL_PORT", 25)
    MAIL_USE_TLS = _env_bool("MAIL_USE_TLS", False)
    MAIL_USE_SSL = _env_bool("MAIL_USE_SSL", False)
    MAIL_USERNAME = _env("MAIL_USERNAME")
    MAIL_PASSWORD = _env("MAIL_PASSWORD")
    MAIL_DEFAULT_SENDER = _env("MAIL_DEFAULT_SENDER", "Portail Devis <no-reply@portail-devis.fr>")
    # The outbox decides what is sent; Flask-Mail must never silently drop a message.
    MAIL_SUPPRESS_SEND = False
    MAIL_TIMEOUT = _env_int("MAIL_TIMEOUT", 30)
    MAIL_MAX_ATTEMPTS = _env_int("MAIL_MAX_ATTEMPTS", 8)
    MAIL_RETRY_BASE_SECONDS = _env_int("MAIL_RETRY_BASE_SECONDS", 60)
    MAIL_OUTBOX_DIR = _env("MAIL_OUTBOX_DIR", str(INSTANCE_DIR / "mail"))
    # Seconds `flask outbox work` waits when nothing is due: it bounds how late a webhook leaves
    # after its commit (two workers: half of it on average).
    MAIL_WORKER_INTERVAL = float(_env("MAIL_WORKER_INTERVAL", "1"))  # type: ignore[arg-type]
    # Card payments through Stripe, or localstripe (`make run`): the same code talks to either.
    # Without STRIPE_SECRET_KEY the payment page offers bank transfer only.
    STRIPE_API_BASE = _env("STRIPE_API_BASE", "https://api.stripe.com")
    STRIPE_JS_URL = _env("STRIPE_JS_URL", "https://js.stripe.com/v3/")
    STRIPE_SECRET_KEY = _env("STRIPE_SECRET_KEY")
    STRIPE_PUBLISHABLE_KEY = _env("STRIPE_PUBLISHABLE_KEY")
    STRIPE_WEBHOOK_SECRET = _env("STRIPE_WEBHOOK_SECRET")
    STRIPE_WEBHOOK_TOLERANCE = _env_int("STRIPE_WEBHOOK_TOLERANCE", 300)
    STRIPE_TIMEOUT = _env_int("STRIPE_TIMEOUT", 20)
    BABEL_DEFAULT_LOCALE = "fr"
    BABEL_DEFAULT_TIMEZONE = "Europe/Paris"
    WTF_CSRF_TIME_LIMIT = None
    # HTTP security (portal/headers.py). Cookies: Secure (HTTPS only), HttpOnly, SameSite.
    # Embedding the portal in another site's page needs COOKIE_SAMESITE=None (and Secure).
    SESSION_COOKIE_SECURE = _env_bool("COOKIE_SECURE", True)
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = _env("COOKIE_SAMESITE", "Lax")
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = SESSION_COOKIE_SAMESITE
    HSTS_SECONDS = _env_int("HSTS_SECONDS", 31_536_000)  # Strict-Transport-Security; 0 = not sent
    # Who may frame the portal (CSP frame-ancestors): space-separated origins. The back office: 'self'.
    PORTAL_FRAME_ANCESTORS = _env("PORTAL_FRAME_ANCESTORS", "'self'")
    # Host names accepted in the Host header (Flask's TRUSTED_HOSTS); unset = any.
    TRUSTED_HOSTS = _env_list("TRUSTED_HOSTS")
    # Behind a reverse proxy: how many proxies set each X-Forwarded-* header (werkzeug ProxyFix);
    # all 0 = no ProxyFix, the headers are ignored (they could be forged).
    PROXY_FIX_X_FOR = _env_int("PROXY_FIX_X_FOR", 0)
    PROXY_FIX_X_PROTO = _env_int("PROXY_FIX_X_PROTO", 0)
    PROXY_FIX_X_HOST = _env_int("PROXY_FIX_X_HOST", 0)
    PROXY_FIX_X_PORT = _env_int("PROXY_FIX_X_PORT", 0)
    PROXY_FIX_X_PREFIX = _env_int("PROXY_FIX_X_PREFIX", 0)
    # Rate limits (Flask-Limiter), per client IP, on sign-in and link routes. memory:// counts per
    # process; redis://host:6379/0 shares the counts between gunicorn workers and hosts.
    RATE_LIMITS_ENABLED = _env_bool("RATE_LIMITS", True)
    RATELIMIT_STORAGE_URI = _env("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_KEY_PREFIX = "portail-devis"
    RATELIMIT_HEADERS_ENABLED = True  # Retry-After on a 429 (only there: PortalLimiter.current_limit)
    RATELIMIT_SIGNIN = _env("RATELIMIT_SIGNIN", "10 per minute")
    RATELIMIT_LINK_REQUEST = _env("RATELIMIT_LINK_REQUEST", "5 per minute")
    RATELIMIT_LINK = _env("RATELIMIT_LINK", "10 per minute")
    # When the shared storage (Redis) is unreachable, count in the process's memory meanwhile
    # (a warning is logged and /healthz reports the limiter degraded) rather than refuse sign-in.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    # Per account and per email address, whatever the IP: a sign-in attempt on one account from
    # many addresses, and link requests for one address, are counted together.
    RATELIMIT_SIGNIN_ACCOUNT = _env("RATELIMIT_SIGNIN_ACCOUNT", "10 per 15 minutes")
    RATELIMIT_LINK_REQUEST_ACCOUNT = _env("RATELIMIT_LINK_REQUEST_ACCOUNT", "3 per 15 minutes")
    # After this many wrong passwords in ACCOUNT_LOCK_MINUTES, the account is locked that long
    # (its owner is emailed once per lock).
    ACCOUNT_LOCK_FAILURES = _env_int("ACCOUNT_LOCK_FAILURES", 10)
    ACCOUNT_LOCK_MINUTES = _env_int("ACCOUNT_LOCK_MINUTES", 15)
    # A user holds at most this many valid one-time sign-in links; a new one retires the oldest.
    MAX_VALID_LINKS_PER_USER = _env_int("MAX_VALID_LINKS_PER_USER", 3)
    # PDF downloads per signed-in user (a render costs a worker 100-200 ms the first time).
    RATELIMIT_PDF = _env("RATELIMIT_PDF", "30 per minute")
    # Calls of the platform API per key (portal/api/): 429 with Retry-After beyond.
    RATELIMIT_API = _env("RATELIMIT_API", "6000 per minute")
    # PORTAL_ENV=production refuses memory:// rate limits (counted per process, so each worker
    # would allow its own share) unless the deployment declares a single worker process.
    SINGLE_WORKER = _env_bool("PORTAL_SINGLE_WORKER", False)
    # Webhooks to the platform (portal/events.py, portal/delivery/webhooks.py). Delivery refuses
    # loopback, private, link-local and metadata addresses unless WEBHOOKS_ALLOW_LOCAL (development
    # and tests only: refused at start-up with PORTAL_ENV=production), and plain http in production.
    WEBHOOKS_ALLOW_LOCAL = _env_bool("WEBHOOKS_ALLOW_LOCAL", False)
    WEBHOOKS_HTTPS_ONLY = True
    WEBHOOK_TIMEOUT = _env_int("WEBHOOK_TIMEOUT", 10)
    # Retries double from WEBHOOK_RETRY_BASE_SECONDS (capped at six hours between two tries) until
    # WEBHOOK_RETRY_HOURS after the event; then the delivery is marked failed.
    WEBHOOK_RETRY_BASE_SECONDS = _env_int("WEBHOOK_RETRY_BASE_SECONDS", 30)
    WEBHOOK_RETRY_HOURS = _env_int("WEBHOOK_RETRY_HOURS", 72)
    TESTING = False


class DevelopmentConfig(Config):
    """`make run`: the embedded defaults."""

    DEBUG = False
    # `make run` sets it from PORT; `flask run` alone serves on Flask's default port, 5000.
    PORTAL_BASE_URL = _env("PORTAL_BASE_URL", LOCAL_BASE_URL)
    # http://127.0.0.1: no Secure cookie, no HSTS, unless the portal's own URL is HTTPS.
    _https = str(PORTAL_BASE_URL).startswith("https://")
    SESSION_COOKIE_SECURE = _env_bool("COOKIE_SECURE", _https)
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    HSTS_SECONDS = _env_int("HSTS_SECONDS", 31_536_000 if _https else 0)
    # `make run`'s example platform receives its events on http://127.0.0.1.
    WEBHOOKS_ALLOW_LOCAL = _env_bool("WEBHOOKS_ALLOW_LOCAL", True)
    WEBHOOKS_HTTPS_ONLY = False


class TestConfig(Config):
    """The test suite: SQLite by default, PostgreSQL when TEST_DATABASE_URL is set."""

    TESTING = True
    SECRET_KEY = "test-secret-key"
    PORTAL_BASE_URL = LOCAL_BASE_URL  # tests that check an address set their own
    SQLALCHEMY_DATABASE_URI = _env("TEST_DATABASE_URL", "sqlite://")
    WTF_CSRF_ENABLED = True
    RATE_LIMITS_ENABLED = False  # tests that prove a 429 switch them on
    RATELIMIT_STORAGE_URI = "memory://"
    # The production cookies and headers, whatever the developer's environment says.
    SESSION_COOKIE_SECURE = REMEMBER_COOKIE_SECURE = True
    SESSION_COOKIE_SAMESITE = REMEMBER_COOKIE_SAMESITE = "Lax"
    HSTS_SECONDS = 31_536_000
    PORTAL_FRAME_ANCESTORS = "'self'"
    TRUSTED_HOSTS = None
    PROXY_FIX_X_FOR = PROXY_FIX_X_PROTO = PROXY_FIX_X_HOST = PROXY_FIX_X_PORT = PROXY_FIX_X_PREFIX = 0
    MAIL_SERVER = None
    # Never a real Stripe account from the developer's environment: tests point these at localstripe.
    STRIPE_API_BASE = "https://api.stripe.com"
    STRIPE_JS_URL = "https://js.stripe.com/v3/"
    STRIPE_SECRET_KEY = None
    STRIPE_PUBLISHABLE_KEY = None
    STRIPE_WEBHOOK_SECRET = None
    # Tests that deliver to a receiver on 127.0.0.1 switch these.
    WEBHOOKS_ALLOW_LOCAL = False
    WEBHOOKS_HTTPS_ONLY = True
