"""The languages of the product and how a request's is chosen; template gettext, and the project's
lazy_gettext, with the catalogue looked up once per request and locale.

Flask-Babel's template callables and lazy strings resolve the context, the locale and the
catalogue cache on every call; a page with a 30-line table calls gettext a few hundred times,
which made translation lookups a third of its rendering time. The catalogue found is kept beside
Flask-Babel's own per-request state together with the locale it belongs to, so `force_locale`
(emails rendered in the recipient's language) still switches catalogues.
"""

from __future__ import annotations

from functools import cache

from babel import support
from flask import Flask, g, has_app_context, has_request_context, request, session
from flask_babel import get_locale, get_translations
from flask_babel.speaklater import LazyString
from wtforms.i18n import messages_path

# French is the product's language; English the only other one.
DEFAULT_LANGUAGE = "fr"
SUPPORTED_LANGUAGES = ("fr", "en")
# Each language named in itself: the switch reads the same whatever the page's language.
LANGUAGE_NAMES = {"fr": "Français", "en": "English"}
# The visitor's explicit choice, kept in the session (copied from the profile at sign-in).
LANGUAGE_SESSION_KEY = "language"


def supported_language(value: object) -> str | None:
    """`value` if it names a language of the product, else None."""
    return value if isinstance(value, str) and value in SUPPORTED_LANGUAGES else None


def select_locale() -> str:
    """Flask-Babel's locale selector: the visitor's explicit choice (the profile's, copied into the
    session at sign-in, or the switch's), else their browser's preference, else French."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    return (supported_language(session.get(LANGUAGE_SESSION_KEY))
            or request.accept_languages.best_match(SUPPORTED_LANGUAGES, default=DEFAULT_LANGUAGE))


def current_language() -> str:
    """The language being rendered ('fr' or 'en'): a request's, or one forced by `force_locale`."""
    locale = get_locale() if has_app_context() else None
    return supported_language(locale.language if locale is not None else None) or DEFAULT_LANGUAGE


def request_translations():
    """This request's catalogue for the current locale (Flask-Babel's, looked up once)."""
    if not has_app_context():
        return get_translations()
    state = g.get("_flask_babel")
    cached = getattr(state, "portal_catalogue", None) if state is not None else None
    if cached is not None and cached[0] is getattr(state, "babel_locale", None):
        return cached[1]
    translations = get_translations()  # also settles the locale (state.babel_locale)
    state = g._flask_babel
    state.portal_catalogue = (getattr(state, "babel_locale", None), translations)
    return translations


def gettext(string: str, **variables) -> str:
    """Flask-Babel's gettext, through this request's catalogue (request_translations)."""
    translated = request_translations().ugettext(string)
    return translated % variables if variables else translated


def ngettext_raw(singular: str, plural: str, n: int) -> str:
    """The form of `n` through this request's catalogue, unformatted. An untranslated message is
    French, the source language, whose singular covers 0 and 1 (gettext's fallback knows only 1)."""
    text = request_translations().ungettext(singular, plural, n)
    if text in (singular, plural):
        text = singular if abs(n) < 2 else plural
    return text


def lazy_gettext(string: str, **variables) -> LazyString:
    """Flask-Babel's lazy_gettext, translated through this request's catalogue when shown: the
    enum labels, column headers and form labels made at import are translated again on every
    page, once per row for the labels of a list."""
    return LazyString(gettext, string, **variables)


@cache
def wtforms_catalogue(locale: str) -> support.Translations:
    """WTForms' own messages in `locale`, read once per process (Flask-WTF reads the file again
    for every request that renders a form)."""
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


def preload_wtforms_catalogue() -> None:
    request.wtforms_translations = wtforms_catalogue(str(get_locale()))  # where Flask-WTF looks


def install(app: Flask) -> None:
    """Replace Flask-Babel's Jinja callables (same behaviour, newstyle) with cached ones, and
    hand Flask-WTF its catalogue from the process-wide cache."""
    app.before_request(preload_wtforms_catalogue)
    app.jinja_env.globals["language_names"] = LANGUAGE_NAMES
    app.jinja_env.install_gettext_callables(
        gettext=gettext,
        ngettext=ngettext_raw,
        pgettext=lambda context, string: request_translations().upgettext(context, string),
        npgettext=lambda context, singular, plural, n: request_translations().unpgettext(
            context, singular, plural, n),
        newstyle=True,
    )
