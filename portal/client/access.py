"""Who may see what in the portal: a client user, and only their own organisation's objects."""

from __future__ import annotations

from functools import wraps

from flask import abort, redirect, request, url_for
from flask_login import current_user

from .. import quotes
from ..extensions import db
from ..models import ClientRole, UserKind


def client_required(view):
    """Signed-in client users only: anonymous → sign-in page (back here after), staff → 403."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return redirect(url_for("client.login", next=request.full_path.rstrip("?")))
        if current_user.kind != UserKind.CLIENT:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def responsable_required(view):
    """The organisation's responsable only (others: 404, the page does not exist for them)."""

    @wraps(view)
    @client_required
    def wrapper(*args, **kwargs):
        if current_user.client_role != ClientRole.RESPONSABLE:
            abort(404)
        return view(*args, **kwargs)

    return wrapper


def own(model, object_id: int):
    """The object if it belongs to the current user's organisation; 404 otherwise."""
    return owned(db.session.get(model, object_id))


def owned(obj):
    """`obj` if it exists and belongs to the current user's organisation; 404 otherwise."""
    if obj is None or obj.organisation_id != current_user.organisation_id:
        abort(404)
    return obj


def can_decide() -> bool:
    """Whether the signed-in user may accept, refuse and pay (the domain's `quotes.may_decide`)."""
    return quotes.may_decide(current_user)
