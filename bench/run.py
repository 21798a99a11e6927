"""`make bench`: the performance table of issue 9, on SQLite and PostgreSQL, small and large.

    .venv/bin/python -m bench.run [--databases sqlite,postgresql] [--scales small,large]
                                  [--requests 50] [--only pages,peer,throughput,close,decisions]
                                  [--peer-block 10]
                                  [--regenerate] [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432]

Datasets are generated once (bench/generate.py) and kept: SQLite files in instance/bench/, and
the PostgreSQL databases bench_small and bench_large; --regenerate rebuilds them (dates are
relative to the generation day). The monthly-close and decision datasets are rebuilt every run
(instance/bench/monthly.db, bench_monthly, bench_decisions). Run it on a quiet machine: the
figures are wall-clock times.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from . import jobs, pages
from .bulk import database_exists, ensure_indexes, missing_columns
from .generate import fixtures, generate
from .peer import create_peer_app, peer_urls
from .throughput import measure_throughput

ROOT = Path(__file__).resolve().parent.parent
SQLITE_DIR = ROOT / "instance" / "bench"
PAGE_P95_MS = 50.0
PEER_SPEEDUP = 3.0
THROUGHPUT_SHARE = 0.30
CLOSE_SECONDS, CLOSE_MB, CLOSE_GROWTH = 60.0, 300.0, 2.2
DECISIONS_PER_SECOND = 100.0
DATABASES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def database_url(database: str, name: str, pg_url: str) -> str:
    if database == "sqlite":
        return f"sqlite:///{SQLITE_DIR / f'{name}.db'}"
    return f"{pg_url.rstrip('/')}/bench_{name}"


def prepare(url: str, scale: str, regenerate: bool) -> None:
    missing = missing_columns(url) if not regenerate and database_exists(url) else []
    if missing:
        print(f"  {url} date d'avant les colonnes {', '.join(missing)} : générée à nouveau", flush=True)
    if regenerate or missing or not database_exists(url):
        started = time.perf_counter()
        generate(url, scale)
        print(f"  généré {url} ({scale}) en {time.perf_counter() - started:.0f} s", flush=True)
    created = ensure_indexes(url)
    if created:
        print(f"  index ajoutés depuis la génération ({url}) : {', '.join(created)}", flush=True)


def run_peer(url: str, requests: int, block: int = pages.IN_TURN_BLOCK
             ) -> dict[str, tuple[pages.Timing, pages.Timing]]:
    """Each of our compared pages (PEER_PAIRS) and the peer's, requested in alternating blocks:
    (peer, ours)."""
    from portal.extensions import db

    app = create_peer_app(url)
    client = app.test_client()
    with app.app_context():
        counter = pages.QueryCounter(db.engine)
    ours = pages.signed_in(url)
    our_pages = {label: (ours.clients[who], path, ours.counter) for label, who, path, _ in ours.urls}
    results = {}
    for label, path in peer_urls(app, pages.NAME_TERM).items():
        # The peer must find rows too, or its timings would be those of an empty list.
        if "There are no items in the table." in client.get(path).get_data(as_text=True):
            raise RuntimeError(f"peer {label}: {path} found nothing")
        for mine_label in PEER_PAIRS.get(label, (label,)):
            results[mine_label] = pages.measure_in_turn((client, path, counter), our_pages[mine_label],
                                                        requests, block=block)
    ours.close()
    with app.app_context():
        db.engine.dispose()
    return results


class Table:
    """One table: a row per measure, a column per database and scale, the target and verdict."""

    def __init__(self, columns: list[tuple[str, str]]) -> None:
        self.columns = columns
        self.rows: list[tuple[str, dict, str, str]] = []

    def add(self, label: str, cells: dict, target: str, verdict: str) -> None:
        self.rows.append((label, cells, target, verdict))

    def print(self) -> None:
        heads = ["Mesure"] + [f"{DATABASES[d]} {s}" for d, s in self.columns] + ["Cible", "Verdict"]
        lines = [[label] + [cells.get(c, "—") for c in self.columns] + [target, verdict]
                 for label, cells, target, verdict in self.rows]
        widths = [max(len(str(row[i])) for row in [heads, *lines]) for i in range(len(heads))]
        rule = "-+-".join("-" * width for width in widths)
        print("\n" + " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)))
        print(rule)
        for line in lines:
            print(" | ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)))


def verdict(missed: list[str]) -> str:
    """A row's verdict: OK, or what missed the target."""
    return "OK" if not missed else "MANQUÉ : " + ", ".join(missed)


def page_rows(table: Table, results: dict, databases: list[str], scales: list[str]) -> None:
    labels = next(iter(results.values())).keys() if results else []
    for label in labels:
        cells, misses = {}, []
        for database in databases:
            for scale in scales:
                timing = results.get((database, scale), {}).get(label)
                if timing is None:
                    continue
                cells[(database, scale)] = f"{timing.median_ms:.1f}/{timing.p95_ms:.1f} ms {timing.queries}q"
                if scale == "large" and timing.p95_ms > PAGE_P95_MS:
                    misses.append(f"p95 {DATABASES[database]}")
            counts = {results[(database, s)][label].queries for s in scales if (database, s) in results}
            if len(counts) > 1:
                misses.append(f"requêtes {DATABASES[database]} {sorted(counts)}")
        table.add(label, cells, f"p95 ≤ {PAGE_P95_MS:.0f} ms, q small = large", verdict(misses))


