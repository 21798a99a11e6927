"""Portal sign-in: password, a passwordless link by email, the quote email's magic link, the
invitation link that lets a new user choose a password, and the platform's single sign-on."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from .. import auth, outbox
from ..exceptions import AccountLocked, MagicLinkInvalid
from ..extensions import configured_limit, db, limiter
from ..i18n import lazy_gettext as _l
from ..models import User, UserKind
from ..security import safe_next_url
from ..transaction import transaction
from . import blueprint
from .quotes_views import LINK_SESSION_KEY


class SignInForm(FlaskForm):
    email = EmailField(_l("Adresse email"), validators=[DataRequired()])
    password = PasswordField(_l("Mot de passe"), validators=[DataRequired()])


class LinkRequestForm(FlaskForm):
    email = EmailField(_l("Adresse email"), validators=[DataRequired()])


class NewPasswordForm(FlaskForm):
    password = PasswordField(_l("Nouveau mot de passe"), validators=[DataRequired()])
    confirm = PasswordField(_l("Confirmez le mot de passe"), validators=[DataRequired()])


def start_session(user: User) -> None:
    """Sign in with a fresh session (no fixation), carrying the user's session version."""
    auth.start_session(user)


def _destination() -> str:
    return safe_next_url(request.args.get("next"), url_for("client.quote_list"))


@blueprint.route("/connexion", methods=["GET", "POST"])
@limiter.limit(configured_limit("RATELIMIT_SIGNIN"), methods=["POST"])
def login():
    """Email and password; the same message whatever was wrong, per IP and per account limits."""
    form = SignInForm()
    status, headers = 200, {}
    if form.validate_on_submit():
        with transaction(keep=AccountLocked) as outcome:  # a lock keeps the owner's email
            user = auth.authenticate(form.email.data, form.password.data, kind=UserKind.CLIENT,
                                     on_lock=outbox.enqueue_account_locked)
        if isinstance(outcome.error, AccountLocked):
            status, headers = 429, {"Retry-After": str(60 * outcome.error.params["minutes"])}
        elif outcome.ok:
            start_session(user)
            return redirect(_destination())
    return render_template("client/login.html", form=form, link_form=LinkRequestForm(formdata=None),
                           next=request.args.get("next", "")), status, headers


@blueprint.post("/connexion/lien")
@limiter.limit(configured_limit("RATELIMIT_LINK_REQUEST"))
def request_link():
    """Email a sign-in link; the answer is the same whether or not the address exists, and
    beyond the limit per address (RATELIMIT_LINK_REQUEST_ACCOUNT), when no email is sent."""
    form = LinkRequestForm()
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        user = db.session.scalar(select(User).where(
            User.email == email, User.kind == UserKind.CLIENT, User.active.is_(True)))
        if auth.link_request_allowed(email) and user is not None:
            with transaction():
                outbox.enqueue_login_link(user)
        flash(_("Si un compte existe pour cette adresse, un lien de connexion vient de lui être envoyé. "
                "Il est valable pendant une durée limitée et ne sert qu'une fois."), "info")
    else:
        flash(_("Indiquez votre adresse email."), "error")
    return redirect(url_for("client.login", next=request.args.get("next") or None))


@blueprint.get("/lien/<token>")
def magic_link(token: str):
    """The landing page of an emailed link: it consumes nothing (mail scanners open links)."""
    response = render_template("client/magic_link.html", token=token, form=FlaskForm())
    return response, 200, {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


@blueprint.post("/lien/<token>")
@limiter.limit(configured_limit("RATELIMIT_LINK"))
def consume_link(token: str):
    """The button of the landing page: use the link once, sign in afresh, go to its quote."""
    if not FlaskForm().validate_on_submit():
        return redirect(url_for("client.login"))
    link = auth.peek_link(token)
    destination = _link_destination(link)
    with transaction(refusals=MagicLinkInvalid) as outcome:
        user = auth.consume_magic_link(token)
    if not outcome.ok:
        return redirect(url_for("client.login", next=destination), code=303)
    start_session(user)
    if link.quote_id is not None:
        session[LINK_SESSION_KEY] = link.quote_id
    return redirect(destination or url_for("client.quote_list"), code=303)


def _link_destination(link) -> str | None:
    """Where a quote link leads (its quote page), also after a failure, via the sign-in page."""
    if link is None or link.quote_id is None or link.purpose != auth.MAGIC_LINK_QUOTE:
        return None
    return url_for("client.quote_page", quote_id=link.quote_id)


@blueprint.get("/sso/<token>")
@limiter.limit(configured_limit("RATELIMIT_LINK"))
def platform_sign_in(token: str):
    """Single sign-on from the platform (POST /api/v1/sessions): the link is used up at once, on
    this GET, since no mail scanner ever sees it (unlike /lien/, it is never emailed); the user
    is signed in afresh and lands on the link's page. The platform's browser opens it, maybe in
    the iframe that embeds the portal."""
    link = auth.peek_link(token)
    destination = (request.script_root + link.next_path
                   if link and link.purpose == auth.MAGIC_LINK_API_SESSION and link.next_path else None)
    with transaction(refusals=MagicLinkInvalid) as outcome:
        user = auth.consume_magic_link(token, purpose=auth.MAGIC_LINK_API_SESSION)
    if not outcome.ok:
        return redirect(url_for("client.login", next=destination), code=303)
    start_session(user)
    return redirect(destination or url_for("client.quote_list"), code=303)


@blueprint.route("/invitation/<token>", methods=["GET", "POST"])
@limiter.limit(configured_limit("RATELIMIT_LINK"), methods=["POST"])
def invitation(token: str):
    """Choose a password from an invitation link, then arrive signed in."""
    form = NewPasswordForm()
    headers = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
    if form.validate_on_submit():
        with transaction() as outcome:
            user = auth.accept_invitation(token, password=form.password.data,
                                          confirmation=form.confirm.data)
        if isinstance(outcome.error, MagicLinkInvalid):
            return redirect(url_for("client.login"), code=303)
        if outcome.ok:
            start_session(user)
            flash(_("Votre mot de passe est enregistré. Bienvenue dans votre espace client."), "success")
            return redirect(url_for("client.quote_list"), code=303)
    return render_template("client/invitation.html", form=form), 200, headers


@blueprint.post("/deconnexion")
def logout():
    """Sign out (POST, CSRF-protected): every session of the user ends, copied cookies too."""
    if current_user.is_authenticated:
        with transaction():
            auth.revoke_sessions(current_user._get_current_object())
        logout_user()
    auth.clear_session()  # the language chosen stays
    flash(_("Vous êtes déconnecté."), "info")
    return redirect(url_for("client.login"))
