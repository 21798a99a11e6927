"""The organisation page with its tabs, and the organisations list (legal identity, billing)."""

from __future__ import annotations

from flask import abort, redirect, request, url_for
from flask_admin import expose
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .. import billing
from ..extensions import db
from ..i18n import lazy_gettext as _l
from ..labels import label
from ..models import AuditEvent, BillingMode, CreditEntry, Invoice, Organisation, Quote, QuoteStatus, User
from .base import ChoiceFilter, SecureModelView, SecureView

PAGE_SIZE = 50
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
    def page(self, organisation_id: int, tab: str = "informations"):
        organisation = db.session.get(Organisation, organisation_id) or abort(404)
        if tab not in TABS:
            abort(404)
        before = request.args.get("avant", type=int)
        content = getattr(self, f"_tab_{tab}")(organisation, before)
        return self.render("admin/organisation.html", organisation=organisation, tabs=TABS, tab=tab,
                           page_size=PAGE_SIZE, **content)

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
                     .options(joinedload(CreditEntry.quote)))
        return {"balance": billing.credit_balance(organisation.id),
                "entries": _keyset(statement, CreditEntry.id, before)}

    def _tab_historique(self, organisation: Organisation, before: int | None) -> dict:
        statement = (select(AuditEvent).where(AuditEvent.organisation_id == organisation.id)
                     .options(joinedload(AuditEvent.actor)))
        return {"events": _keyset(statement, AuditEvent.id, before)}


def _keyset(statement, key, before: int | None) -> list:
    """The next page of rows, newest first, strictly before the id `before`."""
    if before is not None:
        statement = statement.where(key < before)
    return list(db.session.scalars(statement.order_by(key.desc()).limit(PAGE_SIZE)).unique())


class OrganisationListView(SecureModelView):
    """Organisations: legal identity, billing mode and payment terms (the mandate is the client's)."""

    can_create = True
    can_edit = True
    column_list = ("name", "siren", "city", "billing_mode", "payment_terms_days",
                   "staff_validation_allowed")
    column_labels = {
        "name": _l("Raison sociale"), "legal_form": _l("Forme juridique"), "siren": _l("SIREN"),
        "siret": _l("SIRET"), "vat_number": _l("N° de TVA intracommunautaire"),
        "address_line1": _l("Adresse"), "address_line2": _l("Complément d'adresse"),
        "postal_code": _l("Code postal"), "city": _l("Ville"), "country": _l("Pays"),
        "billing_email": _l("Email de facturation"), "billing_mode": _l("Mode de facturation"),
        "payment_terms_days": _l("Délai de paiement (jours)"),
        "staff_validation_allowed": _l("Validation pour le compte autorisée"),
    }
    column_searchable_list = ()
    column_filters = (ChoiceFilter(Organisation.billing_mode, _l("Mode de facturation"), BillingMode),)
    column_default_sort = ("name", False)
    form_columns = ("name", "legal_form", "siren", "siret", "vat_number", "address_line1",
                    "address_line2", "postal_code", "city", "country", "billing_email",
                    "billing_mode", "payment_terms_days")
    column_formatters = {
        "name": lambda view, context, model, name: link_to_page(model),
        "billing_mode": lambda view, context, model, name: label(model.billing_mode),
    }


def link_to_page(organisation: Organisation) -> Markup:
    """The organisation's name, linked to its page (escaped)."""
    url = url_for("organisation.page", organisation_id=organisation.id)
    return Markup('<a href="{}">{}</a>').format(url, organisation.name)


def register(admin) -> None:
    admin.add_view(OrganisationListView(Organisation, name=_l("Organisations"), endpoint="organisations"))
    admin.add_view(OrganisationPageView(name=_l("Organisation"), endpoint="organisation",
                                        url="/admin/organisation"))
