"""API: organisations, by id, by the platform's `external_id`, by SIREN, and their list."""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import select

from ..exceptions import OrganisationNotFound
from ..extensions import db
from ..models import Organisation
from ..representations import organisation_json
from . import blueprint, operation
from .pagination import paginate


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
