"""Form pieces shared by the back office and the client portal, the language switch among them."""

from __future__ import annotations

import re
import uuid

from flask import Response, redirect, request, session
from flask_wtf import FlaskForm
from wtforms import Field, HiddenField
from wtforms.widgets import TextInput

from . import accounts
from .exceptions import InvalidInput, InvalidNumber
from .i18n import LANGUAGE_SESSION_KEY
from .i18n import lazy_gettext as _l
from .models import User
from .security import safe_next_url
from .transaction import transaction

EUROS = re.compile(r"^(?P<units>\d{1,9})(?:[.,](?P<cents>\d{1,2}))?$")
# A whole number as people type it: ASCII digits, an optional minus sign; spaces around it or
# between digit groups ("1 000") are ignored. Not accepted: "+5", "1e5", "12.0", "1_000", "0x10",
# NaN, Infinity, and other scripts' digits ("١٢", "²", "１２"), which int() would take.
INTEGER = re.compile(r"-?[0-9]{1,18}")
_GROUPING = re.compile(r"[\s\u00a0\u202f]+")
_MAX_INTEGER_TEXT = 40  # longer is refused unread: no int() of a 5,000-digit string
MAX_ID = 2**31 - 1  # primary keys are 32-bit integers (PostgreSQL's INTEGER)


def _french_integer(number: int) -> str:
    return f"{number:,}".replace(",", "\u202f")


def parse_int(text: str | None, *, minimum: int, maximum: int,
              error: type[InvalidInput] = InvalidNumber) -> int:
    """The whole number typed in `text`, within [minimum, maximum]; `error` otherwise (its French
    message may use %(minimum)s and %(maximum)s). "-0" is 0; surrounding spaces are ignored."""
    too_long = not isinstance(text, str) or len(text) > _MAX_INTEGER_TEXT
    compact = "" if too_long else _GROUPING.sub("", text)
    if not INTEGER.fullmatch(compact):
        raise error(minimum=_french_integer(minimum), maximum=_french_integer(maximum))
    number = int(compact)
    if not minimum <= number <= maximum:
        raise error(minimum=_french_integer(minimum), maximum=_french_integer(maximum))
    return number


def int_arg(name: str, *, minimum: int = 1, maximum: int = MAX_ID) -> int | None:
    """A whole-number URL argument (`?avant=`), or None when absent or not one within bounds:
    a bad value is ignored, like Werkzeug's `type=int`, but never reaches the database."""
    try:
        return parse_int(request.args.get(name), minimum=minimum, maximum=maximum)
    except InvalidInput:
        return None


def parse_euros(text: str) -> int:
    """'1 234,5' → 123450 cents; ValueError on anything else (negative amounts included)."""
    compact = re.sub(r"[\s\u00a0\u202f€]", "", text or "")
    match = EUROS.match(compact)
    if not match:
        raise ValueError(text)
    return int(match["units"]) * 100 + int((match["cents"] or "0").ljust(2, "0"))


def format_euros_input(cents: int | None) -> str:
    """The value shown back in an amount input: 1234,50."""
    if cents is None:
        return ""
    return f"{cents // 100},{cents % 100:02d}"


class EuroField(Field):
    """An amount typed in euros (comma or point), stored as integer cents in `data`."""

    widget = TextInput()

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return format_euros_input(self.data)

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist or not valuelist[0].strip():
            self.data = None
            return
        try:
            self.data = parse_euros(valuelist[0])
        except ValueError:
            self.data = None
            message = _l("Montant invalide : saisissez un nombre positif, par exemple 1250,00.")
            raise ValueError(str(message)) from None


class IntegerInput(Field):
    """A whole number within [minimum, maximum] (see `parse_int`), with a French error message;
    blank is None (add InputRequired to require it)."""

    widget = TextInput()

    def __init__(self, label=None, validators=None, *, minimum: int, maximum: int,
                 error: type[InvalidInput] = InvalidNumber, **kwargs) -> None:
        kwargs.setdefault("render_kw", {"inputmode": "numeric"})
        super().__init__(label, validators, **kwargs)
        self.minimum, self.maximum, self.error = minimum, maximum, error

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else str(self.data)

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist or not valuelist[0].strip():
            self.data = None
            return
        try:
            self.data = parse_int(valuelist[0], minimum=self.minimum, maximum=self.maximum,
                                  error=self.error)
        except InvalidInput as error:
            self.data = None
            raise ValueError(str(error)) from None


class OnceForm(FlaskForm):
    """A form that can be submitted once: its token is claimed in the action's transaction."""

    submission_token = HiddenField(default=lambda: uuid.uuid4().hex)


def choose_language(user: User | None, *, fallback: str) -> Response:
    """The « FR | EN » switch's POST (CSRF-checked like every form): the language of this session
    and, for a signed-in `user`, of their profile (their emails and quotes too), then back to the
    page it was clicked on (a local `next`, else `fallback`)."""
    language = request.form.get("language")
    with transaction() as outcome:
        if user is None:
            accounts.checked_language(language)
        else:
            accounts.set_language(user, language)
    if outcome.ok:
        session[LANGUAGE_SESSION_KEY] = language
    return redirect(safe_next_url(request.form.get("next"), fallback), code=303)
