"""Every refusal is a named exception of portal/exceptions.py with a translatable message.

The source is read with `ast`: a domain error is never given a message of its own (its class
carries it, what varies is passed by keyword), and any other exception raised with a message is
either a programming error or one of the few named below. Then every refusal renders in French
and in English, and an English visitor refused through a page reads English.
"""

from __future__ import annotations

import ast
import re
from html import unescape
from pathlib import Path

import pytest
from flask_babel import force_locale, refresh
from flask_babel.speaklater import LazyString

from portal import exceptions, quote_requests, quotes
from portal.exceptions import DomainError, InvalidInput, InvalidVatRate
from portal.extensions import db
from portal.i18n import lazy_gettext as _l
from portal.models import Channel, ClientRole

from .web import csrf_from, form_tokens, sign_in_client

PORTAL = Path(__file__).resolve().parent.parent / "portal"

# Raised with a plain message for whoever reads the traceback or the log, never shown as a refusal.
PROGRAMMING_ERRORS = {
    "RuntimeError", "ValueError", "TypeError", "KeyError", "LookupError", "IndexError",
    "AttributeError", "NotImplementedError", "AssertionError", "SystemExit",
}
# Not domain refusals, yet raised with a message, for a reason each.
OTHER_MESSAGES = {
    # WTForms' protocol for a field's error, shown beside the field: it must be translatable.
    "ValidationError",
    # The CLI's operator console, French like all of the CLI's output (no visitor, no locale).
    "ClickException",
    # An SMTP transport's diagnostic, kept on the email row for the staff's Emails view.
    "DeliveryError",
}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(path.relative_to(PORTAL.parent)), ast.parse(path.read_text(encoding="utf-8"), str(path)))
            for path in sorted(PORTAL.rglob("*.py"))]


def _name(node: ast.expr) -> str | None:
    """`Name(...)` or `module.Name(...)`: the class name called."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _classes(modules) -> list[tuple[str, str, list[str | None]]]:
    """Every class defined under portal/: (name, where, base names)."""
    return [(node.name, f"{path}:{node.lineno}", [_name(base) for base in node.bases])
            for path, tree in modules for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def _descendants(classes, roots: set[str]) -> set[str]:
    """The roots and every class of portal/ deriving from one of them, by name."""
    names = set(roots)
    while True:
        more = {name for name, _, bases in classes if names.intersection(bases)} - names
        if not more:
            return names
        names |= more


def _message_argument(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((keyword.value for keyword in call.keywords if keyword.arg in ("message", "msg")), None)


def _is_translated(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and _name(node.func) in ("_", "_l", "gettext", "lazy_gettext")


def _is_text(node: ast.expr) -> bool:
    """A message written at the raise: a string, an f-string, a gettext call, `str(…)`, or a
    concatenation or %-formatting of one (`raise _why_undecided(version)` is no message)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.BinOp):
        return _is_text(node.left) or _is_text(node.right)
    return isinstance(node, ast.JoinedStr) or _is_translated(node) or (
        isinstance(node, ast.Call) and _name(node.func) in ("str", "format"))


def _refusal_called(node: ast.AST) -> type[DomainError] | None:
    """The class of portal/exceptions.py a call makes an instance of, if any."""
    cls = getattr(exceptions, _name(node.func) or "", None) if isinstance(node, ast.Call) else None
    return cls if isinstance(cls, type) and issubclass(cls, DomainError) else None


def _source(refusal: type[DomainError]) -> str:
    """A refusal's message as written (French is the source language), placeholders included."""
    with force_locale("fr"):
        return str(refusal.message)


def _render(node: ast.expr) -> str:
    return ast.unparse(node)[:90]


def test_domain_errors_are_named_classes_of_the_exceptions_module():
    modules = _modules()
    classes = _classes(modules)
    domain = _descendants(classes, {"DomainError"})
    elsewhere = sorted(f"{where}: class {name}" for name, where, _ in classes
                       if name in domain and not where.startswith("portal/exceptions.py:"))
    assert not elsewhere, "domain errors belong in portal/exceptions.py:\n" + "\n".join(elsewhere)


def test_no_refusal_is_raised_with_a_message_of_its_own():
    """`raise QuoteNotDraft()`, `raise PeriodNotOver(period=period)`: never
    `raise InvalidInput("…")`, `raise NotAllowed(_("…"))` nor `raise SomeError(f"…")`."""
    modules = _modules()
    classes = _classes(modules)
    domain = _descendants(classes, {"DomainError"})
    allowed = _descendants(classes, PROGRAMMING_ERRORS | OTHER_MESSAGES)
    offending = []
    for path, tree in modules:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) in domain and _message_argument(node):
                offending.append(f"{path}:{node.lineno}: {_render(node)} (a domain error given a "
                                 "message: name a class with it in portal/exceptions.py)")
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                name, message = _name(node.exc.func), _message_argument(node.exc)
                if name in domain or message is None or not _is_text(message):
                    continue
                if name not in allowed:
                    offending.append(f"{path}:{node.lineno}: {_render(node.exc)} (a refusal with a "
                                     "message: raise a named domain error instead)")
                elif name == "ValidationError" and isinstance(message, ast.Constant | ast.JoinedStr):
                    offending.append(f"{path}:{node.lineno}: {_render(node.exc)} (a form error "
                                     "shown untranslated: wrap it in _l())")
    offending.sort(key=lambda line: (line.split(":")[0], int(line.split(":")[1])))
    assert not offending, f"{len(offending)} refusal(s) with a message of their own:\n" + "\n".join(offending)


