"""HTML fragments of content that never changes, rendered once per process and locale: a sent
quote's line table and its page's content, the back office's layout around each view's pages,
the portal's navigation; what differs between visits (a CSRF token, a nonce, a name) is put in
its slot on each page.

A sent quote's lines are frozen: changing them means a revision, which is another quote. Its line
table (30 lines on a large quote) was most of the portal quote page's rendering; it is kept here,
keyed on what identifies that quote's content for good (its id with its creation and sending
times, so a database reloaded under a running process cannot serve another quote's table).
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock
from typing import Any

from flask import Flask, current_app, get_flashed_messages, render_template, request
from flask_admin import helpers as admin_helpers
from flask_babel import get_locale, gettext, ngettext
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape

from .headers import csp_nonce
from .models import Invoice, Quote, QuoteStatus, TermsVersion


class FragmentCache:
    """A bounded least-recently-used map of rendered fragments, shared by a process's threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._fragments: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = Lock()

    def get_or_render(self, key: Hashable, render: Callable[[], Any]) -> Any:
        with self._lock:
            fragment = self._fragments.get(key)
            if fragment is not None:
                self._fragments.move_to_end(key)
                return fragment
        fragment = render()  # outside the lock: two threads may render it, both get the same
        with self._lock:
            self._fragments[key] = fragment
            if len(self._fragments) > self.size:
                self._fragments.popitem(last=False)
        return fragment

    def clear(self) -> None:
        with self._lock:
            self._fragments.clear()


# A slot stands in a cached fragment for a value each page puts in (a CSRF token, a name). Its
# marker carries a secret drawn when the process starts, so that no text typed by anyone (a
# quote's title, an organisation's name) can be taken for one.
_SLOT_SECRET = secrets.token_hex(8)
_SLOT = re.compile(f"\ue001{_SLOT_SECRET}:([a-z_]+)\ue001")


def slot(name: str) -> Markup:
    """The marker of the slot `name`, to render in place of its value."""
    return Markup(f"\ue001{_SLOT_SECRET}:{name}\ue001")


def split_slots(html: str) -> list[str]:
    """`html` cut at its slots: text, slot name, text, slot name… text."""
    return _SLOT.split(html)


def fill_slots(parts: list[str], values: dict[str, str]) -> Markup:
    """The fragment with each slot's value put in, in one pass: no value is read as a slot."""
    return Markup("".join(part if index % 2 == 0 else values[part] for index, part in enumerate(parts)))


LINE_TABLES = FragmentCache(size=512)


def quote_line_table(quote: Quote) -> Markup:
    """The quote's lines and totals (client/_quote_line_table.html); a draft's are never cached."""

    def render() -> Markup:
        return Markup(render_template("client/_quote_line_table.html", quote=quote))

    if quote.status == QuoteStatus.DRAFT:
        return render()
    key = (quote.id, quote.created_at, quote.sent_at, str(get_locale()))
    return LINE_TABLES.get_or_render(key, render)


def quote_page_body(quote: Quote, *, form, terms: TermsVersion | None, can_decide: bool,
                    invoice: Invoice | None, expired: bool) -> Markup:
    """The quote page's content (client/_quote_body.html). A sent quote's, as first shown (no
    form posted back), is the same for every visit by a role that can decide, or not, under a CGV
    version, while it is valid: rendered once, this request's CSRF token put in its slot. Its
    CGV text and decision form were most of the page's rendering once the lines were cached."""

    def render(csrf_token: str) -> Markup:
        return Markup(render_template("client/_quote_body.html", quote=quote, form=form, terms=terms,
                                      can_decide=can_decide, invoice=invoice, expired=expired,
                                      csrf_token_value=csrf_token))

    if quote.status != QuoteStatus.SENT or form is not None:
        return render(generate_csrf())
    cache = current_app.extensions.setdefault("quote_page_bodies", FragmentCache(size=512))
    key = (quote.id, quote.created_at, quote.sent_at, quote.valid_until, quote.billing_mode,
           terms.id if terms else None, terms.sha256 if terms else None, can_decide, expired,
           request.script_root, str(get_locale()))
    parts = cache.get_or_render(key, lambda: split_slots(render(slot("csrf_token"))))
    return fill_slots(parts, {"csrf_token": str(escape(generate_csrf()))})


CHROME_KINDS = ("head", "menu", "tail")


