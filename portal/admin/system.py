"""Administration: client users (invitations, deactivation), the email outbox, the audit trail,
seller settings (admins only)."""

from __future__ import annotations

import re

from flask import abort, flash, get_template_attribute, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import FilterEqual, IntEqualFilter
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import func, select
from wtforms import BooleanField, EmailField, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from .. import accounts, audit_sentences, auth, documents, outbox
from ..delivery import emails
from ..extensions import db
from ..i18n import lazy_gettext as _l
from ..labels import label
from ..models import (
    AuditEvent,
    ClientRole,
    Organisation,
    OutboxEmail,
    OutboxStatus,
    SellerSettings,
    User,
    UserKind,
)
from ..transaction import transaction
from .base import (
    AccountActivationMixin,
    AdminOnly,
    ChoiceFilter,
    PortalForm,
    SecureModelView,
    SecureView,
    account_cell,
    acting_user,
    badge,
    client_ip,
    date_cell,
    email_syntax,
    strip,
)

# --- Client users -----------------------------------------------------------------------------


class InviteForm(PortalForm):
    email = EmailField(_l("Adresse email"), filters=[strip], validators=[
        DataRequired(message=_l("Indiquez l'adresse email de l'utilisateur.")), email_syntax])
    full_name = StringField(_l("Nom complet"), filters=[strip], validators=[
        DataRequired(message=_l("Indiquez le nom complet de l'utilisateur.")),
        Length(max=200, message=_l("Le nom fait 200 caractères au plus."))])
    organisation_id = SelectField(_l("Organisation"), coerce=int, validate_choice=True)
    role = SelectField(_l("Rôle"), default=ClientRole.GESTIONNAIRE.value,
                       choices=[SelectChoice(role.value, label(role)) for role in ClientRole],
                       description=_l("Responsable : gère les utilisateurs et l'autorisation de "
                                      "validation. Gestionnaire : valide, refuse et paie les devis. "
                                      "Membre : consulte et demande des devis."))


def _organisation_name_cell(view, context, model, name) -> Markup:
    url = url_for("organisation.page", organisation_id=model.organisation_id)
    return Markup('<a href="{}">{}</a>').format(url, model.organisation.name)


class OrganisationNameFilter(FilterEqual):
    """Rows of the organisations whose name contains the text typed."""

    def apply(self, query, value, alias=None):
        text = value.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{text}%"
        matching = select(Organisation.id).where(func.lower(Organisation.name).like(pattern, escape="\\"))
        return query.filter(self.get_column(alias).in_(matching))

    def operation(self):
        return _l("contient")


class ClientUserView(AccountActivationMixin, SecureModelView):
    """Client users, with their organisation and role; new ones are invited by email; any staff
    member may deactivate or reactivate them."""

    can_create = False
    can_edit = False
    list_template = "admin/client_users_list.html"
    column_list = ("full_name", "email", "organisation", "client_role", "account", "created_at")
    column_select_related_list = (User.organisation,)
    column_sortable_list = ("full_name", "email", "created_at")
    column_default_sort = ("id", True)
    column_searchable_list = ("email", "full_name")
    column_filters = (
        ChoiceFilter(User.client_role, _l("Rôle"), ClientRole),
        OrganisationNameFilter(User.organisation_id, _l("Organisation")),
    )
    column_labels = {"full_name": _l("Nom"), "email": _l("Email"), "organisation": _l("Organisation"),
                     "client_role": _l("Rôle"), "account": _l("Compte"), "created_at": _l("Créé le")}
    column_formatters = {
        "organisation": _organisation_name_cell, "account": account_cell, "created_at": date_cell,
        "client_role": lambda view, context, model, name: label(model.client_role),
    }

    def get_query(self):
        return super().get_query().filter(User.kind == UserKind.CLIENT)

    def get_count_query(self):
        return super().get_count_query().filter(User.kind == UserKind.CLIENT)

    def get_one(self, id):
        user = super().get_one(id)
        return user if user is not None and user.kind == UserKind.CLIENT else None

    @expose("/inviter", methods=("GET", "POST"))
    def invite(self):
        """Create a client user and email them a link to choose their password."""
        form = InviteForm()
        form.organisation_id.choices = [SelectChoice(0, _("— Choisissez —"))] + [
            SelectChoice(organisation_id, name) for organisation_id, name in db.session.execute(
                select(Organisation.id, Organisation.name).order_by(Organisation.name))]
        if request.method == "GET":
            form.organisation_id.data = request.args.get("organisation", 0, type=int)
        if form.validate_on_submit():
            with transaction() as outcome:
                user = accounts.invite_client_user(
                    organisation=db.session.get(Organisation, form.organisation_id.data),
                    email=form.email.data, full_name=form.full_name.data, role=form.role.data,
                    actor=acting_user(), ip=client_ip())
            if outcome.ok:
                flash(_("Invitation envoyée à %(email)s.", email=user.email), "success")
                return redirect(self.get_url(".index_view"))
        return self.render("admin/client_user_invite.html", form=form)


