"""Staff sign-in and sign-out (email and password), and the back office's language switch."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from .. import auth, forms, outbox
from ..exceptions import AccountLocked
from ..extensions import configured_limit, limiter
from ..i18n import lazy_gettext as _l
from ..models import UserKind
from ..security import safe_next_url
from ..transaction import transaction

blueprint = Blueprint("staff_auth", __name__, url_prefix="/admin")


class SignInForm(FlaskForm):
    email = EmailField(_l("Adresse email"), validators=[DataRequired()])
    password = PasswordField(_l("Mot de passe"), validators=[DataRequired()])


@blueprint.route("/connexion", methods=["GET", "POST"])
@limiter.limit(configured_limit("RATELIMIT_SIGNIN"), methods=["POST"])
def login():
    """Sign in a staff user; the same message whatever was wrong, per IP and per account limits."""
    form = SignInForm()
    status, headers = 200, {}
    if form.validate_on_submit():
        with transaction(keep=AccountLocked) as outcome:  # a lock keeps the owner's email
            user = auth.authenticate(form.email.data, form.password.data, kind=UserKind.STAFF,
                                     on_lock=outbox.enqueue_account_locked)
        if isinstance(outcome.error, AccountLocked):
            status, headers = 429, {"Retry-After": str(60 * outcome.error.params["minutes"])}
        elif outcome.ok:
            auth.start_session(user)  # a fresh session at every sign-in
            return redirect(safe_next_url(request.args.get("next"), url_for("admin.index")))
    return render_template("admin/signin.html", form=form), status, headers


@blueprint.post("/deconnexion")
def logout():
    """Sign out (POST, CSRF-protected): every session of the user ends, copied cookies too."""
    if current_user.is_authenticated:
        with transaction():
            auth.revoke_sessions(current_user._get_current_object())
        logout_user()
    auth.clear_session()  # the language chosen stays
    flash(_("Vous êtes déconnecté."), "info")
    return redirect(url_for("staff_auth.login"))


@blueprint.post("/langue")
def choose_language():
    """The navbar's « FR | EN » (the sign-in page's too): this session's language, and the
    signed-in staff user's."""
    user = current_user._get_current_object() if current_user.is_authenticated else None
    return forms.choose_language(user, fallback=url_for("admin.index"))
