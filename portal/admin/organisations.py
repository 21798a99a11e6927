"""The organisation page with its tabs, and the organisations list (legal identity, billing)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from babel import Locale
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from wtforms import BooleanField, HiddenField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional, Regexp, ValidationError

from .. import accounts, audit_sentences, credits, validation
from ..exceptions import ExternalIdAlreadyUsed, InsufficientCredits, InvalidInput, ZeroAdjustment
from ..extensions import db
from ..forms import IntegerInput, int_arg
from ..i18n import lazy_gettext as _l
from ..labels import credits_text, label
from ..models import AuditEvent, BillingMode, CreditEntry, Invoice, Organisation, Quote, QuoteStatus, User
from ..read_only import read_only
from ..transaction import transaction
from .base import ChoiceFilter, PortalForm, SecureModelView, SecureView, acting_user, client_ip, strip

PAGE_SIZE = 50
MAX_ADJUSTMENT = 1_000_000  # credits added or removed at once, as through the API
TABS = {
    "informations": _l("Informations"),
    "utilisateurs": _l("Utilisateurs"),
    "devis": _l("Devis"),
    "factures": _l("Factures"),
    "credits": _l("Crédits"),
    "historique": _l("Historique"),
}


class OrganisationPageView(SecureView):
    """One organisation, tab by tab; lists are keyset-paginated (`?avant=<id>`)."""

    def is_visible(self) -> bool:
        return False

    @expose("/")
    def index(self):
        return redirect(url_for("organisations.index_view"))

    @expose("/<int:organisation_id>/")
    @expose("/<int:organisation_id>/<tab>")
    @read_only
    def page(self, organisation_id: int, tab: str = "informations"):
        organisation = db.session.get(Organisation, organisation_id) or abort(404)
        if tab not in TABS:
            abort(404)
        return self._render_tab(organisation, tab)

    def _render_tab(self, organisation: Organisation, tab: str, **extra):
        content = getattr(self, f"_tab_{tab}")(organisation, int_arg("avant"))
        return self.render("admin/organisation.html", organisation=organisation, tabs=TABS, tab=tab,
                           page_size=PAGE_SIZE, **content | extra)

    @expose("/<int:organisation_id>/credits/ajustement", methods=("GET", "POST"))
    def adjust_credits(self, organisation_id: int):
        """Adjust the credit balance in two steps: the amount and reason, then a confirmation
        showing the balance before and after; shown again if the balance moved in between."""
        organisation = db.session.get(Organisation, organisation_id) or abort(404)
        credits_tab = url_for(".page", organisation_id=organisation.id, tab="credits")
        if request.method == "GET":
            return redirect(credits_tab)
        form = CreditAdjustmentForm()
        if not form.validate_on_submit():
            return self._render_tab(organisation, "credits", adjustment_form=form)
        balance = credits.credit_balance(organisation.id)
        if form.confirm.data and form.balance_seen.data == str(balance):
            with transaction() as outcome:
                credits.adjust_credits(organisation, form.amount.data, actor=acting_user(),
                                       reason=form.reason.data, ip=client_ip())
            if outcome.ok:
                flash(_("Ajustement de %(amount)s enregistré : le solde est de %(balance)s.",
                        amount=credits_text(form.amount.data, signed=True),
                        balance=credits_text(balance + form.amount.data)), "success")
                return redirect(credits_tab)
        return self._confirm_adjustment(organisation, form, balance)

    def _confirm_adjustment(self, organisation: Organisation, form: CreditAdjustmentForm, balance: int):
        after = balance + form.amount.data
        moved = form.confirm.data and form.balance_seen.data != str(balance)
        form.balance_seen.data = str(balance)
        refusal = str(InsufficientCredits(balance=balance)) if after < 0 else None
        return self.render("admin/credit_adjustment_confirm.html", organisation=organisation, form=form,
                           balance=balance, after=after, moved=moved, refusal=refusal)

    def _tab_informations(self, organisation: Organisation, before: int | None) -> dict:
        changed_by = (db.session.get(User, organisation.staff_validation_changed_by_id)
                      if organisation.staff_validation_changed_by_id else None)
        return {"mandate_changed_by": changed_by}

    def _tab_utilisateurs(self, organisation: Organisation, before: int | None) -> dict:
        users = db.session.scalars(select(User).where(User.organisation_id == organisation.id)
                                   .order_by(User.full_name)).all()
        return {"users": users}

    def _tab_devis(self, organisation: Organisation, before: int | None) -> dict:
        statement = (select(Quote).where(Quote.organisation_id == organisation.id)
                     .options(joinedload(Quote.recipient)))
        return {"quotes": _keyset(statement, Quote.id, before), "statuses": QuoteStatus}

    def _tab_factures(self, organisation: Organisation, before: int | None) -> dict:
        statement = select(Invoice).where(Invoice.organisation_id == organisation.id)
        return {"invoices": _keyset(statement, Invoice.id, before)}

    def _tab_credits(self, organisation: Organisation, before: int | None) -> dict:
        statement = (select(CreditEntry).where(CreditEntry.organisation_id == organisation.id)
                     .options(joinedload(CreditEntry.quote), joinedload(CreditEntry.credit_note),
                              joinedload(CreditEntry.api_key), joinedload(CreditEntry.actor)))
        return {"balance": credits.credit_balance(organisation.id),
                "entries": _keyset(statement, CreditEntry.id, before),
                "adjustment_form": CreditAdjustmentForm()}

    def _tab_historique(self, organisation: Organisation, before: int | None) -> dict:
        statement = (select(AuditEvent).where(AuditEvent.organisation_id == organisation.id)
                     .options(joinedload(AuditEvent.actor)))
        events = _keyset(statement, AuditEvent.id, before)
        return {"events": events, "sentences": audit_sentences.describe_all(events),
                "action_label": audit_sentences.action_label}


def _keyset(statement, key, before: int | None) -> list:
    """The next page of rows, newest first, strictly before the id `before`."""
    if before is not None:
        statement = statement.where(key < before)
    return list(db.session.scalars(statement.order_by(key.desc()).limit(PAGE_SIZE)).unique())


# --- Credit adjustments by staff ------------------------------------------------------------------


def _not_zero(form, field) -> None:
    if field.data == 0:
        raise ValidationError(str(ZeroAdjustment()))


class CreditAdjustmentForm(PortalForm):
    """A signed number of credits and its reason; `confirm` is the second step's button, and
    `balance_seen` the balance that step showed."""

    amount = IntegerInput(
        _l("Crédits à ajouter (ou à retirer, précédés de « - »)"), minimum=-MAX_ADJUSTMENT,
        maximum=MAX_ADJUSTMENT, validators=[
            InputRequired(message=_l("Indiquez le nombre de crédits à ajouter ou retirer.")), _not_zero])
    reason = TextAreaField(_l("Motif"), filters=[strip], validators=[
        DataRequired(message=_l("Indiquez le motif de l'ajustement.")),
        Length(max=500, message=_l("%(max)d caractères au plus."))])
    balance_seen = HiddenField()
    confirm = BooleanField()  # the confirmation page's button (name="confirm")


# --- The organisation form: every identity field checked (portal.validation), nothing free-form --


def _checked(check: Callable[..., str], **related: str) -> Callable:
    """A field validator: `check(value, **{argument: other field's data})` stores its normalised
    value, or its French refusal is the field's error. Blank is left to Optional()."""

    def validator(form, field) -> None:
        others = {argument: form[name].data for argument, name in related.items()
                  if not form[name].errors}
        try:
            field.data = check(field.data, **others)
        except InvalidInput as error:
            raise ValidationError(str(error)) from None

    return validator