def test_every_refusal_is_given_the_values_its_message_names():
    """A message's `%(name)s` placeholders are passed as keywords wherever the class is raised
    (a missing one would make a refusal a 500)."""
    missing = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            cls = _refusal_called(node)
            if cls is None or any(keyword.arg is None for keyword in node.keywords):  # **values
                continue
            wanted = set(PLACEHOLDER.findall(_source(cls)))
            given = {keyword.arg for keyword in node.keywords}
            if wanted - given:
                missing.append(f"{path}:{node.lineno}: {_render(node)} lacks {sorted(wanted - given)}")
    assert not missing, "\n".join(missing)


def _refusals() -> list[type[DomainError]]:
    found, pending = [], [DomainError]
    while pending:
        cls = pending.pop()
        if cls.__module__ == exceptions.__name__:
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda cls: cls.__name__)


@pytest.mark.parametrize("refusal", _refusals(), ids=lambda cls: cls.__name__)
def test_every_refusal_reads_well_in_french_and_in_english(app, refusal):
    """Its message is translatable, renders with its values in both languages, shows `%` once
    (never `%%`), and the English catalogue has it."""
    assert isinstance(refusal.message, LazyString), f"{refusal.__name__}.message is not _l(…)"
    params = {name: "«valeur»" for name in PLACEHOLDER.findall(_source(refusal))}
    shown = {}
    for language in ("fr", "en"):
        with app.test_request_context("/", headers={"Accept-Language": language}):
            refresh()  # the fixture's app context outlives this request's: forget its locale
            shown[language] = str(refusal(**params))
    for text in shown.values():
        assert "%%" not in text and "%(" not in text and text.strip(), text
        assert all(value in text for value in params.values()), text
    assert shown["fr"] != shown["en"], f"{refusal.__name__} is not translated: {shown['en']}"


def test_a_percent_sign_shows_once_with_or_without_values(app):
    """`%%` in a message is one `%`, whether the message has placeholders or not (the VAT rates'
    message has none and used to show « 0 %% »)."""

    class DiscountRefused(InvalidInput):
        message = _l("Remise de 5 %% refusée pour %(name)s.")

    with app.test_request_context("/"):
        refresh()
        assert str(InvalidVatRate()) == (
            "Taux de TVA non autorisé : choisissez 0 %, 2,1 %, 5,5 %, 10 % ou 20 %.")
        assert str(DiscountRefused(name="ACME")) == "Remise de 5 % refusée pour ACME."
        assert str(InvalidInput("Organisation incomplète.")) == "Organisation incomplète."
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        refresh()
        assert str(InvalidVatRate()) == "VAT rate not allowed: choose 0%, 2.1%, 5.5%, 10% or 20%."


# --- Through the pages: an English visitor refused reads English -----------------------------

ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}


def test_a_client_accepting_a_quote_already_decided_reads_why_in_english(client, make):
    world = make.world()
    db.session.commit()
    quote, decider = world["quote"], world["users"][ClientRole.GESTIONNAIRE]
    sign_in_client(client, decider)
    page = client.get(f"/espace-client/devis/{quote.id}", headers=ENGLISH).get_data(as_text=True)
    quotes.refuse(quote, actor=decider, terms_version=world["terms"], channel=Channel.PORTAL,
                  reason="Budget revu")  # meanwhile, in another tab
    db.session.commit()

    response = client.post(f"/espace-client/devis/{quote.id}/decision", headers=ENGLISH, data={
        "csrf_token": csrf_from(page), "terms_version_id": str(world["terms"].id),
        "accept_terms": "y", "action": "valider"})

    assert response.status_code == 409
    text = unescape(response.get_data(as_text=True))
    assert ("This quote is no longer awaiting a decision (already accepted, declined, cancelled "
            "or superseded).") in text
    assert "n'est plus en attente" not in text


def test_a_staff_member_declining_a_request_without_a_reason_reads_why_in_english(staff_client, make):
    world = staff_client.world
    request = quote_requests.create_request(organisation=world["org"],
                                            requester=world["users"][ClientRole.MEMBRE],
                                            items=[(make.product().id, 1)])
    db.session.commit()
    tokens = form_tokens(staff_client, f"/admin/demandes/{request.id}")

    response = staff_client.post(f"/admin/demandes/{request.id}/decliner", headers=ENGLISH,
                                 data={**tokens, "reason": " "})

    text = unescape(response.get_data(as_text=True))
    assert "Enter the reason for declining the request." in text
    assert "Indiquez le motif" not in text
