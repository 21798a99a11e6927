"""API: organisations, by id, by the platform's `external_id`, by SIREN, and their list."""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import select

from ..exceptions import OrganisationNotFound
from ..extensions import db
from ..models import Organisation
from . import blueprint, operation
from .pagination import paginate


def organisation_json(organisation: Organisation) -> dict[str, Any]:
    return {
        "object": "organisation",
        "id": organisation.id,
        "external_id": organisation.external_id,
        "name": organisation.name,
        "siren": organisation.siren,
        "siret": organisation.siret,
        "vat_number": organisation.vat_number,
        "billing_mode": organisation.billing_mode.value,
        "billing_email": organisation.billing_email,
        "address": {
            "line1": organisation.address_line1,
            "line2": organisation.address_line2,
            "postal_code": organisation.postal_code,
            "city": organisation.city,
            "country": organisation.country,
        },
        "created_at": iso(organisation.created_at),
    }


def iso(moment) -> str | None:
    """Datetimes are naive UTC in the database: ISO 8601 with its Z here."""
    return moment.isoformat(timespec="seconds") + "Z" if moment is not None else None


def organisation_or_404(organisation_id: int) -> Organisation:
    organisation = db.session.get(Organisation, organisation_id)
    if organisation is None:
        raise OrganisationNotFound(resource="organisation")
    return organisation


def _one(statement) -> dict[str, Any]:
    organisation = db.session.scalar(statement)
    if organisation is None:
        raise OrganisationNotFound(resource="organisation")
    return organisation_json(organisation)


@blueprint.get("/organisations")
@operation("organisations:read")
def list_organisations():
    """Every organisation, newest first; `external_id` or `siren` narrow the list."""
    statement = select(Organisation)
    if "external_id" in request.args:
        statement = statement.where(Organisation.external_id == request.args["external_id"])
    if "siren" in request.args:
        statement = statement.where(Organisation.siren == request.args["siren"])
    return paginate(statement, Organisation.id, organisation_json)


@blueprint.get("/organisations/<int:organisation_id>")
@operation("organisations:read")
def get_organisation(organisation_id: int):
    return organisation_json(organisation_or_404(organisation_id))


@blueprint.get("/organisations/by-external-id/<path:external_id>")
@operation("organisations:read")
def get_organisation_by_external_id(external_id: str):
    return _one(select(Organisation).where(Organisation.external_id == external_id))


@blueprint.get("/organisations/by-siren/<siren>")
@operation("organisations:read")
def get_organisation_by_siren(siren: str):
    """The organisation of a SIREN (the oldest, should two share it)."""
    return _one(select(Organisation).where(Organisation.siren == siren).order_by(Organisation.id).limit(1))
