"""Form pieces shared by the back office and the client portal."""

from __future__ import annotations

import re
import uuid

from flask_wtf import FlaskForm
from wtforms import Field, HiddenField
from wtforms.widgets import TextInput

from .i18n import lazy_gettext as _l

EUROS = re.compile(r"^(?P<units>\d{1,9})(?:[.,](?P<cents>\d{1,2}))?$")


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


class OnceForm(FlaskForm):
    """A form that can be submitted once: its token is claimed in the action's transaction."""

    submission_token = HiddenField(default=lambda: uuid.uuid4().hex)