def admin_chrome(kind: str, view_endpoint: str, caller: Callable[[], str]) -> Markup:
    """A part of the back-office layout that is the same on every page of a view (stylesheets,
    menu, scripts), rendered once per app, view, staff role and locale: the menu alone asked every
    view whether it is accessible and built its URL, on every page. Some views are kept to admins,
    so the menu is the same for each staff member of a role. The scripts carry this request's CSP
    nonce, put in place of the one they were first rendered with."""
    if kind not in CHROME_KINDS:
        raise ValueError(kind)
    cache = current_app.extensions.setdefault("admin_chrome", FragmentCache(size=256))
    nonce = csp_nonce()
    first_nonce, html = cache.get_or_render(
        (kind, view_endpoint, _staff_role(), request.script_root, str(get_locale())),
        lambda: (nonce, Markup(caller())))
    return html if first_nonce == nonce else Markup(html.replace(first_nonce, nonce))


def _staff_role() -> str | None:
    """The signed-in staff member's role: the back-office menu shows the views of that role."""
    return getattr(current_user, "staff_role", None)


# The parts of a back-office page that change from one page to the next: slots of the view's
# cached layout.
ADMIN_PAGE_SLOTS = ("page_title", "messages", "body", "query", "csrf_token", "user_name")


def admin_page(view, template_name: str, **context: Any) -> str:
    """A back-office page whose layout (head, menu, search bar, scripts) is rendered once per
    view and locale, with this page's title, messages and body (the page_title and body blocks
    of `template_name`, which extends the admin layout), this request's search, CSRF token and
    user put in their slots. Flask-Admin's layout was a fifth of a search page's time."""
    nonce = csp_nonce()
    cache = current_app.extensions.setdefault("admin_pages", FragmentCache(size=256))
    first_nonce, parts = cache.get_or_render(
        (view.endpoint, _staff_role(), request.script_root, str(get_locale())),
        lambda: (nonce, split_slots(view.render(
            "admin/slotted_layout.html", slots={name: slot(name) for name in ADMIN_PAGE_SLOTS}))))
    values = _admin_page_values(view, template_name, context)
    if first_nonce != nonce:
        parts = [part.replace(first_nonce, nonce) if index % 2 == 0 else part
                 for index, part in enumerate(parts)]
    return str(fill_slots(parts, values))


def _admin_page_values(view, template_name: str, context: dict[str, Any]) -> dict[str, str]:
    """This page's value of each slot: the template's blocks rendered in the context Flask-Admin
    and Flask would give the whole template."""
    environment = current_app.jinja_env
    template = environment.get_template(template_name)
    variables = {"admin_view": view, "admin_base_template": view.admin.theme.base_template,
                 "admin_csp_nonce_attribute": Markup(f'nonce="{csp_nonce()}"'),
                 "_gettext": gettext, "_ngettext": ngettext, "h": admin_helpers,
                 "get_url": view.get_url, "config": current_app.config, "theme": view.admin.theme,
                 **view._template_args, **context}
    current_app.update_template_context(variables)
    page = template.new_context(variables)
    return {
        "page_title": _block(template, "page_title", page),
        "body": _block(template, "body", page),
        "messages": _messages_block(environment, view, variables),
        "query": str(escape(request.args.get("q", ""))),
        "csrf_token": str(escape(generate_csrf())),
        "user_name": str(escape(current_user.full_name)),
    }


def _block(template, name: str, context) -> str:
    return "".join(template.blocks[name](context))


def _messages_block(environment, view, variables: dict[str, Any]) -> str:
    """The layout's flashed messages. Most pages have none: the block without messages (whitespace,
    as Flask-Admin renders it) is rendered once per layout (get_flashed_messages keeps what it read
    for the rest of the request)."""
    name = view.admin.theme.base_template
    empty = current_app.extensions.setdefault("admin_empty_messages", {})
    has_messages = bool(get_flashed_messages())
    if not has_messages and name in empty:
        return empty[name]
    layout = environment.get_template(name)
    html = _block(layout, "messages", layout.new_context(variables))
    if not has_messages:
        empty[name] = html
    return html


def portal_navigation() -> Markup:
    """The signed-in client's navigation (client/_navigation.html): its links and labels are the
    same for every client of a role, so it is rendered once per app, role and locale, and this
    client's organisation name and CSRF token are put in their slots on each page. Its gettext
    and url_for calls were a sixth of the portal quote page's time."""
    user = current_user
    cache = current_app.extensions.setdefault("portal_navigation", FragmentCache(size=64))
    parts = cache.get_or_render(
        (user.client_role, request.script_root, str(get_locale())),
        lambda: split_slots(render_template("client/_navigation.html", client_role=user.client_role,
                                            organisation_name=slot("organisation_name"),
                                            csrf_token=slot("csrf_token"))))
    return fill_slots(parts, {"organisation_name": str(escape(user.organisation.name)),
                              "csrf_token": str(escape(generate_csrf()))})


def register(app: Flask) -> None:
    app.jinja_env.globals["quote_line_table"] = quote_line_table
    app.jinja_env.globals["admin_chrome"] = admin_chrome
    app.jinja_env.globals["portal_navigation"] = portal_navigation
    app.jinja_env.globals["quote_page_body"] = quote_page_body
