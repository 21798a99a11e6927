"""Staff sign-in and sign-out (email and password)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from ..auth import check_password
from ..extensions import configured_limit, db, limiter
from ..i18n import lazy_gettext as _l
from ..models import User, UserKind
from ..security import safe_next_url

blueprint = Blueprint("staff_auth", __name__, url_prefix="/admin")


class SignInForm(FlaskForm):
    email = EmailField(_l("Adresse email"), validators=[DataRequired()])
    password = PasswordField(_l("Mot de passe"), validators=[DataRequired()])


@blueprint.route("/connexion", methods=["GET", "POST"])
@limiter.limit(configured_limit("RATELIMIT_SIGNIN"), methods=["POST"])
def login():
    """Sign in a staff user; the same message whatever was wrong."""
    form = SignInForm()
    if form.validate_on_submit():
        user = db.session.scalar(
            select(User).where(User.email == form.email.data.strip().lower(),
                               User.kind == UserKind.STAFF, User.active.is_(True))
        )
        if user is not None and check_password(user, form.password.data):
            session.clear()  # a fresh session at every sign-in
            login_user(user)
            return redirect(safe_next_url(request.args.get("next"), url_for("admin.index")))
        flash(_("Adresse email ou mot de passe incorrect."), "error")
    return render_template("admin/signin.html", form=form)


@blueprint.post("/deconnexion")
def logout():
    """Sign out (POST, CSRF-protected)."""
    logout_user()
    session.clear()
    flash(_("Vous êtes déconnecté."), "info")
    return redirect(url_for("staff_auth.login"))
