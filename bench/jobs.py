"""Jobs at scale: the monthly close of N accepted monthly quotes (time and peak memory, measured
in a fresh process), and concurrent decisions (8 processes accepting distinct per-order quotes,
each issuing a numbered invoice) on PostgreSQL.

    .venv/bin/python -m bench.jobs close --database-url URL --quotes 100000 --organisations 10000
    .venv/bin/python -m bench.jobs decisions --database-url URL [--workers 8] [--quotes 1600]

Without --quotes, each job takes the size `make bench` measures: 100,000 quotes to close, 1,600 to
accept.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from portal.models import utcnow
from portal.money import vat_cents

from . import names
from .bulk import Writer, bench_config, day, recreate_database, ts
from .ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent


class JobData(Ledger):
    """Organisations with their three users, and quotes in one status, nothing else."""

    def __init__(self, url: str, seed: int = 7) -> None:
        self.writer = Writer(url, names.COLUMNS)
        super().__init__(self.writer, random.Random(seed), utcnow().replace(microsecond=0))
        self.ids: dict[str, int] = {}
        self.staff = [1, 2, 3]
        self.quote_numbers = 0

    def next_id(self, table: str) -> int:
        self.ids[table] = self.ids.get(table, 0) + 1
        return self.ids[table]

    def base(self) -> None:
        self.seller_settings()
        for user_id in self.staff:
            self.w.add("user", (self.next_id("user"), f"staff{user_id}@portail-devis.fr", "Staff",
                                "staff", "admin", None, None, names.PASSWORD_HASH, True, ts(self.now)))
        published = self.now - timedelta(days=400)
        self.w.add("terms_version", (1, "2025-01", names.TERMS_BODY, "0" * 64, ts(published),
                                     ts(published)))
        self.products = [product for product in names.products() if product.published]
        for product in names.products():
            self.w.add("product", product.row())

    def organisation(self, mode: str) -> tuple[int, tuple[int, int, int]]:
        org_id = self.next_id("organisation")
        siren = f"{400_000_000 + org_id:09d}"
        self.w.add("organisation", (
            org_id, f"Client Banc {org_id}", "SAS", siren, siren + "00012", f"FR00{siren}",
            "1 rue du Banc", None, "75001", "Paris", "FR", None, mode, 30, False, None, None,
            ts(self.now - timedelta(days=500))))
        users = []
        for role in ("responsable", "gestionnaire", "membre"):
            user_id = self.next_id("user")
            users.append(user_id)
            self.w.add("user", (user_id, f"{role}.{user_id}@client{org_id}.example", f"Client {user_id}",
                                "client", None, role, org_id, names.PASSWORD_HASH, True, ts(self.now)))
        return org_id, tuple(users)

    def quote(self, org_id: int, users, *, status: str, mode: str, sent_at: datetime,
              decided_at: datetime | None, period: str | None, lines: int) -> int:
        quote_id = self.next_id("quote")
        self.quote_numbers += 1
        number = f"DV-{sent_at.year}-{self.quote_numbers:05d}"
        ht_total = vat_total = credits = 0
        for position in range(1, lines + 1):
            product = self.rng.choice(self.products)
            quantity = self.rng.randint(1, 5)
            ht = quantity * product.price
            vat = vat_cents(ht, product.vat)
            ht_total, vat_total = ht_total + ht, vat_total + vat
            credits += quantity * product.credits
            self.w.add("quote_line", (self.next_id("quote_line"), quote_id, position, product.id,
                                      product.name, quantity, product.price, product.vat,
                                      product.credits, ht, vat))
        valid_until = (sent_at + timedelta(days=30)).date()
        self.w.add("quote", (
            quote_id, org_id, number, 1, "Commande", status, users[1], self.staff[0], None, None, None,
            day(valid_until), mode, ht_total, vat_total, ht_total + vat_total, credits, period, None, 0,
            ts(sent_at - timedelta(hours=1)), ts(sent_at), ts(decided_at)))
        return quote_id

    def close(self) -> None:
        self.w.add("number_counter", ("DV", self.now.year, self.quote_numbers))
        self.writer.close()


def build_monthly_close(url: str, organisations: int, quotes: int, period: str) -> None:
    """`quotes` accepted monthly quotes of `period`, spread evenly over `organisations`."""
    recreate_database(url)
    data = JobData(url)
    data.base()
    first = datetime.strptime(period + "-01", "%Y-%m-%d")
    per_org, extra = divmod(quotes, organisations)
    for index in range(organisations):
        org_id, users = data.organisation("monthly")
        for _ in range(per_org + (1 if index < extra else 0)):
            decided = first + timedelta(days=data.rng.uniform(1, 26), hours=8)
            data.quote(org_id, users, status="accepted", mode="monthly", sent_at=decided - timedelta(days=1),
                       decided_at=decided, period=period, lines=data.rng.randint(1, 3))
    data.close()


def build_decisions(url: str, organisations: int, quotes: int) -> list[tuple[int, int]]:
    """Sent per-order quotes, valid for a month; returns (quote id, recipient id) pairs."""
    recreate_database(url)
    data = JobData(url)
    data.base()
    owners = [data.organisation("per_order") for _ in range(organisations)]
    pending = []
    for index in range(quotes):
        org_id, users = owners[index % organisations]
        quote_id = data.quote(org_id, users, status="sent", mode="per_order",
                              sent_at=data.now - timedelta(hours=2), decided_at=None, period=None,
                              lines=3)
        pending.append((quote_id, users[1]))
    data.close()
    return pending


# --- Monthly close, measured in a fresh process ---------------------------------------------------


def _close_in_this_process(url: str, period: str) -> dict:
    from portal import create_app, monthly
    from portal.extensions import db

    app = create_app(bench_config(url))
    with app.app_context():
        started, cpu = time.perf_counter(), time.process_time()
        summary = monthly.close_month(period)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        db.engine.dispose()
    return {"seconds": elapsed, "cpu_seconds": cpu, "invoices": len(summary.invoices),
            "failures": len(summary.failures), "peak_rss_mb": _peak_rss_kib() / 1024}


def _peak_rss_kib() -> int:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: the latter keeps,
    across fork and exec, the parent's peak (here, the generator's)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def measure_close(url: str, organisations: int, quotes: int) -> dict:
    """Build the dataset, then run the close in a child process; returns its report."""
    from portal.monthly import previous_period

    period = previous_period()
    build_monthly_close(url, organisations, quotes, period)
    output = subprocess.run(
        [sys.executable, "-m", "bench.jobs", "close-only", "--database-url", url, "--period", period],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    report = json.loads(output.strip().splitlines()[-1])
    report.update(quotes=quotes, organisations=organisations)
    if report["invoices"] != organisations or report["failures"]:
        raise RuntimeError(f"monthly close billed {report['invoices']} of {organisations}: {report}")
    return report


# --- Concurrent decisions ---------------------------------------------------------------------------


def _decide(url: str, work: list[tuple[int, int]], barrier, results) -> None:
    from portal import auth, create_app, quotes
    from portal.extensions import db
    from portal.models import Channel, TermsVersion

    app = create_app(bench_config(url))
    with app.app_context():
        db.session.get(TermsVersion, 1)  # connect and warm up before the start
        db.session.rollback()
        barrier.wait()
        started = time.perf_counter()
        done = 0
        for quote_id, user_id in work:  # what the portal's Valider does, minus the HTTP
            client = db.session.scalars(auth.CLIENT_BY_ID, {"user_id": user_id}).one()
            quote, in_force = quotes.quote_with_current_terms(quote_id)
            quotes.accept(quote, actor=client, terms_version=in_force, channel=Channel.PORTAL)
            db.session.commit()
            done += 1
        results.put((started, time.perf_counter(), done))
        db.engine.dispose()


def measure_decisions(url: str, workers: int, quotes: int, organisations: int = 200) -> dict:
    """`workers` processes accept `quotes` distinct quotes at once; decisions per second."""
    from sqlalchemy import create_engine, text

    pending = build_decisions(url, organisations, quotes)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=_decide, args=(url, pending[index::workers], barrier, results))
                 for index in range(workers)]
    for process in processes:
        process.start()
    reports = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(60)
    starts, ends, done = zip(*reports, strict=True)
    elapsed = max(ends) - min(starts)
    engine = create_engine(url)
    with engine.connect() as connection:
        numbers = connection.execute(text("SELECT number FROM invoice ORDER BY number")).scalars().all()
    engine.dispose()
    expected = [f"FA-{numbers[0][3:7]}-{n:05d}" for n in range(1, len(numbers) + 1)] if numbers else []
    if sum(done) != quotes or numbers != expected:
        raise RuntimeError("concurrent decisions: missing decisions or invoice numbers with gaps")
    return {"decisions": sum(done), "seconds": elapsed, "per_second": sum(done) / elapsed,
            "workers": workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=("close", "close-only", "decisions"))
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--period")
    parser.add_argument("--quotes", type=int)
    parser.add_argument("--organisations", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    if args.job == "close-only":
        print(json.dumps(_close_in_this_process(args.database_url, args.period)))
    elif args.job == "close":
        print(json.dumps(measure_close(args.database_url, args.organisations, args.quotes or 100_000)))
    else:
        print(json.dumps(measure_decisions(args.database_url, args.workers, args.quotes or 1_600)))


if __name__ == "__main__":
    main()
