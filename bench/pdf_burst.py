"""Everybody's quote page while one client downloads quote PDFs on 16 connections.

gunicorn with 4 workers, as in production, on a free 127.0.0.1 port, over the small generated
dataset (bench/generate.py) in a temporary SQLite file, or in the PostgreSQL database
bench_pdf_burst of BENCH_PG_URL when it is set. A client's 30-line quote page is requested
`--requests` times in a row alone, then as many times while another organisation's client
downloads one of its quote PDFs in a loop on `--connections` connections (a process of its own, so
that the two loads do not share an interpreter); the p50/p99 of both and the ratio of the p99s
(target: ≤ 2). Scenarios: `limits`, the rate limits on, as in production; `reference`, the same
burst on /healthz, what any 16-connection loop costs the others on 4 synchronous workers whatever
it asks for; `pool`, the PDF URLs served by a second gunicorn (2 workers, nice 10), as a reverse
proxy routing them there would; `nolimits`, the stored PDFs alone, rate limits off.
The limit counters live in each worker's memory here (RATELIMIT_STORAGE_URI=memory://): 4 workers
allow 4 × RATELIMIT_PDF, where production's Redis allows it once.

    .venv/bin/python -m bench.pdf_burst [--requests 300] [--connections 16]
                                        [--only limits,reference,pool,nolimits]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from portal import create_app

from .bulk import BENCH_SECRET_KEY, bench_config
from .generate import BENCH_CLIENT_EMAIL, fixtures, generate
from .pages import percentile, sign_in
from .throughput import _free_port, _get

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
WORKERS = 4
TARGET_RATIO = 2.0
# The downloads pool: a second gunicorn, at a lower CPU priority, that the reverse proxy would send
# the …/pdf URLs to (the "pool" scenario).
POOL_WORKERS, POOL_NICE = 2, 10
SCENARIOS = ("limits", "reference", "pool", "nolimits")
BURST_SECONDS_MAX = 300  # the burst stops by itself if the bench is interrupted
BURST_CAP = 50_000  # requests, all connections together


def database_url(directory: Path) -> str:
    pg = os.environ.get("BENCH_PG_URL")
    if pg:
        return f"{pg.rstrip('/')}/bench_pdf_burst"
    return f"sqlite:///{directory / 'pdf_burst.db'}"


def burst_target(url: str, special_org: int) -> tuple[int, str]:
    """A sent quote of another organisation, and the email of its gestionnaire."""
    engine = create_engine(url)
    with engine.connect() as connection:
        row = connection.execute(text(
            "SELECT q.id, u.email FROM quote q JOIN \"user\" u ON u.organisation_id = q.organisation_id"
            " WHERE q.organisation_id != :special AND q.status = 'sent'"
            " AND u.client_role = 'gestionnaire' ORDER BY q.id LIMIT 1"), {"special": special_org}).one()
    engine.dispose()
    return row[0], row[1]


def session_cookies(url: str, signed_in: list[tuple[str, str]]) -> list[str]:
    """The session cookie of each (email, page) signed in through the portal's form (same
    SECRET_KEY as the server's), after a first visit of its page."""
    app = create_app(bench_config(url))
    cookies = []
    for email, page in signed_in:
        client = app.test_client()
        sign_in(client, "/espace-client/connexion", email)
        assert client.get(page).status_code == 200, page
        cookies.append(client.get_cookie("session").value)
    return cookies


