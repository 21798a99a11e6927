"""The one transaction boundary of views: a view never commits nor rolls back itself.

Two shapes, in the spirit of Indico's request handler:

- `with transaction() as outcome:` around the domain calls of a form's POST: the block's writes
  are committed once at its end; a refusal (`DomainError`) raised inside rolls them all back, is
  flashed as "error" and logged in one line, and is suppressed, so that the view goes on with
  `outcome.ok` / `outcome.error` (redirect on success, render the form again on a refusal);
- `@transactional` on a view whose refusal is the error page or the JSON error (JSON routes, a PDF
  stored at first download, a page that stores something and just returns): it commits once
  after the view returned a response below 400, rolls back otherwise, and lets a `DomainError`
  propagate to the app's error handler (portal/errors.py), which rolls back and answers in French.

Any other exception rolls back and propagates. CLI commands and workers commit themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import TypeVar

from flask import current_app, flash

from .errors import log_refusal
from .exceptions import DomainError
from .extensions import db

View = TypeVar("View", bound=Callable)
Refusals = type[DomainError] | tuple[type[DomainError], ...]


@dataclass
class Outcome:
    """What a `transaction()` block came to: `ok`, or the refusal it ended on (`error`)."""

    error: DomainError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@contextmanager
def transaction(*, refusals: Refusals = DomainError, keep: Refusals = ()) -> Iterator[Outcome]:
    """Commit the block's writes once at its end. A refusal among `refusals` (every DomainError
    by default; `()`: none, they propagate) rolls the block back — or commits it, for one among
    `keep` (a sign-in lock keeps the owner's email) — is flashed, logged, and suppressed."""
    outcome = Outcome()
    try:
        yield outcome
    except refusals as error:
        outcome.error = error
        if isinstance(error, keep):
            db.session.commit()
        else:
            db.session.rollback()
        log_refusal(error)
        flash(str(error), "error")
        return
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()


def transactional(view: View) -> View:
    """Commit once after `view` returned a response below 400 (roll back otherwise); a
    DomainError propagates to the error handler, which rolls back and renders it."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        try:
            response = current_app.make_response(view(*args, **kwargs))
        except BaseException:
            db.session.rollback()
            raise
        if response.status_code < 400:
            db.session.commit()
        else:
            db.session.rollback()
        return response

    return wrapper  # type: ignore[return-value]