# --- Emails -----------------------------------------------------------------------------------

TEMPLATE_LABELS = {
    "quote_sent": _l("Devis envoyé"), "quote_reminder": _l("Rappel de devis"),
    "quote_decided": _l("Décision sur un devis"), "invoice_issued": _l("Facture émise"),
    "monthly_invoice_issued": _l("Facture mensuelle émise"),
    "credit_note_issued": _l("Avoir émis"), "payment_received": _l("Paiement reçu"),
    "request_received": _l("Demande de devis reçue"), "user_invited": _l("Invitation d'un utilisateur"),
    "monthly_quote_accepted": _l("Devis mensuel accepté"),
    "request_answered": _l("Demande de devis : devis envoyé"),
    "request_declined": _l("Demande de devis déclinée"),
    "decided_on_behalf": _l("Décision prise sous mandat"),
}
MASKED_LINK = "[lien personnel masqué]"
PREVIEW_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; sandbox"


def _rendered_preview(email: OutboxEmail) -> tuple[emails.RenderedEmail | None, str | None]:
    """The email as it will be sent, its personal links masked (they log the client in)."""
    try:
        rendered = emails.render(email)
    except Exception as error:  # noqa: BLE001 - a broken row must show its error, not a 500
        return None, f"{type(error).__name__}: {error}"
    secrets = [auth.raw_token_from_seed(email.context[key])
               for key in (outbox.LINK_SEED, outbox.INVITE_SEED) if email.context.get(key)]
    parts = []
    for text in (rendered.subject, rendered.text, rendered.html):
        for secret in secrets:
            text = text.replace(secret, MASKED_LINK)
        parts.append(text)
    return emails.RenderedEmail(*parts), None


