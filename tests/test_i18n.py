"""French first, English kept complete: every string of the code and templates is translated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "portal" / "translations" / "en" / "LC_MESSAGES" / "messages.po"


def test_english_catalogue_translates_every_string(tmp_path):
    template = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "-q", "extract", "-F", "babel.cfg",
         "-k", "_l", "-k", "lazy_gettext", "-k", "lazy_ngettext:1,2", "-o", str(template), "."],
        cwd=ROOT, check=True,
    )
    with template.open("rb") as handle:
        wanted = {message.id if isinstance(message.id, str) else message.id[0]
                  for message in read_po(handle) if message.id}
    with CATALOGUE.open("rb") as handle:
        catalogue = read_po(handle)
    translated = {
        (message.id if isinstance(message.id, str) else message.id[0])
        for message in catalogue
        if message.id and not message.fuzzy and all(message.string if isinstance(message.string, tuple)
                                                     else [message.string])
    }
    missing = sorted(wanted - translated)
    assert not missing, f"{len(missing)} untranslated, e.g. {missing[:5]}"


def test_pages_speak_french_by_default_and_english_on_request(client):
    french = client.get("/admin/connexion").get_data(as_text=True)
    assert "Se connecter" in french
    english = client.get("/admin/connexion", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Se connecter" not in english.get_data(as_text=True)


def test_templates_follow_a_locale_forced_inside_a_request(app):
    """Templates look the catalogue up once per request and locale: an email rendered in French
    during an English request (`force_locale`) is French, and the page around it stays English."""
    from flask import render_template_string
    from flask_babel import force_locale, refresh

    line = "{{ _('Quantité') }}"
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        refresh()  # the fixture's app context outlives this request's: forget its locale
        assert render_template_string(line) == "Quantity"
        with force_locale("fr"):
            assert render_template_string(line) == "Quantité"
        assert render_template_string(line) == "Quantity"


def test_wtforms_messages_follow_the_request_locale(app):
    """WTForms' own messages come from a catalogue read once per process and locale."""
    from flask_babel import refresh
    from flask_wtf import FlaskForm
    from werkzeug.datastructures import MultiDict
    from wtforms import IntegerField

    class QuantityForm(FlaskForm):
        quantity = IntegerField()

    for language, expected in (("fr", "N'est pas un entier valide."), ("en", "Not a valid integer value."),
                               ("fr", "N'est pas un entier valide.")):
        with app.test_request_context("/", headers={"Accept-Language": language}):
            refresh()  # the fixture's app context outlives this request's: forget its locale
            app.preprocess_request()
            form = QuantityForm(formdata=MultiDict({"quantity": "douze"}), meta={"csrf": False})
            form.validate()
            assert form.quantity.errors == [expected]


def test_strings_made_at_import_follow_the_request_and_a_forced_locale(app):
    """Labels, headers and messages made at import (the project's lazy_gettext) are translated
    when shown, in the visitor's language, and in the locale an email forces."""
    from flask_babel import force_locale, refresh

    from portal.i18n import lazy_gettext
    from portal.labels import label
    from portal.models import QuoteStatus

    refused = lazy_gettext("Refusé")
    placed = lazy_gettext("Nouveau devis %(reference)s à consulter", reference="DV-2026-00001")
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        refresh()  # the fixture's app context outlives this request's: forget its locale
        assert (str(refused), str(placed), label(QuoteStatus.ACCEPTED)) == (
            "Declined", "New quote DV-2026-00001 to review", "Accepted")
        with force_locale("fr"):
            assert (str(refused), str(placed), label(QuoteStatus.ACCEPTED)) == (
                "Refusé", "Nouveau devis DV-2026-00001 à consulter", "Validé")
        assert str(refused) == "Declined"
    with app.test_request_context("/"):
        refresh()
        assert (str(refused), label(QuoteStatus.ACCEPTED)) == ("Refusé", "Validé")
