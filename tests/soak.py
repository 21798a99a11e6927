"""`make soak`: the site served as in production, on PostgreSQL, under a few minutes of traffic.

gunicorn with 4 workers on 127.0.0.1, the demo data in a database of its own, the rate limits in
Redis. Several signed-in visitors (staff and clients) browse the back office and the portal, and
clients send quote requests; every ~25 s all of them pause for longer than the idle-ping threshold
(the first page after a quiet spell is the one that used to fail), and in the middle every
connection to the database is killed. The run fails on any 500, and on any error answer (503)
beyond one per connection killed: a request whose connection was killed under it is told to retry
(503), every other request is served. Loopback only; loops bounded by --duration.

    python -m tests.soak [--duration 180] [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/portail_soak]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
import requests
from psycopg import sql
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/portail_soak"
REDIS_URL = "redis://127.0.0.1:6379/15"
IDLE_PING_SECONDS = 2
WORKERS = 4
STAFF_PASSWORD, CLIENT_PASSWORD = "demo-admin-2026", "demo-client-2026"
STAFF = ["admin@portail-devis.fr", "commercial@portail-devis.fr"]
CLIENTS = ["responsable@dupont.example", "responsable@martin.example", "gestionnaire@lefevre.example",
           "membre@dupont.example"]
STAFF_PAGES = ["/admin/", "/admin/recherche?q=dup", "/admin/?q=lef", "/admin/tous-les-devis/",
               "/admin/tous-les-devis/?q=martin", "/admin/demandes/", "/admin/organisation/{org}/",
               "/admin/organisation/{org}/devis", "/admin/factures/", "/admin/produits/",
               "/admin/devis/{quote}"]
PORTAL_PAGES = ["/espace-client/devis", "/espace-client/devis/{quote}", "/espace-client/factures",
                "/espace-client/factures/{invoice}", "/espace-client/credits", "/espace-client/parametres",
                "/espace-client/demandes"]
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
SUBMISSION = re.compile(r'name="submission_token"[^>]*value="([^"]+)"')


@dataclass
class Answer:
    url: str
    status: int
    started: float
    ended: float


@dataclass
class Soak:
    base: str
    deadline: float
    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: threading.Event = field(default_factory=threading.Event)
    killed_at: float | None = None
    killed_connections: int = 0

    def note(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("SOAK_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--duration", type=int, default=int(os.environ.get("SOAK_SECONDS", "180")))
    args = parser.parse_args()
    url = make_url(args.pg_url)
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        env = _environment(args.pg_url, Path(workdir))
        _fresh_database(url)
        redis.Redis.from_url(REDIS_URL).flushdb()
        _flask(env, "db", "upgrade")
        _flask(env, "demo", "load")
        port = _free_port()
        log_path = ROOT / "instance" / "soak-gunicorn.log"  # kept for reading after a failure
        log_path.parent.mkdir(exist_ok=True)
        with open(log_path, "w") as log:
            server = subprocess.Popen(
                [str(BIN / "gunicorn"), "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}",
                 "--timeout", "60", "wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                soak = Soak(base=f"http://127.0.0.1:{port}", deadline=0.0)
                _wait_until_up(soak.base, server)
                soak.deadline = time.monotonic() + args.duration
                _run(soak, url)
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=30)
        return _report(soak, log_path.read_text())


def _environment(pg_url: str, workdir: Path) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": pg_url, "PORTAL_ENV": "production",
            "SECRET_KEY": secrets.token_hex(32), "RATELIMIT_STORAGE_URI": REDIS_URL,
            "DB_IDLE_PING_SECONDS": str(IDLE_PING_SECONDS), "COOKIE_SECURE": "0", "HSTS_SECONDS": "0",
            "MAIL_SERVER": "", "MAIL_OUTBOX_DIR": str(workdir / "mail"),
            "PORTAL_BASE_URL": "http://127.0.0.1", "STRIPE_SECRET_KEY": ""}


def _fresh_database(url) -> None:
    with psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                         dbname="postgres", autocommit=True) as connection:
        name = sql.Identifier(url.database)
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(name))


def _flask(env: dict[str, str], *command: str) -> None:
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", *command], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(base: str, server: subprocess.Popen) -> None:
    for _ in range(300):
        if server.poll() is not None:
            raise SystemExit("gunicorn stopped at start-up")
        try:
            if requests.get(base + "/healthz", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit("gunicorn did not answer /healthz")


# --- Visitors ---------------------------------------------------------------------------------


def _signed_in(base: str, sign_in_path: str, email: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(base + sign_in_path, timeout=30).text
    form = {"csrf_token": CSRF.search(page).group(1), "email": email, "password": password}
    answer = session.post(base + sign_in_path, data=form, timeout=30, allow_redirects=False)
    if answer.status_code != 302:
        raise SystemExit(f"sign-in of {email} failed: {answer.status_code}")
    return session


def _ids(session: requests.Session, url: str, pattern: str) -> list[str]:
    return sorted(set(re.findall(pattern, session.get(url, timeout=30).text)))


def _staff_urls(soak: Soak, session: requests.Session) -> list[str]:
    organisations = _ids(session, soak.base + "/admin/tous-les-devis/", r"/admin/organisation/(\d+)/")
    quotes = _ids(session, soak.base + "/admin/tous-les-devis/", r"/admin/devis/(\d+)\"")
    return [soak.base + page.format(org=random.choice(organisations), quote=random.choice(quotes))
            for page in STAFF_PAGES]


def _portal_urls(soak: Soak, session: requests.Session) -> list[str]:
    quotes = _ids(session, soak.base + "/espace-client/devis", r"/espace-client/devis/(\d+)\"")
    invoices = _ids(session, soak.base + "/espace-client/factures", r"/espace-client/factures/(\d+)\"")
    pages = PORTAL_PAGES if invoices else [page for page in PORTAL_PAGES if "{invoice}" not in page]
    if session.get(soak.base + "/espace-client/parametres", timeout=30).status_code != 200:
        pages = [page for page in pages if page != "/espace-client/parametres"]  # the responsable's
    return [soak.base + page.format(quote=random.choice(quotes), invoice=random.choice(invoices or ["0"]))
            for page in pages]


def _visit(soak: Soak, session: requests.Session, urls: list[str], sends_requests: bool) -> None:
    rng = random.Random()
    while time.monotonic() < soak.deadline:
        soak.running.wait()
        if sends_requests and rng.random() < 0.1:
            _send_quote_request(soak, session)
        else:
            _get(soak, session, rng.choice(urls))


def _get(soak: Soak, session: requests.Session, url: str) -> requests.Response | None:
    started = time.monotonic()
    try:
        response = session.get(url, timeout=60, allow_redirects=False)
    except requests.RequestException:
        soak.note(Answer(url, 0, started, time.monotonic()))
        return None
    soak.note(Answer(url, response.status_code, started, time.monotonic()))
    return response


def _send_quote_request(soak: Soak, session: requests.Session) -> None:
    url = soak.base + "/espace-client/demandes"
    page = _get(soak, session, url)
    if page is None or page.status_code != 200:
        return
    product = re.search(r'name="quantity-(\d+)"', page.text)
    data = {"csrf_token": CSRF.search(page.text).group(1), "message": "Demande du test d'endurance",
            "submission_token": SUBMISSION.search(page.text).group(1), f"quantity-{product.group(1)}": "2"}
    started = time.monotonic()
    response = session.post(url, data=data, timeout=60, allow_redirects=False)
    soak.note(Answer(url + " (POST)", response.status_code, started, time.monotonic()))


# --- The run ----------------------------------------------------------------------------------


def _run(soak: Soak, url) -> None:
    visitors = []
    for email in STAFF:
        session = _signed_in(soak.base, "/admin/connexion", email, STAFF_PASSWORD)
        visitors.append((session, _staff_urls(soak, session), False))
    for email in CLIENTS:
        session = _signed_in(soak.base, "/espace-client/connexion", email, CLIENT_PASSWORD)
        visitors.append((session, _portal_urls(soak, session), email.startswith("membre")))
    soak.running.set()
    threads = [threading.Thread(target=_visit, args=(soak, *visitor), daemon=True) for visitor in visitors]
    for thread in threads:
        thread.start()
    _pace(soak, url)
    for thread in threads:
        thread.join(timeout=120)


def _pace(soak: Soak, url) -> None:
    """Every 25 s, a quiet spell longer than the idle-ping threshold; halfway, the connection kill."""
    halfway = time.monotonic() + (soak.deadline - time.monotonic()) / 2
    next_pause = time.monotonic() + 25
    while time.monotonic() < soak.deadline:
        time.sleep(0.5)
        if soak.killed_at is None and time.monotonic() >= halfway:
            soak.killed_at = time.monotonic()
            soak.killed_connections = _kill_connections(url)
            print(f"  {soak.killed_connections} database connections killed", flush=True)
        if time.monotonic() >= next_pause:
            soak.running.clear()
            time.sleep(IDLE_PING_SECONDS * 2)
            soak.running.set()
            next_pause = time.monotonic() + 25
    soak.running.set()


def _kill_connections(url) -> int:
    with psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                         dbname="postgres", autocommit=True) as connection:
        return connection.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (url.database,)).fetchone()[0]


def _report(soak: Soak, server_log: str) -> int:
    statuses = Counter(answer.status for answer in soak.answers)
    errors = [answer for answer in soak.answers if answer.status >= 500 or answer.status == 0]
    server_errors = [answer for answer in errors if answer.status != 503]
    seconds = int(soak.answers[-1].ended - soak.answers[0].started) if soak.answers else 0
    print(f"Soak: {len(soak.answers)} requests in {seconds} s, statuses {dict(sorted(statuses.items()))};"
          f" {soak.killed_connections} connections killed halfway;"
          f" {server_log.count('Traceback')} tracebacks in gunicorn's log.")
    unexpected = Counter(_path(answer.url) for answer in soak.answers if answer.status not in (200, 302, 303))
    for path, count in unexpected.most_common(10):
        print(f"  {count} × {path}: not served")
    for answer in errors:
        when = answer.started - soak.killed_at if soak.killed_at else 0.0
        print(f"  {answer.status} {answer.url} ({when:+.1f} s from the kill)")
    if server_errors:
        print(f"FAILED: {len(server_errors)} answers 500 or no answer.", file=sys.stderr)
        return 1
    if len(errors) > soak.killed_connections:
        print(f"FAILED: {len(errors)} answers 503, more than the {soak.killed_connections} connections"
              " killed.", file=sys.stderr)
        return 1
    if statuses[200] < 100:
        print("FAILED: too few pages served for the run to mean anything.", file=sys.stderr)
        return 1
    print("Soak passed: no 500, and no error beyond the requests whose connection was killed.")
    return 0


def _path(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


if __name__ == "__main__":
    sys.exit(main())