@contextmanager
def serving(url: str, *, limits: bool, workers: int = WORKERS, nice: int = 0,
            storage: str = "memory://") -> Iterator[int]:
    """gunicorn on a free 127.0.0.1 port (its port), stopped on leaving; the rate limits' counters
    in `storage`."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": BENCH_SECRET_KEY,
           "MAIL_OUTBOX_DIR": "/tmp/portal-bench-mail", "RATE_LIMITS": "1" if limits else "0",
           "RATELIMIT_STORAGE_URI": storage}
    env.pop("PORTAL_ENV", None)  # make run's settings: production's refuse memory:// counters
    command = [str(BIN / "gunicorn"), "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
               "--log-level", "warning", "wsgi:app"]
    server = subprocess.Popen((["nice", "-n", str(nice)] if nice else []) + command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(port, "/healthz", None)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(30)


def timed_get(port: int, path: str, cookie: str) -> tuple[int, float]:
    started = time.perf_counter()
    status, _body = _get(port, path, cookie)
    return status, (time.perf_counter() - started) * 1000


def page_latencies(port: int, path: str, cookie: str, requests: int) -> list[float]:
    latencies = []
    for _ in range(requests):
        status, ms = timed_get(port, path, cookie)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status}")
        latencies.append(ms)
    return latencies


def burst(port: int, path: str, cookie: str, connections: int, stop, ready, results) -> None:
    """In its own process: `connections` threads downloading `path` until `stop` (or the caps)."""
    deadline = time.monotonic() + BURST_SECONDS_MAX
    statuses: Counter = Counter()
    latencies: list[float] = []
    lock = threading.Lock()

    def download() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                status, ms = timed_get(port, path, cookie)
            except (OSError, http.client.HTTPException):
                status, ms = 0, 0.0
            with lock:
                statuses[status] += 1
                if status:
                    latencies.append(ms)
                done = sum(statuses.values())
            if done >= connections:
                ready.set()
            if done >= BURST_CAP:
                return

    threads = [threading.Thread(target=download) for _ in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    results.put({"statuses": dict(statuses), "per_second": sum(statuses.values()) / elapsed,
                 "p50_ms": statistics.median(latencies) if latencies else 0.0})


def check(port: int, path: str, cookie: str | None, expected: bytes) -> None:
    status, body = _get(port, path, cookie)
    if status != 200 or expected not in body[:4096]:
        raise RuntimeError(f"GET {path}: {status}, without {expected!r}")


def measure(page: tuple[int, str, str], load: tuple[int, str, str | None], requests: int,
            connections: int) -> dict:
    """The page (port, path, cookie) alone, then during a loop of `connections` connections on
    `load` (port, path, cookie)."""
    page_port, page_path, page_cookie = page
    page_latencies(page_port, page_path, page_cookie, 20)  # warm-up: every worker's caches and pool
    alone = page_latencies(page_port, page_path, page_cookie, requests)
    context = multiprocessing.get_context("spawn")
    stop, ready, results = context.Event(), context.Event(), context.Queue()
    loader = context.Process(target=burst, args=(*load, connections, stop, ready, results))
    loader.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the burst did not start")
        during = page_latencies(page_port, page_path, page_cookie, requests)
    finally:
        stop.set()
        burst_result = results.get(timeout=60)
        loader.join(30)
    return {"alone": alone, "during": during, "burst": burst_result}


def report(label: str, result: dict) -> None:
    alone, during = result["alone"], result["during"]
    a50, a99 = statistics.median(alone), percentile(alone, 0.99)
    d50, d99 = statistics.median(during), percentile(during, 0.99)
    ratio = d99 / a99
    statuses = ", ".join(f"{count} × {status or 'erreur'}"
                         for status, count in sorted(result["burst"]["statuses"].items()))
    print(f"{label}")
    print(f"  page du devis seule          p50 {a50:7.1f} ms   p99 {a99:7.1f} ms")
    print(f"  page du devis pendant rafale p50 {d50:7.1f} ms   p99 {d99:7.1f} ms")
    print(f"  ratio des p99 {ratio:.2f} (cible ≤ {TARGET_RATIO:g}) : "
          f"{'OK' if ratio <= TARGET_RATIO else 'NON ATTEINT'}")
    print(f"  rafale PDF : {result['burst']['per_second']:.0f} req/s, p50 "
          f"{result['burst']['p50_ms']:.1f} ms ; réponses {statuses}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"some of {','.join(SCENARIOS)}")
    args = parser.parse_args()
    only = set(args.only.split(","))
    directory = Path(tempfile.mkdtemp(prefix="pdf-burst-"))
    try:
        url = database_url(directory)
        started = time.perf_counter()
        generate(url, "small")
        found = fixtures(url)
        pdf_quote, pdf_email = burst_target(url, found["organisation_id"])
        page_path = f"/espace-client/devis/{found['quote_id']}"
        pdf_path = f"/espace-client/devis/{pdf_quote}/pdf"
        page_cookie, pdf_cookie = session_cookies(url, [(BENCH_CLIENT_EMAIL, page_path),
                                                        (pdf_email, f"/espace-client/devis/{pdf_quote}")])
        where = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        print(f"Rafale de PDF de devis — gunicorn {WORKERS} workers, {where}, jeu « small » prêt en "
              f"{time.perf_counter() - started:.0f} s ; {args.requests} requêtes de {page_path} "
              f"(devis de 30 lignes), rafale de {args.connections} connexions sur {pdf_path} "
              f"(un client d'une autre organisation)", flush=True)
        n, c = args.requests, args.connections
        with serving(url, limits=True) as port:
            page = (port, page_path, page_cookie)
            check(port, page_path, page_cookie, b"30 lignes")
            check(port, pdf_path, pdf_cookie, b"%PDF")  # rendered and stored here, once
            if "limits" in only:
                report("Rafale sur le PDF, limites actives (production ; RATELIMIT_PDF compté par "
                       "worker)", measure(page, (port, pdf_path, pdf_cookie), n, c))
            if "reference" in only:
                report("Référence : la même rafale sur /healthz, la requête la moins chère de l'app",
                       measure(page, (port, "/healthz", None), n, c))
            if "pool" in only:
                with serving(url, limits=True, workers=POOL_WORKERS, nice=POOL_NICE) as pool:
                    report(f"Rafale sur le PDF servie par un pool de téléchargements à part "
                           f"({POOL_WORKERS} workers, nice {POOL_NICE}), limites actives",
                           measure(page, (pool, pdf_path, pdf_cookie), n, c))
        if "nolimits" in only:
            with serving(url, limits=False) as port:
                report("Rafale sur le PDF, limites coupées (les PDF stockés seuls)",
                       measure((port, page_path, page_cookie), (port, pdf_path, pdf_cookie), n, c))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
