"""The few calls the platform makes to the portal's API (/api/v1), with the standard library only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import quote


class PortalApiError(Exception):
    """The portal refused a call (its problem+json `code` and French `detail`) or did not answer."""

    def __init__(self, status: int, code: str, detail: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.problem = status, code, detail, problem or {}


class PortalApi:
    """A client of the portal's API for one key (`Authorization: Bearer <key>`)."""

    def __init__(self, portal_url: str, api_key: str, *, timeout: float = 10) -> None:
        self.base = portal_url.rstrip("/") + "/api/v1"
        self.api_key = api_key
        self.timeout = timeout

    def organisation_by_external_id(self, external_id: str) -> dict[str, Any]:
        """The portal organisation the platform knows as `external_id` (its own account id)."""
        return self.call("GET", f"/organisations/by-external-id/{quote(external_id, safe='')}")

    def balance(self, organisation_id: int) -> int:
        return self.call("GET", f"/organisations/{organisation_id}/credits")["balance"]

    def sign_on(self, email: str, next_path: str) -> str:
        """A one-time URL that signs the portal user `email` in and opens `next_path` (single sign-on)."""
        return self.call("POST", "/sessions", {"email": email, "next": next_path})["url"]

    def consume(self, organisation_id: int, amount: int, *, reference: str, description: str,
                idempotency_key: str | None = None) -> dict[str, Any]:
        """Consume credits; the same `idempotency_key` (one per action) never consumes twice."""
        return self.call("POST", f"/organisations/{organisation_id}/credits/consumptions",
                         {"amount": amount, "reference": reference, "description": description},
                         headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())})

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
             headers: dict[str, str] | None = None) -> dict[str, Any]:
        """One call; a refusal (4xx, 5xx) or an unreachable portal raises PortalApiError."""
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.api_key}", "Accept": "application/json",
            "Accept-Language": "fr", **({"Content-Type": "application/json"} if data else {}),
            **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            with error:
                problem = _json_or_empty(error.read())
            raise PortalApiError(error.code, str(problem.get("code") or "http_error"),
                                 str(problem.get("detail") or error.reason), problem) from error
        except (urllib.error.URLError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise PortalApiError(0, "unreachable", f"Le portail ne répond pas ({reason}).") from error


def _json_or_empty(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
