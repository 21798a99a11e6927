"""Exactly-once form submissions: the form's token is inserted in the action's transaction."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from .exceptions import DuplicateSubmission, IncompleteForm
from .extensions import db
from .models import SubmittedForm


def claim(token: str | None) -> None:
    """Record `token`; a second claim (a double submit) raises DuplicateSubmission."""
    if not token or len(token) > 64:
        raise IncompleteForm()
    if db.session.get(SubmittedForm, token) is not None:
        raise DuplicateSubmission()
    try:
        with db.session.begin_nested():
            db.session.add(SubmittedForm(token=token))
    except IntegrityError as error:  # a concurrent submit of the same form won the insert
        raise DuplicateSubmission() from error
