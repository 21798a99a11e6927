"""HTML fragments of content that never changes, rendered once per process and locale.

A sent quote's lines are frozen: changing them means a revision, which is another quote. Its line
table (30 lines on a large quote) was most of the portal quote page's rendering; it is kept here,
keyed on what identifies that quote's content for good (its id with its creation and sending
times, so a database reloaded under a running process cannot serve another quote's table).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock

from flask import Flask, render_template
from flask_babel import get_locale
from markupsafe import Markup

from .models import Quote, QuoteStatus


class FragmentCache:
    """A bounded least-recently-used map of rendered fragments, shared by a process's threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._fragments: OrderedDict[Hashable, Markup] = OrderedDict()
        self._lock = Lock()

    def get_or_render(self, key: Hashable, render: Callable[[], Markup]) -> Markup:
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


LINE_TABLES = FragmentCache(size=512)


def quote_line_table(quote: Quote) -> Markup:
    """The quote's lines and totals (client/_quote_line_table.html); a draft's are never cached."""

    def render() -> Markup:
        return Markup(render_template("client/_quote_line_table.html", quote=quote))

    if quote.status == QuoteStatus.DRAFT:
        return render()
    key = (quote.id, quote.created_at, quote.sent_at, str(get_locale()))
    return LINE_TABLES.get_or_render(key, render)


def register(app: Flask) -> None:
    app.jinja_env.globals["quote_line_table"] = quote_line_table