# The platform's own id of an organisation: no spaces nor markup (it is part of API paths).
EXTERNAL_ID = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$"


def _blank_to_none(value):
    return value.strip() or None if isinstance(value, str) else value


def _text(label_text, *, length: int, required: bool = False) -> StringField:
    presence = (DataRequired(message=_l("Ce champ est obligatoire.")) if required else Optional())
    return StringField(label_text, filters=[_blank_to_none], validators=[
        presence, Length(max=length, message=_l("%(max)d caractères au plus."))])


def _identity(label_text, check: Callable[..., str], **related: str) -> StringField:
    return StringField(label_text, filters=[_blank_to_none],
                       validators=[Optional(), _checked(check, **related)])


def _sort_key(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()


def _country_choices() -> list[SelectChoice]:
    """France first, then every ISO 3166-1 country by its French name."""
    names = Locale.parse("fr").territories
    others = sorted((code for code in validation.COUNTRY_CODES if code != "FR"),
                    key=lambda code: _sort_key(names.get(code, code)))
    return [SelectChoice(code, names.get(code, code)) for code in ["FR", *others]]


def _billing_mode(value):
    try:
        return BillingMode(value)
    except ValueError:
        return value  # refused by _known_billing_mode


def _known_billing_mode(form, field) -> None:
    if not isinstance(field.data, BillingMode):
        raise ValidationError(_l("Choisissez un mode de facturation de la liste."))


class OrganisationForm(PortalForm):
    """The legal identity and billing settings of an organisation, as printed on its invoices."""

    name = _text(_l("Raison sociale"), length=200, required=True)
    legal_form = _text(_l("Forme juridique"), length=50)
    siren = _identity(_l("SIREN"), validation.siren)
    siret = _identity(_l("SIRET"), validation.siret, siren_number="siren")
    vat_number = _identity(_l("N° de TVA intracommunautaire"), validation.vat_number,
                           siren_number="siren")
    address_line1 = _text(_l("Adresse"), length=200)
    address_line2 = _text(_l("Complément d'adresse"), length=200)
    country = SelectField(_l("Pays"), default="FR", choices=_country_choices(), validate_choice=False,
                          filters=[strip], validators=[_checked(validation.country)])
    postal_code = _identity(_l("Code postal"), validation.postal_code, country_code="country")
    city = _text(_l("Ville"), length=100)
    billing_email = _identity(_l("Email de facturation"), validation.email)
    billing_mode = SelectField(_l("Mode de facturation"), default=BillingMode.PER_ORDER.value,
                               choices=[SelectChoice(mode.value, label(mode)) for mode in BillingMode],
                               validate_choice=False, filters=[_billing_mode],
                               validators=[_known_billing_mode])
    payment_terms_days = IntegerInput(_l("Délai de paiement (jours)"), minimum=0, maximum=60, default=30,
                                      validators=[InputRequired(
                                          message=_l("Indiquez le délai de paiement, de 0 à 60 jours."))])
    external_id = StringField(
        _l("Identifiant externe (plateforme)"), filters=[_blank_to_none],
        description=_l("L'identifiant de l'organisation dans la plateforme, qui la retrouve ainsi par "
                       "l'API ; laissez vide si elle n'y a pas de compte."),
        validators=[Optional(), Length(max=100, message=_l("%(max)d caractères au plus.")),
                    Regexp(EXTERNAL_ID, message=_l("L'identifiant externe s'écrit en lettres sans accent, "
                                                   "chiffres et signes . _ - : / @ +, sans espace."))])


class OrganisationListView(SecureModelView):
    """Organisations: legal identity, billing mode and payment terms (the mandate is the client's)."""

    can_create = True
    can_edit = True
    column_list = ("name", "siren", "city", "billing_mode", "payment_terms_days",
                   "staff_validation_allowed", "external_id")
    column_labels = {
        "name": _l("Raison sociale"), "legal_form": _l("Forme juridique"), "siren": _l("SIREN"),
        "siret": _l("SIRET"), "vat_number": _l("N° de TVA intracommunautaire"),
        "address_line1": _l("Adresse"), "address_line2": _l("Complément d'adresse"),
        "postal_code": _l("Code postal"), "city": _l("Ville"), "country": _l("Pays"),
        "billing_email": _l("Email de facturation"), "billing_mode": _l("Mode de facturation"),
        "payment_terms_days": _l("Délai de paiement (jours)"),
        "staff_validation_allowed": _l("Validation pour le compte autorisée"),
        "external_id": _l("Identifiant externe"),
    }
    column_searchable_list = ()
    column_filters = (ChoiceFilter(Organisation.billing_mode, _l("Mode de facturation"), BillingMode),)
    column_default_sort = ("name", False)
    form = OrganisationForm
    column_formatters = {
        "name": lambda view, context, model, name: link_to_page(model),
        "billing_mode": lambda view, context, model, name: label(model.billing_mode),
    }

    def on_model_change(self, form, model: Organisation, is_created: bool) -> None:
        try:
            accounts.check_external_id_free(model)
        except ExternalIdAlreadyUsed as refusal:
            raise ValidationError(str(refusal)) from None

    def handle_view_exception(self, exc: Exception) -> bool:
        # Another organisation took the same id between the check above and the commit.
        if isinstance(exc, IntegrityError) and "external_id" in str(exc.orig):
            external_id = (request.form.get("external_id") or "").strip()
            flash(str(ExternalIdAlreadyUsed(external_id=external_id)), "error")
            return True
        return super().handle_view_exception(exc)


def link_to_page(organisation: Organisation) -> Markup:
    """The organisation's name, linked to its page (escaped)."""
    url = url_for("organisation.page", organisation_id=organisation.id)
    return Markup('<a href="{}">{}</a>').format(url, organisation.name)


def register(admin) -> None:
    admin.add_view(OrganisationListView(Organisation, name=_l("Organisations"), endpoint="organisations"))
    admin.add_view(OrganisationPageView(name=_l("Organisation"), endpoint="organisation",
                                        url="/admin/organisation"))
