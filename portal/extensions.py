"""Flask extensions, created unbound and bound in the app factory with init_app."""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
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
# Keyed by the client's IP (request.remote_addr: the proxy's unless ProxyFix is configured);
# storage and switch come from each app's config (RATELIMIT_STORAGE_URI, RATE_LIMITS_ENABLED).
limiter = Limiter(key_func=get_remote_address)


@limiter.request_filter
def _rate_limits_off() -> bool:
    """Limits are switched per app (the test suite turns them off), not per process."""
    return not current_app.config.get("RATE_LIMITS_ENABLED", True)


def configured_limit(setting: str) -> Callable[[], str]:
    """A rate limit read from the config at each request, e.g. RATELIMIT_SIGNIN = "10 per minute"."""
    return lambda: current_app.config[setting]
