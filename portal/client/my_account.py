"""« Mon compte » of the client portal: change one's password, sign out everywhere else; and the
header's language switch, whose choice this page shows."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import PasswordField

from .. import auth, forms
from ..i18n import lazy_gettext as _l
from ..transaction import transaction
from . import blueprint
from .access import client_required


class PasswordChangeForm(FlaskForm):
    current = PasswordField(_l("Mot de passe actuel"))
    password = PasswordField(_l("Nouveau mot de passe"))
    confirm = PasswordField(_l("Confirmez le nouveau mot de passe"))


def _page(form: PasswordChangeForm):
    return render_template("client/my_account.html", form=form, everywhere_form=FlaskForm(),
                           min_length=auth.MIN_PASSWORD_LENGTH)


@blueprint.route("/compte", methods=["GET", "POST"])
@client_required
def my_account():
    """Change the password: the other sessions end, this one stays signed in."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        with transaction() as outcome:
            auth.change_password(user, current=form.current.data, new=form.password.data,
                                 confirmation=form.confirm.data)
        if outcome.ok:
            auth.keep_current_session(user)
            flash(_("Votre mot de passe a été changé. Vos autres sessions ont été fermées."), "success")
            return redirect(url_for("client.my_account"), code=303)
    return _page(form)


@blueprint.route("/compte/deconnexion-partout", methods=["GET", "POST"])
@client_required
def sign_out_everywhere():
    """« Se déconnecter partout »: every other session ends (GET shows the page of its button)."""
    if request.method == "POST" and FlaskForm().validate_on_submit():
        user = current_user._get_current_object()
        with transaction():
            auth.sign_out_everywhere(user)
        auth.keep_current_session(user)
        flash(_("Toutes vos autres sessions ont été fermées ; vous restez connecté sur cet appareil."),
              "success")
        return redirect(url_for("client.my_account"), code=303)
    return _page(PasswordChangeForm(formdata=None))


@blueprint.post("/langue")
def choose_language():
    """The header's « FR | EN » (the sign-in pages' too): this session's language, and the signed-in
    client user's, kept in their profile."""
    user = current_user._get_current_object() if current_user.is_authenticated else None
    return forms.choose_language(user, fallback=url_for("client.home"))
