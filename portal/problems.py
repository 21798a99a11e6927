"""Errors of the platform API (portal/api/) as RFC 9457 problem details (`application/problem+json`).

Every answer of 400 and above under /api/ is one: `status`, `title` (the HTTP phrase), a stable
`code` a program can switch on (the refusal's class name in snake_case: `InsufficientCredits` →
`insufficient_credits`; an HTTP error's name: `not_found`, `rate_limited`…), a `detail` for people
in the caller's language, and the refusal's parameters (e.g. `balance`).
"""

from __future__ import annotations

import re
from http import HTTPStatus

from flask import Response, json, request

from .exceptions import DomainError

API_PREFIX = "/api/v1"

PROBLEM_JSON = "application/problem+json"
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
              415: "unsupported_media_type", 422: "unprocessable", 429: "rate_limited",
              500: "internal_error", 503: "unavailable"}


def is_api_request() -> bool:
    return request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")


def code_of(error: DomainError) -> str:
    """`InsufficientCredits` → `insufficient_credits`: stable as long as the class keeps its name
    (a family of refusals may share one `code`, e.g. `api_resource_not_found`)."""
    return getattr(error, "code", None) or re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None,
            **extra: object) -> Response:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
            "code": code, "detail": detail, **extra}
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON, headers=headers)


def domain_problem(error: DomainError) -> Response:
    params = {name: value for name, value in error.params.items()
              if isinstance(value, (int, str, bool)) and name not in ("type", "title", "status")}
    headers = {"WWW-Authenticate": 'Bearer realm="api"'} if error.http_status == 401 else None
    return problem(error.http_status, code_of(error), str(error), headers, **params)


def http_problem(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return problem(status, HTTP_CODES.get(status, f"http_{status}"), detail, headers)
