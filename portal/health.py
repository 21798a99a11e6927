"""GET /healthz: liveness and database status, for load balancers and `make run`."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from .extensions import db

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    """200 with the database status when the database answers, 503 otherwise."""
    try:
        db.session.execute(text("SELECT 1"))
        database = "ok"
    except Exception as error:  # noqa: BLE001 - any failure means "not healthy"
        db.session.rollback()
        return jsonify(status="error", database="unreachable", error=type(error).__name__), 503
    return jsonify(status="ok", database=database, dialect=db.engine.dialect.name)
