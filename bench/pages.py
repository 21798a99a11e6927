"""Page timings in-process: the Flask test client, signed in through the real sign-in forms, so
the time measured is the app's (routing, queries, templates) without any network."""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import event, select

from portal import create_app
from portal.extensions import db
from portal.models import Organisation, Quote, User

from .bulk import bench_config
from .generate import BENCH_CLIENT_EMAIL, BENCH_STAFF_EMAIL, fixtures

PASSWORD = "banc-essai-mot-de-passe"
CSRF = re.compile(r'name="csrf_token"[^>]*?value="([^"]+)"')
NAME_TERM = "martin"


@dataclass
class Timing:
    median_ms: float
    p95_ms: float
    queries: int
    status: int = 200


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (p95 of 50 samples is the 48th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-int(share * 100) * len(ordered) // 100))
    return ordered[rank - 1]


class QueryCounter:
    def __init__(self, engine) -> None:
        self.n = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args) -> None:
        self.n += 1


def measure(app: Flask, client, url: str, counter: QueryCounter, requests: int,
            warmup: int = 3) -> Timing:
    """`requests` timed GETs of `url` after `warmup` untimed ones; the queries of the last."""
    for _ in range(warmup):
        response = client.get(url)
        if response.status_code not in (200, 302):  # 302: a whole number's search opens its document
            raise RuntimeError(f"GET {url}: {response.status_code}")
    timings, status = [], response.status_code
    for _ in range(requests):
        counter.n = 0
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        status = response.status_code if response.status_code != 200 else status
    return Timing(statistics.median(timings), percentile(timings, 0.95), counter.n, status)


# Requests of one page in a row, alternating with the other page's (see measure_in_turn).
IN_TURN_BLOCK = 10


def measure_in_turn(first: tuple, second: tuple, requests: int, warmup: int = 3,
                    block: int = IN_TURN_BLOCK) -> tuple[Timing, Timing]:
    """Two pages, each (client, url, counter), requested `requests` times each after `warmup`
    untimed rounds, in alternating blocks of `block` requests: both are timed under the same
    conditions, so that their ratio does not follow what the machine did between two separate
    measures. Blocks rather than single requests: both apps run in this one process, and each
    page's work evicted the other's from the processor's caches; alternated request by request,
    our name searches measured 1 to 2 ms slower than the same pages in the table, a cost no server
    running only one of the two apps would pay."""
    for _ in range(warmup):
        for client, url, _counter in (first, second):
            if client.get(url).status_code != 200:
                raise RuntimeError(f"GET {url}: not 200")
    timings: tuple[list[float], list[float]] = ([], [])
    for _ in range(-(-requests // block)):
        for (client, url, counter), samples in zip((first, second), timings, strict=True):
            for _ in range(min(block, requests - len(samples))):
                counter.n = 0
                started = time.perf_counter()
                client.get(url)
                samples.append((time.perf_counter() - started) * 1000)
    return tuple(Timing(statistics.median(samples), percentile(samples, 0.95), counter.n)
                 for (_client, _url, counter), samples in zip((first, second), timings, strict=True))


def sign_in(client, login_url: str, email: str) -> None:
    page = client.get(login_url).get_data(as_text=True)
    token = CSRF.search(page).group(1)
    response = client.post(login_url, data={"csrf_token": token, "email": email, "password": PASSWORD})
    assert response.status_code == 302, f"sign-in failed for {email}"


def page_urls(app: Flask, found: dict) -> list[tuple[str, str, str, str]]:
    """(label, who, url, a text the page must contain) of every page measured on this dataset."""
    with app.app_context():
        org = db.session.get(Organisation, found["organisation_id"])
        quote = db.session.get(Quote, found["quote_id"])
        member = db.session.scalar(select(User.email).where(User.organisation_id == org.id)
                                   .order_by(User.id.desc()).limit(1))
        org_link = f"/admin/organisation/{org.id}/"
        reference, siren = quote.reference, org.siren
        # The year and sequence of the bench quote's number, less its last digit (2026-13876):
        # numbers of every series start so.
        number_start = quote.number.split("-", 1)[1][:-1]
        domain = member.rpartition("@")[2]
    return [
        ("Gestion courante (files)", "staff", "/admin/", "DV-"),
        ("Recherche : nom", "staff", f"/admin/?q={NAME_TERM}", "Martin"),
        ("Suggestions : nom", "staff", f"/admin/recherche?q={NAME_TERM}", "Martin"),
        ("Recherche : SIREN", "staff", f"/admin/?q={siren}", org_link),
        ("Recherche : email", "staff", f"/admin/?q={member}", org_link),
        ("Recherche : nom sans accents", "staff", "/admin/?q=electricite", "Électricité"),
        ("Recherche : domaine email", "staff", f"/admin/?q=@{domain}", org_link),
        # A whole number opens its quote: the redirect's body names it.
        ("Recherche : n° de devis", "staff", f"/admin/?q={reference}", f"/admin/devis/{quote.id}"),
        ("Recherche : n° partiel", "staff", f"/admin/?q={number_start}", "/admin/organisation/"),
        ("Suggestions : n° partiel", "staff", f"/admin/recherche?q={number_start}", number_start),
        ("Organisation › Devis (500)", "staff", f"/admin/organisation/{org.id}/devis", reference),
        ("Devis, statut envoyé", "staff", "/admin/tous-les-devis/?statut=sent", reference),
        ("Devis, statut accepté", "staff", "/admin/tous-les-devis/?statut=accepted", "badge-accepted"),
        ("Devis, organisation nom", "staff", f"/admin/tous-les-devis/?q={NAME_TERM}", "Martin"),
        ("Portail : Devis", "client", "/espace-client/devis", reference),
        ("Portail : devis 30 lignes", "client", f"/espace-client/devis/{quote.id}", "30 lignes"),
        ("Portail : Factures", "client", "/espace-client/factures", "FA-"),
    ]


@dataclass
class SignedIn:
    """Our app on a dataset, a client signed in per kind of user, and the queries it sends."""

    app: Flask
    clients: dict
    counter: QueryCounter
    urls: list[tuple[str, str, str, str]]

    def close(self) -> None:
        with self.app.app_context():
            db.engine.dispose()


def signed_in(url: str) -> SignedIn:
    app = create_app(bench_config(url))
    clients = {"staff": app.test_client(), "client": app.test_client()}
    sign_in(clients["staff"], "/admin/connexion", BENCH_STAFF_EMAIL)
    sign_in(clients["client"], "/espace-client/connexion", BENCH_CLIENT_EMAIL)
    with app.app_context():
        counter = QueryCounter(db.engine)
    return SignedIn(app, clients, counter, page_urls(app, fixtures(url)))


def run_pages(url: str, requests: int) -> dict[str, Timing]:
    """Every page of the table on the dataset at `url`."""
    ours = signed_in(url)
    app, clients, counter, urls = ours.app, ours.clients, ours.counter, ours.urls
    results = {}
    for label, who, page, expected in urls:
        text = clients[who].get(page).get_data(as_text=True)
        if expected not in text:
            raise RuntimeError(f"{label}: {page} does not show {expected!r}")
        results[label] = measure(app, clients[who], page, counter, requests)
    ours.close()
    return results
