"""Webhook delivery under load (issue « Events to the platform », point 8). Targets: ≥ 200 events
delivered per second by 2 outbox workers, and p95 ≤ 2 s from an event's commit to its delivery.

PostgreSQL only (the database bench_webhooks of BENCH_PG_URL, rebuilt every run): 100 organisations
with a large credit balance, one webhook endpoint subscribed to every event type, pointed at a
receiver on 127.0.0.1 (its own process: a threaded HTTP/1.1 server that answers 200 and notes when
each event id arrived). Two `flask outbox work` processes deliver, as production runs them.

1. Throughput: a backlog of `--backlog` events committed at once (credits.consumed events written
   by `events.record_many`, as the monthly close writes its invoices' events), then the time until
   the receiver holds every one: events per second from the commit to the last arrival.
2. Delay: consumptions through the domain (`credits.consume_credits`, one transaction each, as the
   API makes them) at `--rate` per second (the throughput target, 200/s) for `--seconds` (the rate
   reached is printed); for each, the time from its commit to
   its arrival at the receiver: median, p95 and max.

Then every event must have arrived exactly once (at-least-once delivery, with no duplicate here
since no worker crashes) and every delivery be marked delivered.

    .venv/bin/python -m bench.webhooks [--backlog 4000] [--rate 200] [--seconds 20]
                                       [--interval S] [--pg-url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import func, select

from portal import create_app, credits, events
from portal.extensions import db
from portal.models import (
    CreditEntry,
    CreditEntryKind,
    DeliveryStatus,
    Event,
    Organisation,
    WebhookDelivery,
    WebhookEndpoint,
)
from portal.representations import entry_json

from .bulk import BENCH_SECRET_KEY, bench_config, recreate_database
from .pages import percentile
from .throughput import _free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
ORGANISATIONS = 100
WORKERS = 2
PRODUCERS = 4
TARGET_PER_SECOND, TARGET_P95_SECONDS = 200.0, 2.0


def database_url(pg_url: str) -> str:
    return f"{pg_url.rstrip('/')}/bench_webhooks"


# --- The receiver ----------------------------------------------------------------------------


def receive(port: int, arrivals: multiprocessing.Queue, ready: multiprocessing.Event) -> None:
    """Answer every POST with 200 and put (event id, arrival time) on `arrivals`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a worker reuses its connection
        # The head and the body of the answer are two writes: without this, the second waits for
        # the worker's delayed ACK (40 ms a request), as a real platform's server would not.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            arrivals.put((self.headers.get("Portail-Event-Id"), time.time()))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    ready.set()
    server.serve_forever()


class Receiver:
    """The receiving process, and what it has seen so far."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.arrivals: multiprocessing.Queue = multiprocessing.Queue()
        ready = multiprocessing.Event()
        self.process = multiprocessing.Process(target=receive, args=(self.port, self.arrivals, ready),
                                               daemon=True)
        self.process.start()
        ready.wait(10)
        self.seen: dict[str, list[float]] = {}

    def drain(self) -> None:
        while not self.arrivals.empty():
            event_id, at = self.arrivals.get()
            self.seen.setdefault(event_id, []).append(at)

    def wait_for(self, event_ids: set[str], timeout: float) -> float:
        """Wait until every id of `event_ids` arrived; the time of the last arrival."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.drain()
            if event_ids <= self.seen.keys():
                return max(self.seen[event_id][0] for event_id in event_ids)
            time.sleep(0.05)
        missing = len(event_ids - self.seen.keys())
        raise RuntimeError(f"{missing} event(s) not delivered after {timeout:.0f} s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)


# --- The portal's side -----------------------------------------------------------------------


def prepare(url: str, receiver_port: int) -> list[int]:
    """A fresh bench_webhooks: the organisations with a balance, the endpoint. Their ids."""
    recreate_database(url)
    app = create_app(bench_config(url, WEBHOOKS_ALLOW_LOCAL=True, WEBHOOKS_HTTPS_ONLY=False))
    with app.app_context():
        organisations = [Organisation(name=f"Plateforme {n:03d}", external_id=f"plat-{n:03d}")
                         for n in range(1, ORGANISATIONS + 1)]
        db.session.add_all(organisations)
        db.session.flush()
        db.session.add_all(CreditEntry(organisation_id=organisation.id, kind=CreditEntryKind.ADJUSTMENT,
                                       amount=1_000_000, reason="Solde initial")
                           for organisation in organisations)
        db.session.add(WebhookEndpoint(url=f"http://127.0.0.1:{receiver_port}/webhooks/portail",
                                       event_types=" ".join(events.EVENT_TYPES), enabled=True,
                                       secret="whsec_bench"))
        db.session.commit()
        ids = [organisation.id for organisation in organisations]
        db.engine.dispose()
    return ids


def start_workers(url: str, interval: float | None) -> list[subprocess.Popen]:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": BENCH_SECRET_KEY,
           "MAIL_OUTBOX_DIR": "/tmp/portal-bench-mail", "WEBHOOKS_ALLOW_LOCAL": "1"}
    env.pop("PORTAL_ENV", None)  # make run's settings: http to 127.0.0.1 is allowed there
    command = [str(BIN / "flask"), "--app", "wsgi", "outbox", "work"]
    if interval is not None:
        command += ["--interval", str(interval)]
    return [subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
            for _ in range(WORKERS)]


