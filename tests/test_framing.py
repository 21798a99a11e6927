"""The portal framed by the platform's site (an iframe): the environment's COOKIE_SAMESITE=None and
COOKIE_SECURE=1 give the session cookie `SameSite=None; Secure` (a browser sends a cookie to a
cross-site iframe only then), and PORTAL_FRAME_ANCESTORS names the sites allowed to frame it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from portal.auth import hash_password
from portal.extensions import db
from portal.models import ClientRole

from .test_security_headers import policy
from .web import PASSWORD, csrf_from

PLATFORM = "https://plateforme.example"
FRAMED = {"SESSION_COOKIE_SAMESITE": "None", "REMEMBER_COOKIE_SAMESITE": "None",
          "SESSION_COOKIE_SECURE": True, "REMEMBER_COOKIE_SECURE": True,
          "PORTAL_FRAME_ANCESTORS": PLATFORM}
READ_SETTINGS = """
import json
from portal.config import Config, DevelopmentConfig
print(json.dumps({config.__name__: {name: getattr(config, name) for name in (
    "SESSION_COOKIE_SAMESITE", "SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SAMESITE",
    "REMEMBER_COOKIE_SECURE", "PORTAL_FRAME_ANCESTORS")} for config in (Config, DevelopmentConfig)}))
"""


@pytest.mark.parametrize("portal_env", ["production", "development"])
def test_the_environment_variables_of_a_framed_portal(portal_env):
    # Settings are read from the environment once, at import: a fresh interpreter reads them.
    environment = {**os.environ, "PORTAL_ENV": portal_env, "COOKIE_SAMESITE": "None", "COOKIE_SECURE": "1",
                   "PORTAL_FRAME_ANCESTORS": f"{PLATFORM} https://www.plateforme.example"}
    output = subprocess.run([sys.executable, "-c", READ_SETTINGS], env=environment, check=True,
                            capture_output=True, text=True).stdout
    for settings in json.loads(output).values():  # production (Config) and `make run` alike
        assert settings == {"SESSION_COOKIE_SAMESITE": "None", "SESSION_COOKIE_SECURE": True,
                            "REMEMBER_COOKIE_SAMESITE": "None", "REMEMBER_COOKIE_SECURE": True,
                            "PORTAL_FRAME_ANCESTORS": f"{PLATFORM} https://www.plateforme.example"}


def test_a_framed_portal_signs_in_with_a_cross_site_cookie_and_lets_the_platform_frame_it(other_app, make):
    world = make.world()
    user = world["users"][ClientRole.GESTIONNAIRE]
    user.password_hash = hash_password(PASSWORD)
    db.session.commit()
    browser = other_app(**FRAMED).test_client()

    token = csrf_from(browser.get("/espace-client/connexion").get_data(as_text=True))
    signed_in = browser.post("/espace-client/connexion",
                             data={"csrf_token": token, "email": user.email, "password": PASSWORD})
    assert signed_in.status_code == 302
    cookie = signed_in.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    assert "SameSite=None" in cookie and "Secure" in cookie and "HttpOnly" in cookie
    quotes = browser.get("/espace-client/devis")
    assert quotes.status_code == 200  # the cookie came back: signed in
    for response in (signed_in, quotes):
        assert policy(response)["frame-ancestors"] == [PLATFORM]
        assert "X-Frame-Options" not in response.headers
    assert policy(browser.get("/admin/connexion"))["frame-ancestors"] == ["'self'"]  # never the back office
