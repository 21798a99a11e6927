"""Links from the API to the client portal: absolute, on the portal's canonical address.

Like the links of the emails (`delivery/emails.py`, `portal_url`), they are built on
PORTAL_BASE_URL, never on the Host of the API call: the platform's server calls the API, the
client's browser opens the portal, and a forged Host header must not end up in a link. The path
comes from the portal's own route (`url_for`), so a link cannot drift from the page it names.
"""

from __future__ import annotations

from flask import current_app, request, url_for


def portal_path(endpoint: str, **values: object) -> str:
    """The path of a portal page from the application's root (as PORTAL_URL_PREFIX is written):
    PORTAL_BASE_URL already holds any mount point (SCRIPT_NAME) of the application."""
    return url_for(endpoint, **values).removeprefix(request.script_root)


def portal_link(endpoint: str, **values: object) -> str:
    """Absolute URL of a portal page, e.g. `portal_link("client.quote_page", quote_id=12)`."""
    return str(current_app.config["PORTAL_BASE_URL"]).rstrip("/") + portal_path(endpoint, **values)