def backlog(app, organisation_ids: list[int], count: int) -> tuple[set[str], float]:
    """`count` credits.consumed events committed in one transaction: their ids, the commit time."""
    with app.app_context():
        organisations = db.session.scalars(select(Organisation).where(Organisation.id.in_(organisation_ids)))
        organisations = list(organisations)
        entry = db.session.scalars(select(CreditEntry).limit(1)).one()
        data = entry_json(entry)
        items = [(organisations[n % len(organisations)], data) for n in range(count)]
        written = events.record_many("credits.consumed", items)
        db.session.commit()
        committed = time.time()
        return {event.public_id for event in written}, committed


def steady_consumptions(app, organisation_ids: list[int], rate: float, seconds: float) -> dict[str, float]:
    """Consumptions at `rate` per second for `seconds`, each committed alone, by PRODUCERS threads
    (one cannot commit 200 a second): event id → commit time."""
    commits: dict[str, float] = {}
    start = time.perf_counter()

    def produce(offset: int) -> None:
        with app.app_context():
            for n in range(offset, int(rate * seconds), PRODUCERS):
                pause = start + n / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                organisation = db.session.get(Organisation, organisation_ids[n % len(organisation_ids)])
                credits.consume_credits(organisation, 1, actor=None, reason="Analyse",
                                        external_reference=f"bench-{n}")
                latest = (select(Event.public_id).where(Event.organisation_id == organisation.id)
                          .order_by(Event.sequence.desc()).limit(1))
                event_id = db.session.scalar(latest)
                db.session.commit()
                commits[event_id] = time.time()

    threads = [threading.Thread(target=produce, args=(offset,)) for offset in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return commits


def check_ledger(app, receiver: Receiver) -> None:
    receiver.drain()
    with app.app_context():
        total = db.session.scalar(select(func.count(Event.id)))
        delivered = db.session.scalar(select(func.count(WebhookDelivery.id))
                                      .where(WebhookDelivery.status == DeliveryStatus.DELIVERED))
    duplicates = sum(1 for arrivals in receiver.seen.values() if len(arrivals) > 1)
    print(f"check: {total} events, {delivered} deliveries marked delivered, "
          f"{len(receiver.seen)} distinct ids received, {duplicates} received twice")
    if delivered != total or len(receiver.seen) != total or duplicates:
        raise SystemExit("the deliveries do not match the events")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=TARGET_PER_SECOND)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=None,
                        help="seconds a worker waits when the queue is empty (outbox work --interval; "
                             "default: MAIL_WORKER_INTERVAL's)")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432"))
    options = parser.parse_args()
    url = database_url(options.pg_url)
    receiver = Receiver()
    organisation_ids = prepare(url, receiver.port)
    app = create_app(bench_config(url, WEBHOOKS_ALLOW_LOCAL=True, WEBHOOKS_HTTPS_ONLY=False))
    workers = start_workers(url, options.interval)
    try:
        time.sleep(3)  # the workers' start-up (imports, first connection)
        event_ids, committed = backlog(app, organisation_ids, options.backlog)
        last = receiver.wait_for(event_ids, timeout=options.backlog / 20 + 60)
        rate = len(event_ids) / (last - committed)
        started = time.time()
        commits = steady_consumptions(app, organisation_ids, options.rate, options.seconds)
        achieved = len(commits) / (max(commits.values()) - started)
        receiver.wait_for(set(commits), timeout=120)
        delays = [receiver.seen[event_id][0] - at for event_id, at in commits.items()]
        time.sleep(1)
        check_ledger(app, receiver)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
        receiver.stop()
    p95 = percentile(delays, 0.95)
    print(f"\nWebhooks, PostgreSQL, {WORKERS} `outbox work` processes, receiver on 127.0.0.1:")
    print(f"  backlog of {len(event_ids)} events delivered at {rate:.0f}/s "
          f"(target ≥ {TARGET_PER_SECOND:.0f}/s): {'OK' if rate >= TARGET_PER_SECOND else 'MISSED'}")
    print(f"  commit → delivery at {achieved:.0f} consumptions/s over {options.seconds:.0f} s "
          f"({len(delays)} events): median {percentile(delays, 0.5):.2f} s, p95 {p95:.2f} s, "
          f"max {max(delays):.2f} s (target p95 ≤ {TARGET_P95_SECONDS:.0f} s): "
          f"{'OK' if p95 <= TARGET_P95_SECONDS else 'MISSED'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
