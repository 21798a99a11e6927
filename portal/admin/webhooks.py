"""Administration, administrators only: the platform's webhook endpoints (« Webhooks »). An endpoint
is created with its event types, its signing secret shown once on the page that answers the
creation (or the rotation), and never again; its page lists its deliveries, newest first, with
each one's attempts, and sends a test event or a delivery again. Every change goes through
`webhook_endpoints` and is audited."""

from __future__ import annotations

from flask import abort, flash, redirect, request
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, selectinload
from wtforms import BooleanField, SelectChoice, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from .. import events, webhook_endpoints
from ..exceptions import InvalidInput
from ..extensions import db
from ..forms import int_arg
from ..i18n import lazy_gettext as _l
from ..labels import label
from ..models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, utcnow
from ..read_only import read_only
from ..transaction import transaction
from .base import (
    AdminOnly,
    ConfirmForm,
    PortalForm,
    SecureModelView,
    acting_user,
    badge,
    client_ip,
    date_cell,
    strip,
)

DELIVERIES_PAGE_SIZE = 20
# Shown on the page; the worker already keeps only the first characters of an answer.
EXCERPT_SHOWN = 500
# The badge's colour of each status; its words are labels.py's, as every status's.
DELIVERY_BADGE = {DeliveryStatus.PENDING: "info", DeliveryStatus.DELIVERED: "success",
                  DeliveryStatus.FAILED: "danger"}


def _checked_url(form, field) -> None:
    """The domain's own check, shown beside the field."""
    try:
        field.data = webhook_endpoints.check_url(field.data)
    except InvalidInput as error:
        raise ValidationError(str(error)) from None


def _one_type_at_least(form, field) -> None:
    # Not DataRequired: its `required` flag would mark every checkbox as required.
    if not field.data:
        raise ValidationError(_l("Choisissez au moins un type d'événement."))


def _event_types_field() -> SelectMultipleField:
    return SelectMultipleField(
        _l("Types d'événements"),
        choices=[SelectChoice(event_type, text) for event_type, text in events.EVENT_TYPES.items()],
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(), validators=[_one_type_at_least])


class EndpointEditForm(PortalForm):
    description = StringField(_l("Description"), filters=[strip],
                              description=_l("Pour le reconnaître : la plateforme ou le service qui reçoit."),
                              validators=[Length(max=webhook_endpoints.MAX_DESCRIPTION_LENGTH,
                                                 message=_l("La description fait 200 caractères au plus."))])
    event_types = _event_types_field()
    enabled = BooleanField(_l("Activé : les nouveaux événements lui sont envoyés"), default=True)


class EndpointCreateForm(EndpointEditForm):
    url = StringField(_l("Adresse (URL)"), filters=[strip],
                      description=_l("L'adresse HTTPS de la plateforme qui reçoit les événements, en POST."),
                      validators=[DataRequired(message=_l("Indiquez l'adresse qui recevra les événements.")),
                                  _checked_url])


class RotateSecretForm(ConfirmForm):
    confirm = BooleanField(
        _l("Je confirme : un nouveau secret signe désormais les envois ; l'ancien reste valable 24 heures, "
           "le temps de mettre la plateforme à jour."),
        validators=[DataRequired(message=_l("Cochez la case de confirmation pour régénérer le secret."))])


class ResendFailedForm(ConfirmForm):
    confirm = BooleanField(
        _l("Je confirme : les envois en échec repartent dans la file, avec de nouvelles tentatives."),
        validators=[DataRequired(message=_l("Cochez la case de confirmation pour renvoyer les envois."))])


def _url_cell(view, context, model, name) -> Markup:
    return Markup('<a href="{}"><code>{}</code></a>').format(view.get_url(".details_view", id=model.id),
                                                             model.url)


def _types_cell(view, context, model, name) -> Markup | str:
    types = model.event_type_list
    if set(types) >= events.EVENT_TYPES.keys():
        return _("Tous (%(count)d)", count=len(types))
    return Markup(" ").join(Markup("<code>{}</code>").format(event_type) for event_type in types)


def _enabled_cell(view, context, model, name) -> Markup:
    return badge("active", _("Activé")) if model.enabled else badge("inactive", _("Désactivé"))


def delivery_status(status: DeliveryStatus) -> Markup:
    """A delivery's status as a badge, in French."""
    return badge(DELIVERY_BADGE[status], label(status))


def delivery_counts(endpoint: WebhookEndpoint) -> dict[DeliveryStatus, int]:
    """How many deliveries of `endpoint` are in each status (one query)."""
    return dict(db.session.execute(
        select(WebhookDelivery.status, func.count(WebhookDelivery.id))
        .where(WebhookDelivery.endpoint_id == endpoint.id).group_by(WebhookDelivery.status)).all())


