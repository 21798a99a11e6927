"""« Mon compte » of the back office: the signed-in staff user changes their password, or signs out
everywhere else. Reached from the header (next to « Se déconnecter »), not from the menu."""

from __future__ import annotations

from flask import flash, redirect, request
from flask_admin import expose
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import PasswordField

from .. import auth
from ..i18n import lazy_gettext as _l
from ..transaction import transaction
from .base import SecureView, acting_user


class PasswordChangeForm(FlaskForm):
    current = PasswordField(_l("Mot de passe actuel"))
    password = PasswordField(_l("Nouveau mot de passe"))
    confirm = PasswordField(_l("Confirmez le nouveau mot de passe"))


class AccountView(SecureView):
    """The password form and the « Se déconnecter partout » button."""

    def is_visible(self) -> bool:
        return False  # linked from the header, beside the user's name

    def _page(self, form: PasswordChangeForm):
        return self.render("admin/my_account.html", form=form, everywhere_form=FlaskForm(),
                           min_length=auth.MIN_PASSWORD_LENGTH)

    @expose("/", methods=("GET", "POST"))
    def index(self):
        form = PasswordChangeForm()
        if form.validate_on_submit():
            user = acting_user()
            with transaction() as outcome:
                auth.change_password(user, current=form.current.data, new=form.password.data,
                                     confirmation=form.confirm.data)
            if outcome.ok:
                auth.keep_current_session(user)
                flash(_("Votre mot de passe a été changé. Vos autres sessions ont été fermées."), "success")
                return redirect(self.get_url(".index"), code=303)
        return self._page(form)

    @expose("/deconnexion-partout", methods=("GET", "POST"))
    def sign_out_everywhere(self):
        """Every other session ends; GET shows the page of its button."""
        if request.method == "POST" and FlaskForm().validate_on_submit():
            user = acting_user()
            with transaction():
                auth.sign_out_everywhere(user)
            auth.keep_current_session(user)
            flash(_("Toutes vos autres sessions ont été fermées ; vous restez connecté sur cet appareil."),
                  "success")
            return redirect(self.get_url(".index"), code=303)
        return self._page(PasswordChangeForm(formdata=None))


def register(admin) -> None:
    """Add « Mon compte » at /admin/compte."""
    admin.add_view(AccountView(name=_l("Mon compte"), endpoint="staff_account", url="/admin/compte"))
