"""`make run`'s email links: every command of its recipe (migrations, demo load, outbox worker, web
server) gets PORTAL_BASE_URL on the port it serves, unless PORTAL_BASE_URL names another address.

The real Makefile runs here, its `run` recipe unchanged but for the flask command (FLASK), replaced
by a probe that records its arguments, the PORTAL_BASE_URL it was given and, for the outbox worker
(the process that renders and sends the emails), the link an email would carry, from the app built
as `flask --app wsgi` builds it. The browser
journey tests/e2e/test_make_run_links.py runs the recipe for real and opens a link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, os, sys, time
sys.path.insert(0, os.getcwd())
arguments = sys.argv[1:]
if arguments[0] == "run":  # the server: let the worker, started just before, record itself first
    deadline = time.monotonic() + 60
    while "outbox" not in open(os.environ["PROBE_LOG"]).read() and time.monotonic() < deadline:
        time.sleep(0.1)
link = None
if arguments[0] == "outbox":
    from wsgi import app  # what `flask --app wsgi` builds, from this process's environment
    from portal.delivery.emails import portal_url
    with app.app_context():
        link = portal_url("lien", "jeton")
with open(os.environ["PROBE_LOG"], "a") as log:
    log.write(json.dumps({"args": arguments, "base_url": os.environ.get("PORTAL_BASE_URL"),
                          "link": link}) + "\\n")
"""


def _make_run(tmp_path: Path, *make_arguments: str, **environment: str) -> list[dict]:
    """Run `make run` with the probe as FLASK; what each command recorded."""
    probe, log = tmp_path / "probe.py", tmp_path / "probe.log"
    probe.write_text(PROBE)
    log.write_text("")
    env = {name: value for name, value in os.environ.items()
           if name not in {"PORTAL_BASE_URL", "PORT", "PORTAL_ENV", "MAKEFLAGS", "MAKELEVEL"}}
    # A STRIPE_SECRET_KEY skips localstripe (its state file is instance/'s); the database is unused.
    env.update(PROBE_LOG=str(log), STRIPE_SECRET_KEY="sk_test_probe", DATABASE_URL="sqlite://",
               **environment)
    # -o install: the virtualenv is the one running these tests; never reinstall it from a test.
    subprocess.run(["make", "--no-print-directory", "-s", "-o", "install", "run",
                    f"FLASK={sys.executable} {probe}", *make_arguments],
                   cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=180)
    return [json.loads(line) for line in log.read_text().splitlines()]


def _worker_link(recorded: list[dict]) -> str:
    """The link in an email sent by `make run`'s outbox worker."""
    (worker,) = [entry for entry in recorded if entry["args"][:2] == ["outbox", "work"]]
    return worker["link"]


def test_make_run_on_port_8000_links_emails_to_port_8000(tmp_path):
    recorded = _make_run(tmp_path, PORT="8000")
    assert [entry["args"][0] for entry in recorded] == ["db", "demo", "outbox", "run"]
    assert recorded[-1]["args"] == ["run", "--host", "127.0.0.1", "--port", "8000"]
    assert {entry["base_url"] for entry in recorded} == {"http://127.0.0.1:8000"}
    assert _worker_link(recorded) == "http://127.0.0.1:8000/espace-client/lien/jeton"


def test_make_run_with_the_port_on_its_command_line(tmp_path):
    recorded = _make_run(tmp_path, "PORT=8001")
    assert {entry["base_url"] for entry in recorded} == {"http://127.0.0.1:8001"}
    assert _worker_link(recorded) == "http://127.0.0.1:8001/espace-client/lien/jeton"


def test_make_run_keeps_a_portal_base_url_given(tmp_path):
    """Behind a proxy, or for the example platform (`make example-platform` sets it)."""
    recorded = _make_run(tmp_path, PORT="8000", PORTAL_BASE_URL="https://devis.vendeur.example")
    assert {entry["base_url"] for entry in recorded} == {"https://devis.vendeur.example"}
    assert _worker_link(recorded) == "https://devis.vendeur.example/espace-client/lien/jeton"
    assert recorded[-1]["args"][-1] == "8000"  # still served on PORT
