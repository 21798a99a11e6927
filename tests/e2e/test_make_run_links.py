"""`make run` on another port than 5000, as a new user runs it from README (`PORT=8000 make run`):
the links of its emails point to the port it serves, and open the quote in the browser.

Not the `live` fixture (which sets PORTAL_BASE_URL itself): the real `make run`, its recipe
untouched, on a free port, with PORTAL_BASE_URL unset, its own SQLite database and its emails
written as .eml files (MAIL_SERVER unset, as on a fresh clone). Only localstripe is left out
(STRIPE_SECRET_KEY set): it would share instance/'s state file with the developer's own `make run`.
"""

from __future__ import annotations

import email
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from portal.devserver import free_port, wait_until_up

from .conftest import ROOT, TIMEOUT_MS, screenshot

URL = re.compile(r"https?://[^\s\"'<>]+")
STARTUP_SECONDS = 180  # migrations, demo data (Argon2 hashes), then the server


class MakeRun:
    """`make run` in its own process group, on `port`, its emails in `mail`."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mail = tmp_path / "mail"
        self.log = tmp_path / "make-run.log"
        unset = {"PORTAL_BASE_URL", "PORT", "PORTAL_ENV", "MAIL_SERVER", "MAKEFLAGS", "MAKELEVEL"}
        env = {name: value for name, value in os.environ.items() if name not in unset}
        env.update(PORT=str(self.port), DATABASE_URL=f"sqlite:///{tmp_path / 'portal.db'}",
                   MAIL_OUTBOX_DIR=str(self.mail), STRIPE_SECRET_KEY="sk_test_unused")
        with self.log.open("w") as log:
            # -o install: the virtualenv running these tests is never reinstalled by them.
            self.process = subprocess.Popen(["make", "--no-print-directory", "-o", "install", "run"],
                                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def wait_until_up(self) -> None:
        if not wait_until_up(f"{self.url}/espace-client/connexion", timeout=STARTUP_SECONDS):
            pytest.fail(f"`make run` does not answer on {self.url}:\n{self.log.read_text()}")

    def email(self, to: str, containing: str) -> EmailMessage:
        """The .eml the outbox worker wrote to `to` whose text contains `containing`."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for message in self.emails():
                if message["To"] == to and containing in _text(message):
                    return message
            time.sleep(0.2)
        pytest.fail(f"no email to {to} with {containing!r}:\n{self.log.read_text()}")

    def emails(self) -> list[EmailMessage]:
        return [email.message_from_bytes(path.read_bytes(), policy=policy.default)
                for path in sorted(self.mail.glob("*.eml"))]

    def stop(self) -> None:
        """SIGTERM to the group (make, its shell, the server and worker), as Ctrl-C would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _text(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


@pytest.fixture
def make_run(tmp_path) -> Iterator[MakeRun]:
    running = MakeRun(tmp_path)
    try:
        running.wait_until_up()
        yield running
    finally:
        running.stop()


def test_make_run_on_another_port_sends_links_to_that_port(make_run: MakeRun, browser: Browser):
    # The demo's quote awaiting Atelier Dupont's decision, sent to its gestionnaire.
    message = make_run.email("gestionnaire@dupont.example", "Objet : Crédits et formation")
    reference = re.search(r"Devis : (DV-\d{4}-\d{5})", _text(message)).group(1)
    link = re.search(r"\S+/espace-client/lien/\S+", _text(message)).group(0)
    assert link.startswith(f"{make_run.url}/espace-client/lien/")
    # Every link of every email written so far (quotes, invoices, payments, staff notices).
    links = {url for sent in make_run.emails() for url in URL.findall(_text(sent))}
    assert links and all(url.startswith(f"{make_run.url}/") for url in links), links

    context = browser.new_context(locale="fr-FR")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto(link)
        page.get_by_role("button", name="Continuer vers le devis").click()
        expect(page.get_by_role("heading", name=re.compile(f"Devis {reference}"))).to_be_visible()
        expect(page.get_by_text("Crédits et formation").first).to_be_visible()
        assert page.url.startswith(f"{make_run.url}/espace-client/")
        screenshot(page, "make-run-lien-email-sur-le-port")
    except Exception:
        screenshot(page, "make-run-lien-email-sur-le-port-echec")
        raise
    finally:
        context.close()