def peer_rows(table: Table, peers: dict, scales: list[str]) -> None:
    """One row per compared page: our speed-up (peer ÷ ours) and both medians, measured in turn."""
    labels = {}
    for compared in peers.values():
        labels.update(dict.fromkeys(compared))
    for label in labels:
        cells, misses = {}, []
        for key, compared in peers.items():
            peer, mine = compared[label]
            speedup = peer.median_ms / mine.median_ms
            cells[key] = (f"×{speedup:.1f} (pair {peer.median_ms:.0f} ms {peer.queries}q, "
                          f"nous {mine.median_ms:.1f} ms)")
            if key[1] == scales[-1] and speedup < PEER_SPEEDUP:
                misses.append(DATABASES[key[0]])
        table.add(f"Pair ÷ nous : {label}", cells, f"≥ ×{PEER_SPEEDUP:.0f} ({scales[-1]})",
                  verdict(misses))


# Our pages compared with one peer page (the name search: the results page and the suggestions).
PEER_PAIRS = {"Recherche : nom": ("Recherche : nom", "Suggestions : nom")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--scales", default="small,large")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--only", default="pages,peer,throughput,close,decisions")
    parser.add_argument("--peer-block", type=int, default=pages.IN_TURN_BLOCK,
                        help="requêtes d’une même page à la suite, quand la nôtre et celle du pair alternent")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432"))
    parser.add_argument("--close-quotes", type=int, default=100_000)
    parser.add_argument("--close-organisations", type=int, default=10_000)
    args = parser.parse_args()
    databases, scales = args.databases.split(","), args.scales.split(",")
    parts = set(args.only.split(","))
    columns = [(database, scale) for database in databases for scale in scales]
    table = Table(columns)
    started = time.perf_counter()

    ours, peers, found = {}, {}, {}
    for database, scale in columns:
        url = database_url(database, scale, args.pg_url)
        print(f"{DATABASES[database]} {scale} : {url}", flush=True)
        prepare(url, scale, args.regenerate)
        found[(database, scale)] = fixtures(url)
        if "pages" in parts:
            ours[(database, scale)] = pages.run_pages(url, args.requests)
        if "peer" in parts:
            peers[(database, scale)] = run_peer(url, args.requests, args.peer_block)
    page_rows(table, ours, databases, scales)
    peer_rows(table, peers, scales)

    big = "large" if "large" in scales else scales[-1]
    if "throughput" in parts:
        cells, missed = {}, []
        for database in databases:
            print(f"débit sous gunicorn : {DATABASES[database]} {big}", flush=True)
            url = database_url(database, big, args.pg_url)
            result = measure_throughput(url, found[(database, big)]["quote_id"])
            cells[(database, big)] = (f"{result['ratio']:.1%} ({result['page_rps']:.0f}/"
                                      f"{result['health_rps']:.0f} req/s, {result['tool']})")
            if result["ratio"] < THROUGHPUT_SHARE:
                missed.append(DATABASES[database])
        table.add("Débit devis 30 lignes ÷ /healthz (gunicorn 2w)", cells,
                  f"≥ {THROUGHPUT_SHARE:.0%}", verdict(missed))

    if "close" in parts:
        full, half = args.close_quotes, args.close_quotes // 2
        cells_time, cells_growth, missed_time, missed_growth = {}, {}, [], []
        for database in databases:
            print(f"clôture mensuelle : {DATABASES[database]}", flush=True)
            url = database_url(database, "monthly", args.pg_url)
            small = jobs.measure_close(url, args.close_organisations // 2, half)
            large = jobs.measure_close(url, args.close_organisations, full)
            growth = large["seconds"] / small["seconds"]
            cells_time[(database, big)] = (f"{large['seconds']:.0f} s (CPU {large['cpu_seconds']:.0f} s), "
                                           f"{large['peak_rss_mb']:.0f} Mo")
            cells_growth[(database, big)] = (f"×{growth:.2f} ({small['seconds']:.0f} s → "
                                             f"{large['seconds']:.0f} s)")
            if large["seconds"] > CLOSE_SECONDS or large["peak_rss_mb"] > CLOSE_MB:
                missed_time.append(DATABASES[database])
            if growth > CLOSE_GROWTH:
                missed_growth.append(DATABASES[database])
        table.add(f"Clôture mensuelle {full:,} devis".replace(",", " "), cells_time,
                  f"≤ {CLOSE_SECONDS:.0f} s, ≤ {CLOSE_MB:.0f} Mo", verdict(missed_time))
        table.add(f"Clôture {full:,} ÷ {half:,} devis".replace(",", " "), cells_growth,
                  f"≤ ×{CLOSE_GROWTH}", verdict(missed_growth))

    if "decisions" in parts and "postgresql" in databases:
        print("décisions concurrentes : PostgreSQL", flush=True)
        result = jobs.measure_decisions(database_url("postgresql", "decisions", args.pg_url), 8, 1600)
        table.add("Décisions concurrentes (8 processus)",
                  {("postgresql", big): f"{result['per_second']:.0f}/s ({result['decisions']} en "
                                        f"{result['seconds']:.1f} s)"},
                  f"≥ {DECISIONS_PER_SECOND:.0f}/s",
                  verdict([] if result["per_second"] >= DECISIONS_PER_SECOND else ["PostgreSQL"]))

    table.print()
    peer_note = f"pair et nous alternés par blocs de {args.peer_block} ; " if "peer" in parts else ""
    print(f"\n(médiane/p95 de {args.requests} requêtes, nq = requêtes SQL par page ; {peer_note}"
          f"{os.cpu_count()} cœurs ; {time.perf_counter() - started:.0f} s au total)")


if __name__ == "__main__":
    main()
