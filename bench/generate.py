"""Generate a benchmark dataset into SQLite or PostgreSQL, fast (bulk inserts, not the ORM).

    .venv/bin/python -m bench.generate --database-url URL [--scale large|small]

large: 20,000 organisations, 60,000 client users, 500,000 quotes (~1,500,000 lines) in every
status, ~300,000 invoices and credit notes (per-order accepted quotes and organisation-months of
monthly clients, numbered per year in issue order), their payments, ~500,000 credit entries,
decisions, quote requests and the audit events of all of it; small: the same shapes at 1/100.
Both also hold the fixtures the benchmark looks up by name: an organisation with exactly 500
quotes (`BENCH_ORGANISATION`) and, among them, a sent quote with 30 lines (`BENCH_QUOTE_TITLE`).
The schema is the models' (`create_all`, see bench/bulk.py); the database is recreated.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from portal.dates import paris_today
from portal.models import quote_reference, utcnow
from portal.money import vat_cents

from . import names
from .bulk import Writer, as_json, day, recreate_database, ts
from .ledger import Ledger

SCALES = {
    "large": {"organisations": 20_000, "quotes": 500_000, "credit_entries": 500_000},
    "small": {"organisations": 200, "quotes": 5_000, "credit_entries": 5_000},
}
SPECIAL_QUOTES = 500
SPECIAL_LINES = 30
BENCH_ORGANISATION = "Banc d'Essai 500 Devis SAS"
BENCH_QUOTE_TITLE = "Devis de banc, 30 lignes"
BENCH_STAFF_EMAIL = "banc.staff@portail-devis.fr"
BENCH_CLIENT_EMAIL = "gestionnaire@banc-500-devis.example"
SPAN_DAYS = 3 * 365
MONTHLY_SHARE = 0.15
RECENT_STATUSES = (("sent", 55), ("accepted", 25), ("refused", 5), ("draft", 7), ("cancelled", 3),
                   ("superseded", 5))
OLD_STATUSES = (("accepted", 64), ("refused", 11), ("expired", 10), ("cancelled", 4),
                ("superseded", 6), ("draft", 5))


@dataclass
class Org:
    id: int
    billing_mode: str
    mandate: bool
    terms_days: int
    users: tuple[int, int, int]  # responsable, gestionnaire, membre
    buyer_json: str = "{}"
    first_quote: bool = True


class Generator(Ledger):
    """Quotes in chronological order (ids follow time), then invoices numbered in issue order."""

    def __init__(self, writer: Writer, scale: str, seed: int = 2026) -> None:
        super().__init__(writer, random.Random(seed), utcnow().replace(microsecond=0))
        self.sizes = SCALES[scale]
        self.start = self.now - timedelta(days=SPAN_DAYS)
        self.today = paris_today(self.now)
        self.current_period = self.today.strftime("%Y-%m")
        self.status_counts: dict[str, int] = defaultdict(int)
        self.quote_numbers: dict[int, int] = defaultdict(int)
        self.ids: dict[str, int] = defaultdict(int)
        self.billed_quote_rows: dict[int, list] = {}  # monthly quotes, written once invoiced

    def next_id(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    # --- reference data ---------------------------------------------------------------------

    def reference_data(self) -> None:
        self.seller_settings()
        self.staff = [self.next_id("user") for _ in range(20)]
        for index, user_id in enumerate(self.staff):
            email = BENCH_STAFF_EMAIL if index == 0 else f"commercial{index}@portail-devis.fr"
            self.w.add("user", (user_id, email, f"Commercial {index}", "staff",
                                "admin" if index < 3 else "sales", None, None, names.PASSWORD_HASH, True,
                                ts(self.start)))
        self.products = names.products()
        for product in self.products:
            self.w.add("product", product.row())
        v1 = self.start - timedelta(days=1)
        v2 = self.now - timedelta(days=365)
        self.terms = [(1, v1, hashlib.sha256(b"CGV v1").hexdigest(), "2023-01"),
                      (2, v2, hashlib.sha256(b"CGV v2").hexdigest(), "2025-11")]
        for terms_id, published, sha, label in self.terms:
            self.w.add("terms_version", (terms_id, label, names.TERMS_BODY, sha, ts(published),
                                         ts(published)))
            self.next_id("terms_version")

    def organisations(self) -> None:
        rng = self.rng
        count = self.sizes["organisations"]
        self.orgs: list[Org] = []
        for index in range(count):
            org_id = self.next_id("organisation")
            special = index == 0
            mode = "monthly" if not special and rng.random() < MONTHLY_SHARE else "per_order"
            mandate = special or rng.random() < 0.3
            terms_days = 30 if special else rng.choice((0, 15, 30, 30, 30, 45, 60))
            users = tuple(self.next_id("user") for _ in range(3))
            org = Org(org_id, mode, mandate, terms_days, users)
            name, slug, city = ((BENCH_ORGANISATION, "banc-500-devis", "Paris") if special
                                else names.organisation(rng, org_id))
            siren = f"{300_000_000 + org_id * 37:09d}"
            legal_form = rng.choice(("SAS", "SARL", "SA", "EURL"))
            org.buyer_json = as_json({"name": name, "legal_form": legal_form, "siren": siren,
                                      "city": city, "country": "FR"})
            created = self.start - timedelta(days=rng.randint(1, 400))
            billing_email = None if special or rng.random() < 0.5 else f"compta@{slug}.example"
            self.w.add("organisation", (
                org_id, name, legal_form, siren, siren + "00012",
                f"FR{org_id % 97:02d}{siren}", f"{rng.randint(1, 200)} rue {names.street(rng)}",
                None, f"{rng.randint(10, 95)}000", city, "FR", billing_email, mode, terms_days,
                mandate, users[0] if mandate else None,
                ts(created + timedelta(days=3)) if mandate else None, ts(created)))
            roles = ("responsable", "gestionnaire", "membre")
            for role, user_id in zip(roles, users, strict=True):
                email = (BENCH_CLIENT_EMAIL if special and role == "gestionnaire"
                         else f"{role}.{user_id}@{slug}.example")
                self.w.add("user", (user_id, email, names.person(rng), "client", None, role, org_id,
                                    names.PASSWORD_HASH, True, ts(created)))
            self.orgs.append(org)
        self.special = self.orgs[0]
        weights = [1 / (rank + 1) ** 0.5 for rank in range(count - 1)]
        rng.shuffle(weights)
        self._owner_weights = list(_cumulate(weights))

    # --- quotes -----------------------------------------------------------------------------

    def quotes(self) -> None:
        target = self.sizes["quotes"]
        span = (self.now - timedelta(days=2) - self.start).total_seconds()
        special_times = [self.start + timedelta(seconds=span * k / (SPECIAL_QUOTES - 1))
                         for k in range(SPECIAL_QUOTES - 1)]
        owners: list[Org] = []
        count = 0
        while count < target - len(special_times) - 1:
            t = self.start + timedelta(seconds=span * count / target + self.rng.uniform(0, 3600))
            if special_times and special_times[0] <= t:
                special_times.pop(0)
                count += self.quote(self.special, t, allow_revision=False)
                continue
            if not owners:
                owners = self.rng.choices(self.orgs[1:], cum_weights=self._owner_weights, k=50_000)
            room = target - len(special_times) - 1 - count
            count += self.quote(owners.pop(), t, allow_revision=room >= 2)
        for t in special_times:
            count += self.quote(self.special, t, allow_revision=False)
        self.quote(self.special, self.now - timedelta(days=2), allow_revision=False, status="sent",
                   lines=SPECIAL_LINES, title=BENCH_QUOTE_TITLE)

    def quote(self, org: Org, created: datetime, *, allow_revision: bool, status: str | None = None,
              lines: int | None = None, title: str | None = None, supersedes: tuple | None = None) -> int:
        """Write one quote (and its revision if superseded); returns how many quotes were written."""
        rng = self.rng
        quote_id = self.next_id("quote")
        sent_at = min(created + timedelta(seconds=rng.uniform(600, 2 * 86400)), self.now)
        valid_until = paris_today(sent_at) + timedelta(days=30)
        recent = valid_until >= self.today
        if status is None:
            choices = RECENT_STATUSES if recent else OLD_STATUSES
            status = _draw(rng, choices)
            while status == "superseded" and (not allow_revision or supersedes):
                status = _draw(rng, choices)
            if org is self.special and status == "draft" and rng.random() < 0.7:
                status = "accepted"
        creator = rng.choice(self.staff)
        recipient = org.users[1]
        draft = status == "draft"
        request_id = None
        if org.first_quote and not supersedes:
            org.first_quote = False
            request_id = self.quote_request(org, created, answered=True)
        if supersedes:
            number, revision, product_lines, title, _original = supersedes
        else:
            year = paris_today(sent_at).year
            number = None
            if not draft:
                self.quote_numbers[year] += 1
                number = f"DV-{year}-{self.quote_numbers[year]:05d}"
            revision = 1
            product_lines = [(rng.choice(self.products), rng.randint(1, 10))
                             for _ in range(lines or rng.randint(1, 5))]
            title = title or rng.choice(names.QUOTE_TITLES)
        line_rows, totals = self.quote_lines(quote_id, product_lines)
        ht, vat, credits = totals
        decided_at = None
        if status in ("accepted", "refused"):
            decided_at = min(sent_at + timedelta(seconds=rng.uniform(3600, 20 * 86400)), self.now)
        mode = None if draft else org.billing_mode
        billing_period = None
        if status == "accepted" and mode == "monthly":
            billing_period = paris_today(decided_at).strftime("%Y-%m")
        row = (quote_id, org.id, number, revision, title, status, recipient, creator, request_id,
               supersedes[4] if supersedes else None, None, None if draft else day(valid_until), mode,
               ht, vat, ht + vat, credits, billing_period, None, 0, ts(created),
               None if draft else ts(sent_at), ts(decided_at))
        if billing_period is not None and billing_period < self.current_period:
            self.billed_quote_rows[quote_id] = list(row)
        else:
            self.w.add("quote", row)
        self.w.add_many("quote_line", line_rows)
        self.status_counts[status] += 1
        reference = quote_reference(quote_id, number, revision)
        self.quote_events(quote_id, org, status, reference, creator, created, sent_at, decided_at,
                          valid_until, ht + vat, revision)
        if status in ("accepted", "refused"):
            self.decision(quote_id, org, status, decided_at)
        if status == "accepted":
            self.accepted(quote_id, org, reference, decided_at, billing_period, line_rows, credits)
        if status == "superseded":
            revised = sent_at + timedelta(seconds=rng.uniform(3600, 5 * 86400))
            changed = [(product, quantity + 1) for product, quantity in product_lines]
            return 1 + self.quote(org, min(revised, self.now), allow_revision=False,
                                  supersedes=(number, 2, changed, title, quote_id))
        return 1

    def quote_lines(self, quote_id: int, product_lines) -> tuple[list[tuple], tuple[int, int, int]]:
        rows, ht_total, vat_total, credits = [], 0, 0, 0
        for position, (product, quantity) in enumerate(product_lines, start=1):
            ht = quantity * product.price
            vat = vat_cents(ht, product.vat)
            ht_total += ht
            vat_total += vat
            credits += quantity * product.credits
            rows.append((self.next_id("quote_line"), quote_id, position, product.id, product.name,
                         quantity, product.price, product.vat, product.credits, ht, vat))
        return rows, (ht_total, vat_total, credits)

    def quote_events(self, quote_id, org, status, reference, creator, created, sent_at, decided_at,
                     valid_until, ttc, revision) -> None:
        event = self.audit
        event(created, creator, "quote.revised" if revision > 1 else "quote.created", "quote",
              quote_id, org.id, {})
        if status == "draft":
            return
        event(sent_at, creator, "quote.sent", "quote", quote_id, org.id,
              {"number": reference, "total_ttc_cents": ttc})
        if status == "expired":
            event(datetime.combine(valid_until + timedelta(days=1), datetime.min.time()), None,
                  "quote.expired", "quote", quote_id, org.id, {})
        elif status == "cancelled":
            event(sent_at + timedelta(days=2), creator, "quote.cancelled", "quote", quote_id, org.id, {})

    def decision(self, quote_id: int, org: Org, status: str, decided_at: datetime) -> None:
        rng = self.rng
        on_behalf = org.mandate and rng.random() < 0.05
        actor = rng.choice(self.staff) if on_behalf else org.users[1 if rng.random() < 0.85 else 0]
        channel = "back_office" if on_behalf else rng.choice(("email_link", "portal"))
        terms_id, _published, terms_sha, label = (self.terms[1] if decided_at >= self.terms[1][1]
                                                  else self.terms[0])
        reason = "Budget insuffisant" if status == "refused" and rng.random() < 0.5 else None
        self.w.add("decision", (
            self.next_id("decision"), quote_id, status, actor, org.id, channel, terms_id, terms_sha,
            hashlib.sha256(b"%d" % quote_id).hexdigest(), org.users[0] if on_behalf else None,
            None, f"192.0.2.{quote_id % 250 + 1}", "Mozilla/5.0 (bench)", reason, ts(decided_at)))
        self.audit(decided_at, actor, f"quote.{status}", "quote", quote_id, org.id,
                   {"channel": channel, "terms": label, "on_behalf": on_behalf, "reason": reason})

    def quote_request(self, org: Org, created: datetime, *, answered: bool,
                      status: str = "answered") -> int:
        request_id = self.next_id("quote_request")
        handled = created if answered or status == "declined" else None
        self.w.add("quote_request", (
            request_id, org.id, org.users[2], "Bonjour, pouvez-vous nous faire une offre ?", status,
            "Produit indisponible" if status == "declined" else None,
            self.staff[1] if handled else None, ts(handled),
            ts(created - timedelta(days=1))))
        for product in self.rng.sample(self.products, self.rng.randint(1, 2)):
            self.w.add("quote_request_line", (self.next_id("quote_request_line"), request_id,
                                              product.id, self.rng.randint(1, 5)))
        self.audit(created - timedelta(days=1), org.users[2], "request.created", "quoterequest",
                   request_id, org.id, {})
        return request_id

    def open_requests(self) -> None:
        """A few requests still to answer (the home's first queue) and some declined ones."""
        for org in self.rng.sample(self.orgs, max(3, len(self.orgs) // 50)):
            self.quote_request(org, self.now - timedelta(days=self.rng.uniform(0, 10)), answered=False,
                               status="new")
        for org in self.rng.sample(self.orgs, max(3, len(self.orgs) // 30)):
            self.quote_request(org, self.now - timedelta(days=self.rng.uniform(10, SPAN_DAYS)),
                               answered=False, status="declined")

    def run(self) -> None:
        """Every step in order, each reported on stderr as it ends (the large scale takes minutes)."""
        steps = [
            ("données de référence", self.reference_data),
            ("organisations et utilisateurs", self.organisations),
            ("devis et lignes", self.quotes),
            ("demandes de devis", self.open_requests),
            ("factures et paiements", self.invoices),
            ("crédits", lambda: self.credit_ledger(self.sizes["credit_entries"])),
            ("compteurs de numéros", lambda: self.counters(self.quote_numbers, "DV")),
            ("journal d'audit", self.flush_audit),
        ]
        for number, (label, step) in enumerate(steps, start=1):
            started = time.perf_counter()
            step()
            print(f"  [{number}/{len(steps)}] {label} : {time.perf_counter() - started:.1f} s",
                  file=sys.stderr, flush=True)


def _draw(rng: random.Random, choices) -> str:
    total = sum(weight for _, weight in choices)
    point = rng.uniform(0, total)
    for value, weight in choices:
        point -= weight
        if point <= 0:
            return value
    return choices[-1][0]


def _cumulate(weights):
    total = 0.0
    for weight in weights:
        total += weight
        yield total


def generate(url: str, scale: str) -> dict[str, int]:
    """Recreate the database at `url` and fill it; returns the row counts per table."""
    recreate_database(url)
    writer = Writer(url, names.COLUMNS)
    generator = Generator(writer, scale)
    generator.run()
    writer.close()
    return {**writer.counts, **{f"quote:{k}": v for k, v in sorted(generator.status_counts.items())}}


def fixtures(url: str) -> dict[str, int]:
    """The ids the benchmark needs, looked up by their names."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        org_id = connection.execute(text("SELECT id FROM organisation WHERE name = :n"),
                                    {"n": BENCH_ORGANISATION}).scalar_one()
        found = {
            "organisation_id": org_id,
            "organisation_quotes": connection.execute(
                text("SELECT count(*) FROM quote WHERE organisation_id = :o"), {"o": org_id}).scalar_one(),
            "quote_id": connection.execute(text("SELECT id FROM quote WHERE title = :t"),
                                           {"t": BENCH_QUOTE_TITLE}).scalar_one(),
            "staff_id": connection.execute(text('SELECT id FROM "user" WHERE email = :e'),
                                           {"e": BENCH_STAFF_EMAIL}).scalar_one(),
            "client_id": connection.execute(text('SELECT id FROM "user" WHERE email = :e'),
                                            {"e": BENCH_CLIENT_EMAIL}).scalar_one(),
        }
        found["quote_lines"] = connection.execute(
            text("SELECT count(*) FROM quote_line WHERE quote_id = :q"), {"q": found["quote_id"]}
        ).scalar_one()
    engine.dispose()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="sqlite:///… or postgresql+psycopg://…")
    parser.add_argument("--scale", choices=sorted(SCALES), default="large")
    args = parser.parse_args()
    started = time.perf_counter()
    counts = generate(args.database_url, args.scale)
    elapsed = time.perf_counter() - started
    print(f"Jeu de données « {args.scale} » généré en {elapsed:.1f} s dans {args.database_url}")
    for table, count in counts.items():
        print(f"  {table:<22} {count:>10,}".replace(",", " "))
    found = fixtures(args.database_url)
    print(f"  organisation à {found['organisation_quotes']} devis : id {found['organisation_id']}")
    print(f"  devis à {found['quote_lines']} lignes : id {found['quote_id']}")
    print(f"  gestionnaire du portail : id {found['client_id']} ({BENCH_CLIENT_EMAIL})")
    print(f"  staff : id {found['staff_id']} ({BENCH_STAFF_EMAIL})")


if __name__ == "__main__":
    main()

