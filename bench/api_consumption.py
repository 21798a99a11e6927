"""Credit consumptions through the platform API under load (issue « Credits the platform can
consume », point 10). Targets: ≥ 300 consumptions per second, p99 ≤ 50 ms.

PostgreSQL only (the database bench_api of BENCH_PG_URL, rebuilt every run): 100 organisations,
each with a large balance and `--history` past consumptions (the ledger a busy platform leaves),
one API key holding credits:consume. The app is served by gunicorn on a free 127.0.0.1 port with 2
sync workers, as bench/throughput.py does on this 2-core machine; rate limits on, their counters in
Redis as in production (127.0.0.1:6379, else in memory), the per-key API limit raised
(RATELIMIT_API) so that the one key is never refused. `--clients` clients (threads spread over a
few processes, so that the load does not share one interpreter) each POST consumptions of 1
credit, each with its own Idempotency-Key, to an organisation drawn at random:

1. flat out, for `--seconds` after a warm-up: the rate the app sustains, and the latency then (with
   16 callers always waiting, latency is 16 ÷ rate: below 50 ms only beyond 320/s); and the CPU
   time a consumption costs gunicorn and PostgreSQL (from /proc), which bounds the rate on this
   machine's cores however busy other processes keep them;
2. at `--rate` (the target, 300/s, by default) over the same clients, each on its own schedule,
   for `--seconds`: the latency a caller sees at that load, timed from when each call was due (a
   late call counts its wait; a rate the app does not sustain shows as such).

Then the ledger is checked against the answers: one entry and one idempotency key per 201, no other
answer, every balance what its 201s left, and the balance stored on each organisation the sum of
its ledger.

    .venv/bin/python -m bench.api_consumption [--seconds 15] [--clients 16] [--rate 300]
                                              [--history 1000] [--workers 2]
                                              [--pg-url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import socket
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from portal import api_keys, create_app, credits
from portal.extensions import db
from portal.models import ApiIdempotencyKey, CreditEntry, CreditEntryKind, Organisation

from .bulk import RECOMPUTE_CREDIT_BALANCES, bench_config, recreate_database
from .pages import percentile
from .pdf_burst import serving

ORGANISATIONS = 100
INITIAL_BALANCE = 1_000_000
WORKERS = 2  # bench/throughput.py's choice on this 2-core machine
PROCESSES = 4  # the clients' processes; the clients are threads spread over them
WARM_UP_SECONDS = 3.0
REQUEST_CAP = 200_000  # per client process and phase: the load stops by itself whatever happens
TARGET_PER_SECOND, TARGET_P99_MS = 300.0, 50.0
# The one key must not be throttled: the default (6000 per minute) is below the target rate.
RATELIMIT_API = "1000000 per minute"
REDIS = ("127.0.0.1", 6379)


def database_url(pg_url: str) -> str:
    """The bench's own database on the server `pg_url`."""
    return f"{pg_url.rstrip('/')}/bench_api"


def prepare(url: str, history: int) -> tuple[list[int], str, int]:
    """A fresh bench_api: the organisations with their balance and history, and the key.
    Returns (organisation ids, the key's secret, the key's id)."""
    recreate_database(url)
    app = create_app(bench_config(url))
    with app.app_context():
        organisations = [Organisation(name=f"Plateforme {n:03d}", external_id=f"plat-{n:03d}")
                         for n in range(1, ORGANISATIONS + 1)]
        db.session.add_all(organisations)
        key, secret = api_keys.create_key("banc", ["credits:read", "credits:consume"], actor=None)
        for organisation in organisations:
            credits.adjust_credits(organisation, INITIAL_BALANCE, actor=None, api_key=key,
                                   reason="Solde du banc")
        # The history interleaves the organisations, as a day of consumptions does; written with
        # the triggers off (the balance trigger would update each organisation a thousand times),
        # the balances then summed once.
        db.session.execute(text("SET LOCAL session_replication_role = replica"))
        db.session.execute(text(
            "INSERT INTO credit_entry (organisation_id, kind, amount, reason, created_at)"
            " SELECT o.id, 'consumption', -1, 'Historique', now() - interval '1 day'"
            " FROM generate_series(1, :history) CROSS JOIN organisation o"), {"history": history})
        db.session.execute(text(RECOMPUTE_CREDIT_BALANCES))
        db.session.commit()
        ids, key_id = [organisation.id for organisation in organisations], key.id
        db.engine.dispose()
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql("VACUUM (ANALYZE)")
    engine.dispose()
    return ids, secret, key_id


def limit_storage() -> str:
    """Redis as in production when it answers here, else the workers' memory."""
    try:
        socket.create_connection(REDIS, timeout=1).close()
    except OSError:
        return "memory://"
    return f"redis://{REDIS[0]}:{REDIS[1]}/14"