class OutboxEmailView(SecureModelView):
    """The outbox: what was sent, what waits, what failed (a failed email can be sent again)."""

    can_create = False
    can_edit = False
    details_template = "admin/email_details.html"
    column_list = ("created_at", "recipient", "template", "status", "attempts", "last_error", "sent_at")
    column_sortable_list = ("created_at", "recipient", "attempts", "sent_at")
    column_default_sort = ("id", True)
    column_searchable_list = ("recipient",)
    column_filters = (
        ChoiceFilter(OutboxEmail.status, _l("Statut"), OutboxStatus),
        FilterEqual(OutboxEmail.template, _l("Modèle"), options=list(TEMPLATE_LABELS.items())),
    )
    column_labels = {"created_at": _l("Créé le"), "recipient": _l("Destinataire"),
                     "template": _l("Modèle"), "status": _l("Statut"), "attempts": _l("Tentatives"),
                     "last_error": _l("Dernière erreur"), "sent_at": _l("Envoyé le")}
    column_formatters = {
        "created_at": date_cell, "sent_at": date_cell,
        "template": lambda view, context, model, name: TEMPLATE_LABELS.get(model.template, model.template),
        "status": lambda view, context, model, name: badge(f"email-{model.status.value}",
                                                           label(model.status)),
        "last_error": lambda view, context, model, name: (model.last_error or "")[:120],
    }

    @expose("/details/")
    def details_view(self):
        email = self.get_one(request.args.get("id")) or abort(404)
        rendered, error = _rendered_preview(email)
        return self.render(self.details_template, model=email, rendered=rendered, render_error=error,
                           template_label=TEMPLATE_LABELS.get(email.template, email.template),
                           return_url=self.get_url(".index_view"))

    @expose("/<int:email_id>/apercu")
    def preview_html(self, email_id: int):
        """The HTML part alone, for a sandboxed frame: no script, no form, no external load."""
        email = db.session.get(OutboxEmail, email_id) or abort(404)
        rendered, error = _rendered_preview(email)
        body = rendered.html if rendered else Markup("<p>{}</p>").format(error)
        return body, 200, {"Content-Type": "text/html; charset=utf-8",
                           "Content-Security-Policy": PREVIEW_POLICY,
                           "X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "no-referrer"}

    @expose("/<int:email_id>/renvoyer", methods=("POST",))
    def retry(self, email_id: int):
        """Queue a failed email again."""
        form = FlaskForm()
        if form.validate_on_submit():
            with transaction() as outcome:
                outbox.retry_failed(email_id, actor=acting_user())
            if outcome.ok:
                flash(_("L'email est remis en file d'envoi : il partira au prochain passage."), "success")
        return redirect(self.get_url(".details_view", id=email_id))


# --- Audit trail ------------------------------------------------------------------------------


def _audit_organisation_cell(view, context, model, name) -> Markup | str:
    if model.organisation_id is None:
        return ""
    name = getattr(model, "organisation_name", None) or db.session.scalar(
        select(Organisation.name).where(Organisation.id == model.organisation_id))
    url = url_for("organisation.page", organisation_id=model.organisation_id, tab="historique")
    return Markup('<a href="{}">{}</a>').format(url, name)


def _audit_details_cell(view, context, model, name) -> Markup:
    """The raw event (action code, object, details) in a closed « détails » disclosure."""
    disclosure = get_template_attribute("admin/_audit_event.html", "raw_details")
    return disclosure(model, audit_sentences.action_label(model.action))


def _audit_sentence_cell(view, context, model, name) -> str:
    sentence = getattr(model, "sentence", None)  # set for a page of the list by get_list
    return sentence if sentence is not None else audit_sentences.describe_all([model])[model.id]


class AuditEventView(SecureModelView):
    """The audit trail, read-only: each event as a sentence (portal/audit_sentences.py), its raw
    details a click away."""

    can_create = False
    can_edit = False
    column_list = ("created_at", "sentence", "organisation", "details", "ip")
    column_details_list = ("created_at", "sentence", "actor", "action", "object", "organisation", "details",
                           "ip")
    column_select_related_list = (AuditEvent.actor,)
    column_sortable_list = ("created_at",)
    column_default_sort = ("id", True)
    column_filters = (
        FilterEqual(AuditEvent.action, _l("Action"), options=list(audit_sentences.ACTION_LABELS.items())),
        OrganisationNameFilter(AuditEvent.organisation_id, _l("Organisation")),
        IntEqualFilter(AuditEvent.organisation_id, _l("N° d'organisation")),
    )
    column_labels = {"created_at": _l("Date"), "sentence": _l("Événement"), "actor": _l("Auteur"),
                     "action": _l("Action"), "object": _l("Objet"), "organisation": _l("Organisation"),
                     "details": _l("Détails"), "ip": _l("Adresse IP")}
    column_formatters = {
        "created_at": date_cell, "organisation": _audit_organisation_cell, "details": _audit_details_cell,
        "sentence": _audit_sentence_cell,
        "actor": lambda view, context, model, name: model.actor.full_name if model.actor else _("Système"),
        "action": lambda view, context, model, name: audit_sentences.action_label(model.action),
        "object": lambda view, context, model, name: f"{model.object_type} #{model.object_id}",
    }

    def get_list(self, *args, **kwargs):
        count, events = super().get_list(*args, **kwargs)
        # AuditEvent has no relationship to Organisation: fetch the page's names in one query.
        ids = {event.organisation_id for event in events if event.organisation_id is not None}
        names = dict(db.session.execute(select(Organisation.id, Organisation.name)
                                        .where(Organisation.id.in_(ids))).all()) if ids else {}
        sentences = audit_sentences.describe_all(events)
        for event in events:
            event.organisation_name = names.get(event.organisation_id)
            event.sentence = sentences[event.id]
        return count, events


# --- Seller settings --------------------------------------------------------------------------


def _upper_compact(value):
    return re.sub(r"\s+", "", value).upper() if isinstance(value, str) else value


IBAN_PATTERN = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$")


def _iban_checksum(form, field) -> None:
    """ISO 13616 check digits (mod 97), once the shape is right."""
    iban = field.data or ""
    if not IBAN_PATTERN.match(iban):
        return
    if int("".join(str(int(char, 36)) for char in iban[4:] + iban[:4])) % 97 != 1:
        raise ValidationError(_l("IBAN invalide : sa clé de contrôle ne correspond pas."))


def _text(label_text, *, required: bool = False, length: int, **kwargs):
    validators = [DataRequired(message=_l("Ce champ est obligatoire sur les factures."))] if required else [
        Optional()]
    validators.append(Length(max=length, message=_l("%(max)d caractères au plus.")))
    return StringField(label_text, filters=[strip], validators=validators + kwargs.pop("extra", []),
                       **kwargs)


class SellerSettingsForm(PortalForm):
    company_name = _text(_l("Raison sociale"), required=True, length=200)
    legal_form = _text(_l("Forme juridique"), required=True, length=50)
    share_capital = _text(_l("Capital social"), required=True, length=50,
                          description=_l("Par exemple « 10 000 € »."))
    address_line1 = _text(_l("Adresse"), required=True, length=200)
    address_line2 = _text(_l("Complément d'adresse"), length=200)
    postal_code = _text(_l("Code postal"), required=True, length=10)
    city = _text(_l("Ville"), required=True, length=100)
    country = StringField(_l("Pays (code ISO)"), default="FR", filters=[_upper_compact], validators=[
        Regexp(r"^[A-Z]{2}$", message=_l("Indiquez le code pays à deux lettres, par exemple FR."))])
    siren = StringField(_l("SIREN"), filters=[_upper_compact], validators=[
        DataRequired(message=_l("Ce champ est obligatoire sur les factures.")),
        Regexp(r"^\d{9}$", message=_l("Le SIREN compte 9 chiffres."))])
    rcs_city = _text(_l("Ville du RCS"), required=True, length=100)
    vat_number = StringField(_l("N° de TVA intracommunautaire"), filters=[_upper_compact], validators=[
        DataRequired(message=_l("Ce champ est obligatoire sur les factures.")),
        Regexp(r"^[A-Z]{2}[0-9A-Z]{2,13}$",
               message=_l("Numéro de TVA invalide, par exemple FR32123456789."))])
    email = EmailField(_l("Email de contact"), filters=[strip], validators=[
        Optional(), email_syntax])
    phone = _text(_l("Téléphone"), length=30)
    iban = StringField(_l("IBAN"), filters=[_upper_compact], validators=[
        Optional(), Regexp(IBAN_PATTERN, message=_l("IBAN invalide.")), _iban_checksum])
    bic = StringField(_l("BIC"), filters=[_upper_compact], validators=[
        Optional(), Regexp(r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$",
                           message=_l("BIC invalide (8 ou 11 caractères)."))])
    early_payment_discount = _text(_l("Escompte pour paiement anticipé"), length=200, default="néant")
    late_penalty_rate = _text(_l("Pénalités de retard"), length=200,
                              default="trois fois le taux d'intérêt légal")
    operation_category = SelectField(_l("Catégorie des opérations"), default="services",
                                     choices=[SelectChoice(value, text) for value, text
                                              in documents.OPERATION_CATEGORIES.items()],
                                     description=_l("La nature proposée pour un nouveau produit. Chaque "
                                                    "facture déduit sa catégorie de ses lignes (biens, "
                                                    "services ou mixte)."))
    vat_on_debits = BooleanField(_l("Option pour le paiement de la TVA d'après les débits"), description=_l(
        "Cochée, chaque facture émise porte la mention et le code de TVA exigible à la facturation "
        "(Factur-X) ; les factures déjà émises ne changent pas."))
    quote_validity_days = IntegerField(_l("Validité des devis (jours)"), default=30, validators=[
        InputRequired(message=_l("Indiquez la durée de validité des devis.")),
        NumberRange(min=1, max=365, message=_l("La validité doit être comprise entre 1 et 365 jours."))])


class SellerSettingsView(AdminOnly, SecureView):
    """The seller's legal identity and mentions, printed on every quote and invoice (and the IBAN
    clients pay to): administrators only."""

    @expose("/", methods=("GET", "POST"))
    def index(self):
        # Never saved yet: the form shows its defaults (FR, 30 days…).
        form = SellerSettingsForm(obj=db.session.get(SellerSettings, 1))
        if form.validate_on_submit():
            values = {name: "" if value is None else value
                      for name, value in form.data.items() if name in accounts.SELLER_FIELDS}
            with transaction() as outcome:
                accounts.save_seller_settings(values=values, actor=acting_user(), ip=client_ip())
            if outcome.ok:
                flash(_("Paramètres vendeur enregistrés."), "success")
                return redirect(self.get_url(".index"))
        return self.render("admin/seller_settings.html", form=form,
                           )


def register(admin) -> None:
    """Add this module's views to the back office."""
    category = _l("Administration")
    admin.add_view(ClientUserView(User, name=_l("Utilisateurs clients"), endpoint="client_users",
                                  url="/admin/utilisateurs", category=category))
    admin.add_view(OutboxEmailView(OutboxEmail, name=_l("Emails"), endpoint="emails",
                                   url="/admin/emails", category=category))
    admin.add_view(AuditEventView(AuditEvent, name=_l("Journal d'audit"), endpoint="audit",
                                  url="/admin/journal", category=category))
    admin.add_view(SellerSettingsView(name=_l("Paramètres vendeur"), endpoint="seller_settings",
                                      url="/admin/parametres-vendeur", category=category))
