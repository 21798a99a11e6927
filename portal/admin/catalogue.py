"""The catalogue: products (prices typed in euros) and the CGV versions (drafted, then published by
an administrator; the sales role reads them)."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import BooleanEqualFilter
from flask_admin.model.template import EditRowAction, EndpointLinkRowAction
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import defer
from wtforms import BooleanField, IntegerField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, ValidationError

from .. import audit, billing, quotes
from ..exceptions import TermsPublished
from ..extensions import db
from ..forms import EuroField
from ..i18n import lazy_gettext as _l
from ..labels import french_date, vat_rate
from ..models import Product, SupplyKind, TermsVersion
from ..seller import default_supply_kind
from ..transaction import transaction
from .base import (
    ConfirmForm,
    PortalForm,
    SecureModelView,
    acting_user,
    badge,
    client_ip,
    date_cell,
    for_admins,
    is_admin,
    money_cell,
    strip,
    vat_cell,
)

MAX_CREDITS_PER_UNIT = 1_000_000

# --- Products ---------------------------------------------------------------------------------


class ProductForm(PortalForm):
    sku = StringField(_l("Référence (SKU)"), filters=[strip], validators=[
        DataRequired(message=_l("Indiquez la référence du produit.")),
        Length(max=50, message=_l("La référence fait 50 caractères au plus."))])
    name = StringField(_l("Nom"), filters=[strip], validators=[
        DataRequired(message=_l("Indiquez le nom du produit.")),
        Length(max=200, message=_l("Le nom fait 200 caractères au plus."))])
    description = TextAreaField(_l("Description"), filters=[strip])
    unit_price_cents = EuroField(_l("Prix unitaire HT (€)"), validators=[
        InputRequired(message=_l("Indiquez le prix unitaire HT, en euros."))])
    vat_rate_bp = SelectField(_l("Taux de TVA"), coerce=int, default=2000,
                              choices=[SelectChoice(rate, vat_rate(rate)) for rate in billing.VAT_RATES_BP])
    credits_per_unit = IntegerField(_l("Crédits par unité"), default=0, validators=[
        InputRequired(message=_l("Indiquez le nombre de crédits par unité (0 si aucun).")),
        NumberRange(min=0, max=MAX_CREDITS_PER_UNIT,
                    message=_l("Le nombre de crédits par unité doit être compris entre 0 et 1 000 000."))])
    published = BooleanField(_l("Publié (proposé aux clients dans leurs demandes de devis)"), default=True)
    supply_kind = SelectField(
        _l("Nature"), default=lambda: default_supply_kind().value,  # the seller's category
        choices=[SelectChoice(SupplyKind.SERVICES.value, _l("Prestation de services")),
                 SelectChoice(SupplyKind.GOODS.value, _l("Livraison de biens"))],
        coerce=SupplyKind,
        description=_l("Chaque ligne de devis garde la nature de son produit ; la facture en déduit "
                       "sa catégorie d'opération (biens, services ou mixte)."))


SUPPLY_KIND_LABELS = {SupplyKind.GOODS: _l("Livraison de biens"),
                      SupplyKind.SERVICES: _l("Prestation de services")}


def _supply_kind_cell(view, context, model, name) -> str:
    return str(SUPPLY_KIND_LABELS[model.supply_kind])


def _published_cell(view, context, model, name) -> Markup:
    if model.published:
        return badge("published", _("Publié"))
    return badge("unpublished", _("Non publié"))


class ProductView(SecureModelView):
    """Products: created and edited here, never deleted (quotes and invoices refer to them)."""

    can_create = True
    can_edit = True
    form = ProductForm
    column_list = ("sku", "name", "unit_price_cents", "vat_rate_bp", "credits_per_unit", "supply_kind",
                   "published")
    column_details_list = column_list + ("description",)
    column_default_sort = "sku"
    column_sortable_list = ("sku", "name", "unit_price_cents")
    column_searchable_list = ("sku", "name")
    column_filters = (BooleanEqualFilter(Product.published, _l("Publié")),)
    column_labels = {
        "sku": _l("Référence"), "name": _l("Nom"), "description": _l("Description"),
        "unit_price_cents": _l("Prix unitaire HT"), "vat_rate_bp": _l("TVA"),
        "credits_per_unit": _l("Crédits par unité"), "published": _l("Publication"),
        "supply_kind": _l("Nature"),
    }
    column_formatters = {"unit_price_cents": money_cell, "vat_rate_bp": vat_cell,
                         "published": _published_cell, "supply_kind": _supply_kind_cell}

    def on_model_change(self, form, model: Product, is_created: bool) -> None:
        with db.session.no_autoflush:
            taken = db.session.scalar(select(Product.id).where(Product.sku == model.sku,
                                                               Product.id != model.id))
        if taken is not None:
            raise ValidationError(_("La référence %(sku)s est déjà utilisée par un autre produit.",
                                    sku=model.sku))
        model.description = model.description or None
        audit.record("product.created" if is_created else "product.updated", model,
                     actor=acting_user(), ip=client_ip(), sku=model.sku,
                     unit_price_cents=model.unit_price_cents, vat_rate_bp=model.vat_rate_bp,
                     credits_per_unit=model.credits_per_unit, published=model.published,
                     supply_kind=model.supply_kind)


# --- CGV --------------------------------------------------------------------------------------


class TermsForm(PortalForm):
    version_label = StringField(
        _l("Libellé de version"), filters=[strip],
        description=_l("Par exemple « 2026-01 » : il figure sur chaque décision."),
        validators=[DataRequired(message=_l("Indiquez un libellé de version.")),
                    Length(max=50, message=_l("Le libellé fait 50 caractères au plus."))])
    body = TextAreaField(_l("Texte des Conditions Générales de Vente"), render_kw={"rows": 20},
                         description=_l("Le brouillon peut être complété plus tard ; "
                                        "une fois publié, le texte ne peut plus être modifié."))


class PublishTermsForm(ConfirmForm):
    confirm = BooleanField(_l("Je confirme la publication : cette version s'appliquera à toutes les "
                              "décisions et ne pourra plus être modifiée."),
                           validators=[DataRequired(message=_l("Cochez la case de confirmation pour "
                                                               "publier les CGV."))])


def _terms_state_cell(view, context, model, name) -> Markup:
    if model.published_at is None:
        return badge("draft", _("Brouillon"))
    if context is not None and context.get("current_terms_id") == model.id:
        return badge("current", _("En vigueur"))
    return badge("superseded", _("Publiée, remplacée"))


def _terms_body_cell(view, context, model, name) -> Markup:
    return Markup('<div class="cgv-body">{}</div>').format(model.body or "")


class _DraftOnly:
    """A row action shown for drafts only: a published version is frozen."""

    def render(self, context, row_id, row):
        return "" if row.published_at is not None else super().render(context, row_id, row)


class _EditDraftAction(_DraftOnly, EditRowAction):
    pass


class _PublishDraftAction(_DraftOnly, EndpointLinkRowAction):
    pass


class TermsView(SecureModelView):
    """CGV versions: a draft is written and may be edited; publishing it freezes it and makes it
    the version in force. Administrators write and publish; the sales role only reads."""

    admin_only_views = frozenset({"create_view", "edit_view", "publish"})
    can_create = for_admins()
    can_edit = for_admins()
    form = TermsForm
    details_template = "admin/terms_details.html"
    column_list = ("version_label", "state", "published_at", "created_at")
    column_details_list = ("version_label", "state", "published_at", "sha256", "created_at", "body")
    column_sortable_list = ("version_label", "published_at", "created_at")
    column_default_sort = ("id", True)
    column_labels = {
        "version_label": _l("Version"), "state": _l("État"), "published_at": _l("Publiée le"),
        "created_at": _l("Rédigée le"), "sha256": _l("Empreinte SHA-256"), "body": _l("Texte"),
    }
    column_formatters = {"state": _terms_state_cell, "published_at": date_cell,
                         "created_at": date_cell, "body": _terms_body_cell}

    def get_query(self):
        return super().get_query().options(defer(TermsVersion.body))  # the list never shows it

    def get_list_row_actions(self):
        actions = [action for action in super().get_list_row_actions()
                   if not isinstance(action, EditRowAction)]
        if not is_admin():
            return actions
        return actions + [
            _EditDraftAction(),
            _PublishDraftAction("fa fa-check", ".publish", title=_l("Publier…"), id_arg="terms_id"),
        ]

    def render(self, template, **kwargs):
        # The state column needs the version in force: one query per page, not one per row.
        current = quotes.current_terms()
        kwargs.setdefault("current_terms_id", current.id if current else None)
        return super().render(template, **kwargs)

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self):
        terms = self.get_one(request.args.get("id"))
        if terms is not None and terms.published_at is not None:
            flash(str(TermsPublished()), "error")
            return redirect(self.get_url(".details_view", id=terms.id))
        return super().edit_view()

    def on_model_change(self, form, model: TermsVersion, is_created: bool) -> None:
        if model.published_at is not None:
            raise ValidationError(str(TermsPublished()))
        with db.session.no_autoflush:
            taken = db.session.scalar(select(TermsVersion.id).where(
                TermsVersion.version_label == model.version_label, TermsVersion.id != model.id))
        if taken is not None:
            raise ValidationError(_("La version « %(label)s » existe déjà : choisissez un autre libellé.",
                                    label=model.version_label))
        model.body = model.body or ""
        audit.record("terms.created" if is_created else "terms.updated", model, actor=acting_user(),
                     ip=client_ip(), version=model.version_label)

    @expose("/<int:terms_id>/publier", methods=("GET", "POST"))
    def publish(self, terms_id: int):
        """Publish a draft after an explicit confirmation: it becomes the CGV in force."""
        terms = self.get_one(terms_id)
        if terms is None:
            flash(_("Cette version des CGV n'existe pas."), "error")
            return redirect(self.get_url(".index_view"))
        form = PublishTermsForm()
        if form.validate_on_submit():
            with transaction() as outcome:
                quotes.publish_terms(terms, actor=acting_user(), ip=client_ip())
            if outcome.ok:
                flash(_("CGV %(label)s publiées : elles s'appliquent désormais à chaque décision.",
                        label=terms.version_label), "success")
                return redirect(url_for(".details_view", id=terms.id))
        return self.render("admin/terms_publish.html", terms=terms, form=form,
                           published_on=french_date(terms.published_at))


def register(admin) -> None:
    """Add this module's views to the back office."""
    category = _l("Catalogue")
    admin.add_view(ProductView(Product, name=_l("Produits"), endpoint="products",
                               url="/admin/produits", category=category))
    admin.add_view(TermsView(TermsVersion, name=_l("CGV"), endpoint="terms", url="/admin/cgv",
                             category=category))
