"""API: the OpenAPI 3.1 document of /api/v1/ (`openapi.json` beside this file), readable without a key.

The document is written by hand, next to the code it describes; tests/test_api_openapi.py checks it
against the OpenAPI 3.1 specification and against the blueprint's routes, and
tests/test_api_schemathesis.py checks every answer of the app against it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Response, current_app, request

from ..problems import API_PREFIX
from . import blueprint

DOCUMENT_PATH = Path(__file__).with_name("openapi.json")
# Read once at import: the file ships with the code and never changes while the app runs.
DOCUMENT: dict[str, Any] = json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))


@blueprint.get("/openapi.json")
def openapi_document() -> Response:
    """The document, with the `servers` of this deployment. Serialised as written (Flask's JSON
    provider would sort the keys, putting `components` before `info` and `paths`)."""
    document = {**DOCUMENT, "servers": servers()}
    return current_app.response_class(json.dumps(document, ensure_ascii=False, indent=1),
                                      mimetype="application/json")


def servers() -> list[dict[str, str]]:
    """The API's address as this request reached it (what a reader of the document calls), then the
    configured PORTAL_BASE_URL's when it differs (behind a proxy the first may be an inner one)."""
    reached = request.url_root.rstrip("/") + API_PREFIX
    configured = str(current_app.config["PORTAL_BASE_URL"]).rstrip("/") + API_PREFIX
    found = [{"url": reached, "description": "The address this document was read from."}]
    if configured != reached:
        found.append({"url": configured, "description": "The configured address (PORTAL_BASE_URL)."})
    return found
