"""Test-client helpers: CSRF tokens read from pages, staff sign-in, SQL statement counts."""

from __future__ import annotations

import html
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import event

from portal.auth import hash_password
from portal.extensions import db
from portal.models import User

PASSWORD = "mot-de-passe-solide"
CSRF_PATTERN = re.compile(r'name="csrf_token"[^>]*?value="([^"]+)"')
SUBMISSION_PATTERN = re.compile(r'name="submission_token"[^>]*?value="([^"]+)"')


def csrf_from(page: str) -> str:
    """The CSRF token of the first form of a rendered page."""
    match = CSRF_PATTERN.search(page)
    assert match, "no csrf_token in the page"
    return html.unescape(match.group(1))


def csrf_token(client, url: str = "/admin/") -> str:
    """GET `url` and return the CSRF token of its first form."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return csrf_from(response.get_data(as_text=True))


def form_tokens(client, url: str) -> dict[str, str]:
    """GET `url` and return its form's hidden tokens (CSRF, and the once-only token if any)."""
    page = client.get(url).get_data(as_text=True)
    tokens = {"csrf_token": csrf_from(page)}
    once = SUBMISSION_PATTERN.search(page)
    if once:
        tokens["submission_token"] = once.group(1)
    return tokens


def sign_in(client, user: User, password: str = PASSWORD) -> None:
    """Sign a staff `user` in through the staff sign-in form (giving them `password` first)."""
    user.password_hash = hash_password(password)
    db.session.commit()
    token = csrf_token(client, "/admin/connexion")
    response = client.post("/admin/connexion",
                           data={"csrf_token": token, "email": user.email, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)


def sign_in_client(client, user: User) -> None:
    """A signed-in portal session for a client `user` (the sign-in forms are tested on their own)."""
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True


def post_form(client, url: str, data: dict | None = None, *, form_url: str | None = None,
              follow_redirects: bool = False):
    """POST `data` to `url` with the CSRF token of the page `form_url` (default: `url`)."""
    token = csrf_token(client, form_url or url)
    return client.post(url, data={"csrf_token": token, **(data or {})},
                       follow_redirects=follow_redirects)


def page_text(response) -> str:
    """A response's HTML with entities decoded (French apostrophes, no-break spaces…)."""
    return html.unescape(response.get_data(as_text=True))


@dataclass
class QueryCounter:
    statements: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.statements)


@contextmanager
def count_queries():
    """Count the SQL statements run in the block: `with count_queries() as counter: …; counter.n`."""
    counter = QueryCounter()

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        counter.statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield counter
    finally:
        event.remove(db.engine, "before_cursor_execute", before_cursor_execute)


def queries_of_get(client, url: str) -> int:
    """The number of SQL statements a GET of `url` runs (asserting a 200)."""
    db.session.expire_all()
    with count_queries() as counter:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return counter.n
