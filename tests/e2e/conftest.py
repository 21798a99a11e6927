"""End-to-end journeys in a real browser: the app under a real HTTP server, a real SMTP server,
localstripe with its Stripe.js, and Debian's Chromium driven by Playwright.

Every test gets its own servers on free ports and its own copy of a SQLite database holding the
schema (`db.create_all()`, as the rest of the suite: the migrations may lag behind the models
while a feature is being built) and the demo data (`demo.load_demo()`, the data of `make run`).
The database is built once per session and copied for each test, so each journey starts from the
same demo world. Artefacts (a screenshot at the end of each journey, one per open page when a
journey fails, downloaded PDFs) are kept under test-artifacts/e2e/.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from portal import create_app, demo, monthly
from portal.config import TestConfig
from portal.delivery import worker
from portal.extensions import db

from ..smtp import Received, SmtpServer

# The journeys run the app on their own SQLite file, whatever TEST_DATABASE_URL says: running them
# again in the PostgreSQL half of `make test` would test nothing more, so they are collected in the
# SQLite half only.
IS_POSTGRES = os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql")
collect_ignore_glob = ["test_*.py"] if IS_POSTGRES else []

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = "/usr/bin/chromium"  # Debian's: Playwright's own browser download cannot work here
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000
LINK = re.compile(r"https?://\S+/espace-client/lien/[A-Za-z0-9_-]+")

STAFF_EMAIL = demo.ADMIN_EMAIL
STAFF_PASSWORD = demo.DEMO_STAFF_PASSWORD
CLIENT_PASSWORD = demo.DEMO_CLIENT_PASSWORD

log = logging.getLogger("e2e.server")
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(autouse=True)
def app_ctx():
    """Replaces the suite's autouse fixture (tests/conftest.py): these tests use their own app and
    database, not the suite's app context and per-test emptied database."""
    yield


# --- The app under a real HTTP server -----------------------------------------------------------


class E2EConfig(TestConfig):
    """The test settings, as a browser on http://127.0.0.1 needs them."""

    SESSION_COOKIE_SECURE = False  # plain HTTP on 127.0.0.1
    REMEMBER_COOKIE_SECURE = False
    HSTS_SECONDS = 0
    RATE_LIMITS_ENABLED = False
    TESTING = False  # errors are rendered as in production, not raised into the server thread