class WebhookEndpointView(AdminOnly, SecureModelView):
    """The endpoints: listed, created (secret shown once), changed, their secret rotated; each one's
    page with its deliveries and their attempts. Never deleted: disabled instead (its log stays)."""

    can_create = True
    can_edit = True
    column_list = ("url", "description", "event_types", "enabled", "created_at")
    column_sortable_list = ("url", "created_at")
    column_default_sort = ("id", True)
    column_searchable_list = ("url", "description")
    column_labels = {"url": _l("Adresse"), "description": _l("Description"),
                     "event_types": _l("Types d'événements"), "enabled": _l("État"),
                     "created_at": _l("Créé le")}
    column_formatters = {"url": _url_cell, "event_types": _types_cell, "enabled": _enabled_cell,
                         "created_at": date_cell}

    def get_empty_list_message(self) -> str:
        return _("Aucun point de réception. Cliquez sur « Créer » et indiquez l'adresse où la plateforme "
                 "recevra ses événements (devis acceptés, factures payées, crédits…).")

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        """Create an endpoint; its secret is in this response only (no redirect, no flash)."""
        form = EndpointCreateForm()
        if form.validate_on_submit():
            with transaction() as outcome:
                endpoint, secret = webhook_endpoints.create_endpoint(
                    url=form.url.data, event_types=form.event_types.data, description=form.description.data,
                    enabled=form.enabled.data, actor=acting_user(), ip=client_ip())
            if outcome.ok:
                return self._secret_page(endpoint, secret, rotated=False)
        return self.render("admin/webhook_form.html", form=form, endpoint=None)

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self):
        """Change an endpoint's event types, description and enabled state."""
        endpoint = self.get_one(request.args.get("id")) or abort(404)
        form = EndpointEditForm(data={"description": endpoint.description, "enabled": endpoint.enabled,
                                      "event_types": endpoint.event_type_list})
        if form.validate_on_submit():
            with transaction() as outcome:
                webhook_endpoints.update_endpoint(
                    endpoint, event_types=form.event_types.data, description=form.description.data,
                    enabled=form.enabled.data, actor=acting_user(), ip=client_ip())
            if outcome.ok:
                flash(_("Point de réception enregistré."), "success")
                return redirect(self.get_url(".details_view", id=endpoint.id))
        return self.render("admin/webhook_form.html", form=form, endpoint=endpoint)

    @expose("/details/")
    @read_only
    def details_view(self):
        """An endpoint and its deliveries, newest first (`?avant=<delivery id>` for older ones)."""
        endpoint = self.get_one(request.args.get("id")) or abort(404)
        statement = (select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
                     .options(joinedload(WebhookDelivery.event), selectinload(WebhookDelivery.attempt_log)))
        before = int_arg("avant")
        if before is not None:
            statement = statement.where(WebhookDelivery.id < before)
        deliveries = db.session.scalars(statement.order_by(WebhookDelivery.id.desc())
                                        .limit(DELIVERIES_PAGE_SIZE)).all()
        counts = delivery_counts(endpoint)
        return self.render("admin/webhook_details.html", endpoint=endpoint, deliveries=deliveries,
                           counts=counts, page_size=DELIVERIES_PAGE_SIZE, before=before, now=utcnow(),
                           event_types=events.EVENT_TYPES, status_badge=delivery_status,
                           excerpt_shown=EXCERPT_SHOWN, statuses=DeliveryStatus)

    @expose("/secret/", methods=("GET", "POST"))
    def rotate(self):
        """Rotate the signing secret after a confirmation; the new one is in this response only."""
        endpoint = self.get_one(request.args.get("id")) or abort(404)
        form = RotateSecretForm()
        if form.validate_on_submit():
            with transaction() as outcome:
                secret = webhook_endpoints.rotate_secret(endpoint, actor=acting_user(), ip=client_ip())
            if outcome.ok:
                return self._secret_page(endpoint, secret, rotated=True)
        return self.render("admin/webhook_rotate.html", endpoint=endpoint, form=form)

    @expose("/test/", methods=("POST",))
    def send_test(self):
        """« Envoyer un événement de test »: one event, one delivery to this endpoint."""
        endpoint = self.get_one(request.args.get("id")) or abort(404)
        if FlaskForm().validate_on_submit():
            with transaction() as outcome:
                event = webhook_endpoints.send_test_event(endpoint, actor=acting_user(), ip=client_ip())
            if outcome.ok:
                flash(_("Événement de test %(event)s mis en file : il part au prochain passage de l'envoi.",
                        event=event.public_id), "success")
        return redirect(self.get_url(".details_view", id=endpoint.id))

    @expose("/renvoyer/", methods=("POST",))
    def resend(self):
        """« Renvoyer » one delivery (its event, unchanged) to its endpoint."""
        delivery_id = int_arg("id")
        delivery = (db.session.get(WebhookDelivery, delivery_id) if delivery_id else None) or abort(404)
        if FlaskForm().validate_on_submit():
            with transaction() as outcome:
                webhook_endpoints.resend_delivery(delivery, actor=acting_user(), ip=client_ip())
            if outcome.ok:
                flash(_("Envoi remis en file : il part au prochain passage."), "success")
        return redirect(self.get_url(".details_view", id=delivery.endpoint_id))

    @expose("/renvoyer-echecs/", methods=("GET", "POST"))
    def resend_failed(self):
        """« Renvoyer tous les envois en échec » after a confirmation."""
        endpoint = self.get_one(request.args.get("id")) or abort(404)
        form = ResendFailedForm()
        if form.validate_on_submit():
            with transaction() as outcome:
                count = webhook_endpoints.resend_failed(endpoint, actor=acting_user(), ip=client_ip())
            if outcome.ok:
                flash(ngettext("%(num)d envoi remis en file.", "%(num)d envois remis en file.", count),
                      "success")
                return redirect(self.get_url(".details_view", id=endpoint.id))
        return self.render("admin/webhook_resend_failed.html", endpoint=endpoint, form=form,
                           failed=delivery_counts(endpoint).get(DeliveryStatus.FAILED, 0))

    def _secret_page(self, endpoint: WebhookEndpoint, secret: str, *, rotated: bool):
        return self.render("admin/webhook_secret.html", endpoint=endpoint, secret=secret, rotated=rotated,
                           previous_valid_until=endpoint.previous_secret_expires_at)


def register(admin) -> None:
    """Add this module's view to the back office."""
    admin.add_view(WebhookEndpointView(WebhookEndpoint, name=_l("Webhooks"), endpoint="webhook_endpoints",
                                       url="/admin/webhooks", category=_l("Administration")))