@dataclass
class Tally:
    """What clients saw: the measured latencies (ms) and answers, every answer (warm-up included),
    and every 201 per organisation."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    answers: Counter = field(default_factory=Counter)
    created: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.latencies += other.latencies
        self.statuses.update(other.statuses)
        self.answers.update(other.answers)
        self.created.update(other.created)
        self.errors += other.errors


def consume(connection: http.client.HTTPConnection, secret: str, organisation_id: int) -> tuple[int, bytes]:
    """POST one consumption of 1 credit with a new Idempotency-Key: (status, body); 0 if it failed."""
    body = json.dumps({"amount": 1, "reference": f"analyse-{uuid.uuid4().hex[:12]}"})
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": uuid.uuid4().hex,
               "Content-Type": "application/json"}
    try:
        connection.request("POST", f"/api/v1/organisations/{organisation_id}/credits/consumptions",
                           body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        if response.getheader("Connection", "").lower() == "close":
            connection.close()  # gunicorn's sync workers close after each response
        return response.status, answer
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        return 0, repr(error).encode()


def client_process(port: int, secret: str, organisation_ids: list[int], threads: int,
                   interval: float, measure_from: float, until: float, results) -> None:
    """`threads` clients, each on its own connection, consuming until `until` (a time.time()):
    flat out (`interval` 0), or each one call every `interval` seconds, timed from when it was due
    (a client behind its schedule calls at once). Calls that end between `measure_from` and `until`
    are measured."""
    tally, lock, sent = Tally(), threading.Lock(), [0]

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        chooser = random.Random()
        due = time.time() + chooser.uniform(0, interval)
        while time.time() < until and sent[0] < REQUEST_CAP:
            if interval:
                time.sleep(max(0.0, due - time.time()))
            started = due if interval else time.time()
            organisation_id = chooser.choice(organisation_ids)
            status, answer = consume(connection, secret, organisation_id)
            ended = time.time()
            due = due + interval if interval else ended
            with lock:
                sent[0] += 1
                tally.answers[status] += 1
                if status == 201:
                    tally.created[organisation_id] += 1
                elif len(tally.errors) < 5:
                    tally.errors.append(f"{status}: {answer[:300]!r}")
                if measure_from <= ended < until:
                    tally.statuses[status] += 1
                    tally.latencies.append((ended - started) * 1000)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(tally)


def run_load(port: int, secret: str, organisation_ids: list[int], clients: int, seconds: float,
             rate: float | None = None) -> Tally:
    """The clients over PROCESSES processes, flat out or at `rate` calls per second all together:
    a warm-up, then `seconds` measured; their tallies merged."""
    context = multiprocessing.get_context("fork")  # cheap to start: the clients import nothing
    results = context.Queue()
    processes = min(PROCESSES, clients)
    shares = [clients // processes + (index < clients % processes) for index in range(processes)]
    interval = clients / rate if rate else 0.0
    measure_from = time.time() + WARM_UP_SECONDS
    until = measure_from + seconds
    loaders = [context.Process(target=client_process, args=(port, secret, organisation_ids, share,
                                                            interval, measure_from, until, results))
               for share in shares]
    for loader in loaders:
        loader.start()
    merged = Tally()
    try:
        for _ in loaders:
            merged.add(results.get(timeout=seconds + 120))
    finally:
        for loader in loaders:
            loader.join(30)
            if loader.is_alive():
                loader.kill()
    return merged


def check_ledger(url: str, key_id: int, history: int, created: Counter) -> list[str]:
    """Disagreements between the ledger and the 201s per organisation (none expected)."""
    problems = []
    app = create_app(bench_config(url))
    with app.app_context():
        consumed = dict(db.session.execute(
            select(CreditEntry.organisation_id, func.count())
            .where(CreditEntry.kind == CreditEntryKind.CONSUMPTION, CreditEntry.api_key_id == key_id)
            .group_by(CreditEntry.organisation_id)).all())
        balances = dict(db.session.execute(
            select(CreditEntry.organisation_id, func.sum(CreditEntry.amount))
            .group_by(CreditEntry.organisation_id)).all())
        stored = dict(db.session.execute(select(Organisation.id, Organisation.credit_balance)).all())
        keys = db.session.scalar(select(func.count()).select_from(ApiIdempotencyKey))
        db.engine.dispose()
    total = sum(created.values())
    if sum(consumed.values()) != total:
        problems.append(f"{sum(consumed.values())} écritures pour {total} réponses 201")
    if keys != total:
        problems.append(f"{keys} clés d'idempotence pour {total} réponses 201")
    for organisation_id, balance in balances.items():
        expected = INITIAL_BALANCE - history - created[organisation_id]
        if consumed.get(organisation_id, 0) != created[organisation_id] or balance != expected:
            problems.append(f"organisation {organisation_id} : {consumed.get(organisation_id, 0)} "
                            f"écritures, solde {balance} ; {created[organisation_id]} réponses 201, "
                            f"solde attendu {expected}")
        if stored.get(organisation_id) != balance:
            problems.append(f"organisation {organisation_id} : solde enregistré "
                            f"{stored.get(organisation_id)}, somme du grand livre {balance}")
    return problems


def server_pids(url: str, port: int) -> tuple[list[int], list[int]]:
    """gunicorn's processes (those started with this port), and the database's backends for them."""
    marker = f"127.0.0.1:{port}".encode()
    gunicorn = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()
                and marker in _read(entry / "cmdline")]
    engine = create_engine(url)
    with engine.connect() as connection:
        backends = connection.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = "
                                           "current_database() AND pid <> pg_backend_pid()")).all()
    engine.dispose()
    return gunicorn, list(backends)


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time used so far by the processes `pids` (Linux: /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        fields = _read(Path(f"/proc/{pid}/stat")).rsplit(b")", 1)[-1].split()
        total += int(fields[11]) + int(fields[12]) if len(fields) > 12 else 0
    return total / os.sysconf("SC_CLK_TCK")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # gone meanwhile
        return b""


def verdict(ok: bool) -> str:
    return "OK" if ok else "MANQUÉ"


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def report(label: str, tally: Tally, seconds: float) -> tuple[float, float]:
    """Print a phase's rate and latencies; returns (consumptions per second, p99)."""
    rate = tally.statuses[201] / seconds
    p50, p99 = statistics.median(tally.latencies), percentile(tally.latencies, 0.99)
    print(f"  {label} : {rate:5.0f} consommations/s, latence p50 {p50:6.1f} ms, p99 {p99:7.1f} ms "
          f"(charge {load_average()})", flush=True)
    return rate, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured, per phase")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate", type=float, default=TARGET_PER_SECOND, help="of the paced phase")
    parser.add_argument("--history", type=int, default=1000, help="past consumptions per organisation")
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    url = database_url(args.pg_url)
    started = time.perf_counter()
    organisation_ids, secret, key_id = prepare(url, args.history)
    storage = limit_storage()
    print(f"Consommations par l'API — PostgreSQL ({url.rsplit('/', 1)[1]}, prête en "
          f"{time.perf_counter() - started:.0f} s) : {ORGANISATIONS} organisations, "
          f"{args.history} consommations passées chacune ; gunicorn {args.workers} workers sync, "
          f"limites actives (compteurs {storage.split(':')[0]}, RATELIMIT_API={RATELIMIT_API}) ; "
          f"{args.clients} clients, {WARM_UP_SECONDS:g} s de chauffe puis {args.seconds:g} s mesurées "
          f"par phase ; charge de la machine (1, 5, 15 min) : {load_average()}", flush=True)
    os.environ["RATELIMIT_API"] = RATELIMIT_API  # serving() hands os.environ to the server
    with serving(url, limits=True, workers=args.workers, storage=storage) as port:
        connected = run_load(port, secret, organisation_ids, args.clients, 0)  # every worker too
        gunicorn, database = server_pids(url, port)
        before = cpu_seconds(gunicorn), cpu_seconds(database)
        flat_out = run_load(port, secret, organisation_ids, args.clients, args.seconds)
        calls = sum(flat_out.answers.values())
        app_cpu, database_cpu = ((cpu_seconds(pids) - used) / calls
                                 for pids, used in zip((gunicorn, database), before, strict=True))
        cpu = app_cpu + database_cpu
        rate, flat_p99 = report("sans pause", flat_out, args.seconds)
        print(f"    CPU par consommation : {cpu * 1000:.1f} ms (gunicorn {app_cpu * 1000:.1f}, PostgreSQL "
              f"{database_cpu * 1000:.1f}), soit au plus {(os.cpu_count() or 1) / cpu:.0f}/s sur les "
              f"{os.cpu_count()} cœurs de la machine")
        paced = run_load(port, secret, organisation_ids, args.clients, args.seconds, rate=args.rate)
        paced_rate, paced_p99 = report(f"à {args.rate:g}/s offerts", paced, args.seconds)
    sustained = paced_rate >= 0.95 * args.rate
    print(f"  débit sans pause ≥ {TARGET_PER_SECOND:g}/s : {verdict(rate >= TARGET_PER_SECOND)} ; "
          f"p99 ≤ {TARGET_P99_MS:g} ms sans pause : {verdict(flat_p99 <= TARGET_P99_MS)}, à "
          f"{args.rate:g}/s : {verdict(sustained and paced_p99 <= TARGET_P99_MS)}"
          + ("" if sustained else f" (rythme non tenu : {paced_rate:.0f}/s servies)"))
    both = Tally()
    for phase in (connected, flat_out, paced):
        both.add(phase)
    problems = check_ledger(url, key_id, args.history, both.created)
    others = {status: count for status, count in both.answers.items() if status != 201}
    if others:
        problems.append(f"réponses autres que 201 : {others} ; {both.errors}")
    print(f"  grand livre : {sum(both.created.values())} réponses 201 (chauffes comprises) ; "
          f"écritures, clés d'idempotence et soldes conformes : {verdict(not problems)}", flush=True)
    for problem in problems[:10]:
        print(f"    {problem}")
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
