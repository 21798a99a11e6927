"""GET /healthz: liveness, database and rate-limiter status, for load balancers and `make run`."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from .extensions import db, limiter

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    """200 when the database answers, 503 otherwise. `limiter` is "ok", "off", or "degraded" while
    its shared storage (Redis) does not answer: sign-in still works, limits counted per process."""
    try:
        db.session.execute(text("SELECT 1"))
        database = "ok"
    except Exception as error:  # noqa: BLE001 - any failure means "not healthy"
        db.session.rollback()
        return jsonify(status="error", database="unreachable", error=type(error).__name__,
                       limiter=limiter.state()), 503
    return jsonify(status="ok", database=database, dialect=db.engine.dialect.name,
                   limiter=limiter.state())