def _configured_app(database: Path, **settings):
    app = create_app(type("Config", (E2EConfig,), {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}"}))
    app.config.update(settings)
    return app


@pytest.fixture(scope="package")
def demo_database(tmp_path_factory) -> Path:
    """A SQLite file with the schema and the demo data, built once; tests use copies of it."""
    path = tmp_path_factory.mktemp("e2e-db") / "demo.db"
    app = _configured_app(path, MAIL_OUTBOX_DIR=str(path.parent / "mail"))
    with app.app_context():
        db.create_all()
        assert demo.load_demo()
        db.session.commit()
        worker.send_pending()  # the demo's emails, to .eml files: each journey starts with an empty outbox
        db.session.remove()
        db.engine.dispose()
    return path


class QuietHandler(WSGIRequestHandler):
    """Request lines go to a logger (shown by pytest when a test fails), not to stderr."""

    def log(self, type: str, message: str, *args) -> None:
        log.info("%s %s", type, message % args)


@dataclass
class LiveApp:
    """The running app, its SMTP server, and what the test reads from them."""

    app: object
    url: str
    smtp: SmtpServer
    read: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver_emails(self) -> list[Received]:
        """Run one pass of the outbox worker (as `flask outbox send` does: the monthly closes queued
        from the back office, then the emails due) and return the emails that arrived since the
        last call."""
        with self._lock, self.app.app_context():
            monthly.run_queued_closes()
            worker.send_pending()
        new = self.smtp.messages[self.read :]
        self.read += len(new)
        return new

    def email_to(self, address: str, subject_contains: str) -> Received:
        """The one email delivered so far to `address` whose subject contains the text."""
        found = [
            message
            for message in self.smtp.messages
            if address in message.rcpt_tos and subject_contains in str(message.message["Subject"])
        ]
        assert len(found) == 1, [(m.rcpt_tos, str(m.message["Subject"])) for m in self.smtp.messages]
        return found[0]


@pytest.fixture
def live(demo_database, localstripe, tmp_path) -> Iterator[LiveApp]:
    """The app on a copy of the demo database, served on a free port, with its emails going to a
    real SMTP server and its card payments to the session's localstripe."""
    database = tmp_path / "portal.db"
    shutil.copyfile(demo_database, database)
    smtp = SmtpServer()
    smtp.start()
    app = _configured_app(
        database,
        MAIL_SERVER=smtp.host,
        MAIL_PORT=smtp.port,
        MAIL_TIMEOUT=5,
        MAIL_OUTBOX_DIR=str(tmp_path / "mail"),
        **localstripe.config(),
    )
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["PORTAL_BASE_URL"] = url  # the links of the emails
    thread = threading.Thread(target=server.serve_forever, name="e2e-http", daemon=True)
    thread.start()
    try:
        yield LiveApp(app=app, url=url, smtp=smtp)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        smtp.stop()
        with app.app_context():
            db.engine.dispose()


# --- The browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the journeys (closed once they are done, not at the end of
    the whole suite); test-artifacts/e2e/ then holds this run's files only."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures know whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def new_context(browser, live, request):
    """Open a browser context (a person with their own cookies) on the app, in French:
    `new_context()`, or `new_context(viewport=…, is_mobile=True)` for a phone."""
    contexts: list[BrowserContext] = []

    def open_context(**options) -> BrowserContext:
        context = browser.new_context(locale="fr-FR", base_url=live.url, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context

    yield open_context
    report = getattr(request.node, "report_call", None)
    failed = report is None or report.failed
    for number, context in enumerate(contexts, start=1):
        if failed:
            for page_number, page in enumerate(context.pages, start=1):
                screenshot(page, f"{request.node.name}-echec-{number}-{page_number}")
        context.close()


@pytest.fixture
def staff_page(new_context) -> Page:
    """A page of the back office, staff signed in through the sign-in form."""
    page = new_context().new_page()
    sign_in_staff(page)
    return page


def sign_in_staff(page: Page) -> None:
    page.goto("/admin/")
    expect(page.get_by_role("heading", name="Portail Devis — Gestion courante")).to_be_visible()
    page.get_by_label("Adresse email").fill(STAFF_EMAIL)
    page.get_by_label("Mot de passe").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Gestion courante", exact=True)).to_be_visible()


def sign_in_client(page: Page, email: str) -> None:
    """Sign a client in with the portal's sign-in form (the demo's clients share a password)."""
    page.goto("/espace-client/")
    expect(page.get_by_role("heading", name="Connexion à votre espace client")).to_be_visible()
    page.get_by_label("Adresse email").first.fill(email)
    page.get_by_label("Mot de passe").fill(CLIENT_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Mon Organisation › Devis")).to_be_visible()


def open_organisation(page: Page, search: str, name: str) -> None:
    """Search an organisation in the search bar of Gestion courante, then open it."""
    page.get_by_role("link", name="Gestion courante").first.click()
    page.get_by_placeholder("Nom, SIREN ou SIRET").fill(search)
    page.get_by_role("button", name="Rechercher").click()
    heading = page.get_by_role("heading", name=f"Résultats pour « {search} »")
    page.locator("section").filter(has=heading).get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()


def link_in(email: Received) -> str:
    """The personal link of an email, as the recipient reads it in its text."""
    match = LINK.search(email.part("text/plain"))
    assert match, email.part("text/plain")
    return match.group(0)


def flash(page: Page, text: str) -> str:
    """The text of the message shown at the top of the page (one must contain `text`)."""
    message = page.get_by_role("alert").or_(page.get_by_role("status")).filter(has_text=text).first
    expect(message).to_be_visible()
    return message.inner_text()


def box_of(locator) -> dict:
    """The element's bounding box (it must be shown)."""
    box = locator.bounding_box()
    assert box is not None, locator
    return box


def middle_of(locator) -> float:
    """The element's vertical middle, in whole pixels: elements on one row share it."""
    box = box_of(locator)
    return round(box["y"] + box["height"] / 2)


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot kept under test-artifacts/e2e/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
