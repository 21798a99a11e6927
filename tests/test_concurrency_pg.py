"""Real concurrency on PostgreSQL (DESIGN.md §4): threads and OS processes, no mocks.

Each worker thread has its own app context, hence its own session and connection. Data is set up
and committed by the test before any worker starts. Where an interleaving matters, the test does
not hope for it: it holds a transaction open and waits until PostgreSQL reports the other worker
blocked on a lock (`pg_stat_activity`), then lets the first one commit or roll back.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from portal import billing, create_app, credits, monthly, quotes
from portal.config import TestConfig
from portal.dates import paris_today, period_bounds
from portal.exceptions import InsufficientCredits, PaymentMismatch, QuoteNotPending
from portal.extensions import db
from portal.models import (
    BillingMode,
    Channel,
    ClientRole,
    CreditEntry,
    CreditEntryKind,
    Decision,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    NumberCounter,
    Organisation,
    OutboxEmail,
    Payment,
    PaymentProvider,
    Quote,
    QuoteStatus,
    SellerSettings,
    StaffRole,
    TermsVersion,
    User,
)
from portal.quotes import LineInput

from . import factories

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 15  # seconds any single wait may take before the test fails loudly


class Injected(Exception):
    """A crash injected by the test."""


# --- Workers ----------------------------------------------------------------------------------


class Worker(threading.Thread):
    """Runs `work()` in its own app context and commits; a refusal in `refusals` rolls back and is
    kept; anything else is kept as a traceback and fails the test in `finish()`."""

    def __init__(
        self,
        app,
        work: Callable[[], object],
        *,
        refusals: tuple = (),
        barrier: threading.Barrier | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(daemon=True, name=name)
        self.app, self.work, self.refusals, self.barrier = app, work, refusals, barrier
        self.result: object = None
        self.refusal: BaseException | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            with self.app.app_context():
                try:
                    self.result = self.work()
                    db.session.commit()
                except self.refusals as refusal:
                    db.session.rollback()
                    self.refusal = refusal
        except BaseException:  # noqa: BLE001 - reported by finish()
            self.error = f"{self.name}:\n{traceback.format_exc()}"
            if self.barrier is not None:
                self.barrier.abort()  # don't leave the others waiting for a dead worker

    def finish(self) -> Worker:
        self.join(TIMEOUT * 2)
        assert not self.is_alive(), f"{self.name} is stuck"
        assert self.error is None, self.error
        return self


def run_together(app, count: int, work: Callable, *, refusals: tuple = ()) -> list[Worker]:
    """Run `work(index, barrier)` in `count` threads; each calls `barrier.wait()` when ready."""
    barrier = threading.Barrier(count, timeout=TIMEOUT)
    workers = [
        Worker(app, partial(work, index, barrier), refusals=refusals, barrier=barrier, name=f"worker-{index}")
        for index in range(count)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(TIMEOUT * 2)
    errors = [
        worker.error or f"{worker.name} is stuck" for worker in workers if worker.error or worker.is_alive()
    ]
    assert not errors, "\n".join(errors)
    return workers


def hold_then_race(
    app, first: Callable, second: Callable, *, first_outcome: str = "commit", refusals: tuple = ()
) -> tuple[Worker, Worker]:
    """`first` writes and keeps its transaction open; `second` starts and is seen blocked on a lock;
    then `first` commits (or raises Injected and rolls back), and `second` goes on."""
    written, release, backend = threading.Event(), threading.Event(), []

    def racing():
        backend.append(db.session.scalar(text("SELECT pg_backend_pid()")))  # its connection for good
        return second()

    def held():
        result = first()
        written.set()
        if not release.wait(TIMEOUT):
            raise TimeoutError("never released")
        if first_outcome == "rollback":
            raise Injected(result)
        return result

    holder = Worker(app, held, refusals=refusals + (Injected,), name="holder")
    holder.start()
    try:
        if not written.wait(TIMEOUT):
            holder.finish()
            pytest.fail("the first worker never wrote")
        racer = Worker(app, racing, refusals=refusals, name="racer")
        racer.start()
        wait_for_lock_waiters(1, pid=lambda: backend[0] if backend else -1, alive=racer.is_alive)
    finally:
        release.set()
    return holder.finish(), racer.finish()


def wait_for_lock_waiters(
    count: int,
    *,
    application_name: str = "%",
    pid: Callable[[], int] | None = None,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Wait until `count` sessions of this database (named so, or of backend `pid()`) are blocked
    on a lock; fail if they never are, or as soon as the worker they belong to has ended."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND application_name LIKE :name AND (:pid = 0 OR pid = :pid)"
    )
    deadline = time.monotonic() + TIMEOUT
    with db.engine.connect() as connection:
        while time.monotonic() < deadline and alive():
            params = {"name": application_name, "pid": pid() if pid else 0}
            if connection.execute(query, params).scalar_one() >= count:
                return
            connection.rollback()  # pg_stat_activity is a per-transaction snapshot
            time.sleep(0.02)
    pytest.fail(f"{count} session(s) never blocked on a lock (the worker did not wait)")


@contextlib.contextmanager
def row_lock(sql: str, **params):
    """Hold `SELECT … FOR UPDATE` rows from another connection for the duration of the block."""
    with db.engine.connect() as connection:
        connection.execute(text(sql), params).all()
        try:
            yield
        finally:
            connection.rollback()


# --- Data -------------------------------------------------------------------------------------


def fa(value: int, year: int | None = None) -> str:
    return f"FA-{year or paris_today().year}-{value:05d}"


def invoice_numbers() -> list[str]:
    db.session.rollback()  # read what is committed now
    return sorted(db.session.scalars(select(Invoice.number)))


def count(model, *criteria) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*criteria))


def outbox(template: str) -> int:
    return count(OutboxEmail, OutboxEmail.template == template)


def accept(quote_id: int, actor_id: int, terms_id: int, **kwargs) -> Decision:
    return quotes.accept(
        db.session.get(Quote, quote_id),
        actor=db.session.get(User, actor_id),
        terms_version=db.session.get(TermsVersion, terms_id),
        channel=Channel.PORTAL,
        **kwargs,
    )


def issue(organisation_id: int, label: str = "Prestation") -> Invoice:
    return billing.issue_invoice(
        organisation=db.session.get(Organisation, organisation_id),
        lines=[billing.LineDraft(label=label, quantity=1, unit_price_cents=12000, vat_rate_bp=2000)],
    )


def monthly_world(organisations: int, quotes_per_organisation: int = 2):
    """Monthly organisations with quotes accepted last month (plus one accepted this month, which
    no close of last month may bill); committed. Returns (period, org ids, quote ids, late id)."""
    period = monthly.previous_period()
    accepted_at = datetime.combine(
        period_bounds(period)[0] + timedelta(days=14), datetime.min.time()
    ) + timedelta(hours=10)
    if db.session.get(SellerSettings, 1) is None:
        factories.seller_settings()
    admin = factories.staff(StaffRole.ADMIN)
    cgv = factories.terms(actor=admin)
    product = factories.product()
    org_ids, quote_ids = [], []
    for _ in range(organisations):
        org = factories.organisation(billing_mode=BillingMode.MONTHLY)
        gestionnaire = factories.client_user(org, ClientRole.GESTIONNAIRE)
        org_ids.append(org.id)
        for quantity in range(1, quotes_per_organisation + 1):
            quote = factories.sent_quote(
                org,
                actor=admin,
                recipient=gestionnaire,
                now=accepted_at,
                lines=[LineInput(product_id=product.id, quantity=quantity)],
            )
            quotes.accept(
                quote,
                actor=gestionnaire,
                terms_version=cgv,
                channel=Channel.PORTAL,
                now=accepted_at + timedelta(minutes=quantity),
            )
            quote_ids.append(quote.id)
    late = factories.sent_quote(
        db.session.get(Organisation, org_ids[0]),
        actor=admin,
        lines=[LineInput(product_id=product.id, quantity=1)],
    )
    quotes.accept(late, actor=late.recipient, terms_version=cgv, channel=Channel.PORTAL)
    late_id = late.id
    db.session.commit()
    return period, org_ids, quote_ids, late_id


def assert_billed_once(period: str, org_ids: list[int], quote_ids: list[int], late_id: int) -> None:
    """One invoice per organisation-month, every quote on exactly one, numbers 1..N."""
    numbers = invoice_numbers()
    invoices = db.session.scalars(select(Invoice).where(Invoice.billing_period == period)).all()
    assert sorted(invoice.organisation_id for invoice in invoices) == sorted(org_ids)
    invoice_of = {invoice.organisation_id: invoice.id for invoice in invoices}
    lines = Counter(db.session.scalars(select(InvoiceLine.quote_id)))
    for quote in db.session.scalars(select(Quote).where(Quote.id.in_(quote_ids))):
        assert quote.monthly_invoice_id == invoice_of[quote.organisation_id], quote.reference
        assert lines[quote.id] == len(quote.lines), quote.reference
    assert db.session.get(Quote, late_id).monthly_invoice_id is None
    assert lines[late_id] == 0
    assert numbers == [fa(n) for n in range(1, len(org_ids) + 1)]
    assert db.session.get(NumberCounter, ("FA", paris_today().year)).last_value == len(org_ids)


# --- 1. Twenty simultaneous acceptances -------------------------------------------------------


@pytest.mark.parametrize("mode", [BillingMode.PER_ORDER, BillingMode.MONTHLY])
def test_twenty_simultaneous_acceptances_give_one_decision_and_nineteen_refusals(wide_app, mode):
    world = factories.world(billing_mode=mode)
    quote_id, terms_id = world["quote"].id, world["terms"].id
    actor_id = world["users"][ClientRole.GESTIONNAIRE].id
    credits = world["quote"].total_credits
    db.session.commit()

    def click(index, barrier):
        quote = db.session.get(Quote, quote_id)
        assert quote.status == QuoteStatus.SENT  # every worker saw it pending before anyone acted
        barrier.wait()
        return accept(quote_id, actor_id, terms_id, ip=f"10.0.0.{index}").id

    workers = run_together(wide_app, 20, click, refusals=(QuoteNotPending,))

    decisions = [worker.result for worker in workers if worker.refusal is None]
    assert len(decisions) == 1
    assert [type(worker.refusal) for worker in workers if worker.refusal] == [QuoteNotPending] * 19
    db.session.rollback()
    assert count(Decision) == 1 and db.session.get(Decision, decisions[0]).quote_id == quote_id
    assert db.session.get(Quote, quote_id).status == QuoteStatus.ACCEPTED
    assert outbox("quote_decided") == 1
    grants = db.session.scalars(select(CreditEntry).where(CreditEntry.kind == CreditEntryKind.GRANT)).all()
    if mode == BillingMode.PER_ORDER:
        assert invoice_numbers() == [fa(1)]
        assert count(Invoice, Invoice.quote_id == quote_id) == 1
        assert outbox("invoice_issued") == 1
        assert grants == []  # per order, credits come with the payment
    else:
        assert count(Invoice) == 0 and outbox("invoice_issued") == 0
        assert [(grant.quote_id, grant.amount) for grant in grants] == [(quote_id, credits)]


# --- 2. Two hundred invoices from eight workers -----------------------------------------------


def test_two_hundred_invoices_from_eight_workers_are_numbered_without_gap_or_duplicate(wide_app):
    world = factories.world()
    admin, org = world["admin"], world["org"]
    gestionnaire = world["users"][ClientRole.GESTIONNAIRE]
    product = factories.product()
    org_ids = [org.id] + [factories.organisation().id for _ in range(3)]
    quote_ids = [
        [
            factories.sent_quote(
                org, actor=admin, recipient=gestionnaire, lines=[LineInput(product_id=product.id, quantity=1)]
            ).id
            for _ in range(25)
        ]
        for _ in range(4)
    ]
    terms_id, actor_id = world["terms"].id, gestionnaire.id
    db.session.commit()

    def issue_many(index, barrier):
        """Workers 0-3 issue invoices directly, workers 4-7 accept per-order quotes."""
        barrier.wait()
        numbers = []
        for n in range(25):
            if index < 4:
                number = issue(org_ids[index], label=f"Prestation {index}-{n}").number
            else:
                quote_id = quote_ids[index - 4][n]
                accept(quote_id, actor_id, terms_id)
                number = db.session.scalar(select(Invoice.number).where(Invoice.quote_id == quote_id))
            db.session.commit()
            numbers.append(number)
        return numbers

    workers = run_together(wide_app, 8, issue_many)

    expected = [fa(n) for n in range(1, 201)]
    for worker in workers:
        assert worker.result == sorted(worker.result)  # each worker's numbers only go up
    assert sorted(number for worker in workers for number in worker.result) == expected
    assert invoice_numbers() == expected
    assert db.session.get(NumberCounter, ("FA", paris_today().year)).last_value == 200
    accepted = [quote_id for batch in quote_ids for quote_id in batch]
    assert count(Invoice, Invoice.quote_id.in_(accepted)) == 100


# --- 3. A rolled-back increment gives its number back -----------------------------------------


@pytest.mark.parametrize("counter_exists", [False, True], ids=["first-number", "later-number"])
def test_number_taken_by_a_failed_transaction_is_not_consumed(counter_exists):
    org_id = factories.world()["org"].id
    db.session.commit()
    taken = 1
    if counter_exists:
        issue(org_id)
        db.session.commit()
        taken = 2

    with pytest.raises(Injected):
        assert issue(org_id).number == fa(taken)
        raise Injected("crash after issue_invoice")
    db.session.rollback()
    with pytest.raises(Injected):
        assert billing.next_number("FA", paris_today().year) == fa(taken)
        raise Injected("crash after next_number")
    db.session.rollback()

    assert issue(org_id).number == fa(taken)
    db.session.commit()
    assert invoice_numbers() == [fa(n) for n in range(1, taken + 1)]


@pytest.mark.parametrize("counter_exists", [False, True], ids=["first-number", "later-number"])
def test_waiting_issuer_gets_the_number_of_a_rolled_back_issuer(wide_app, counter_exists):
    org_id = factories.world()["org"].id
    db.session.commit()
    taken = 1
    if counter_exists:
        issue(org_id)
        db.session.commit()
        taken = 2

    holder, racer = hold_then_race(
        wide_app, lambda: issue(org_id).number, lambda: issue(org_id).number, first_outcome="rollback"
    )

    assert holder.refusal.args == (fa(taken),)  # held that number, then rolled back
    assert racer.result == fa(taken)
    assert invoice_numbers() == [fa(n) for n in range(1, taken + 1)]


# --- 4. The monthly close, twice and in two processes at once ---------------------------------


def test_close_month_run_twice_bills_each_organisation_month_once():
    period, org_ids, quote_ids, late_id = monthly_world(5)

    first = monthly.close_month(period)
    second = monthly.close_month(period)

    assert (len(first.invoices), first.failures) == (5, [])
    assert (second.invoices, second.already_billed, second.failures) == ([], 0, [])
    assert_billed_once(period, org_ids, quote_ids, late_id)


def _close_month_in_process(url: str, period: str, name: str, results) -> None:
    """Body of a spawned OS process: its own app, engine and connections."""
    os.environ["PGAPPNAME"] = name  # libpq: lets the test see this process in pg_stat_activity
    try:
        app = create_app(type("ChildConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": url}))
        with app.app_context():
            summary = monthly.close_month(period)
            results.put((name, summary.invoices, summary.already_billed, summary.failures))
    except BaseException:  # noqa: BLE001 - reported to the test
        results.put((name, traceback.format_exc(), None, None))


def test_close_month_in_two_processes_at_once_bills_each_organisation_month_once(app):
    period, org_ids, quote_ids, late_id = monthly_world(12)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(
            target=_close_month_in_process,
            daemon=True,
            args=(app.config["SQLALCHEMY_DATABASE_URI"], period, f"close-month-{index}", results),
        )
        for index in range(2)
    ]
    try:
        # Both processes block on the first organisation, so both run the whole close concurrently.
        with row_lock("SELECT id FROM organisation WHERE id = :id FOR UPDATE", id=org_ids[0]):
            for process in processes:
                process.start()
            wait_for_lock_waiters(2, application_name="close-month-%")
        reports = [results.get(timeout=TIMEOUT * 2) for _ in processes]
    finally:
        for process in processes:
            process.join(TIMEOUT)
            if process.is_alive():
                process.kill()
        results.close()
        results.join_thread()

    for name, invoices, already_billed, failures in reports:
        assert already_billed is not None, f"{name} crashed:\n{invoices}"
        assert failures == [], name
    assert sum(len(report[1]) for report in reports) == 12
    assert sum(report[2] for report in reports) == 12  # each saw every organisation pending
    assert [process.exitcode for process in processes] == [0, 0]
    assert_billed_once(period, org_ids, quote_ids, late_id)


def _cli(period: str, name: str, *options: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
        "PGAPPNAME": name,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "billing", "close-month", "--period", period,
         *options],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_close_month_cli_in_two_processes_at_once_bills_each_organisation_month_once():
    period, org_ids, quote_ids, late_id = monthly_world(8)
    processes = []
    try:
        with row_lock("SELECT id FROM organisation WHERE id = :id FOR UPDATE", id=org_ids[0]):
            processes = [_cli(period, f"close-month-cli-{index}") for index in range(2)]
            wait_for_lock_waiters(2, application_name="close-month-cli-%")
        outputs = [process.communicate(timeout=TIMEOUT * 2) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    issued = 0
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stdout + stderr
        issued += int(re.search(r"(\d+) factures? émises?", stdout).group(1))
        assert "0 échec." in stdout, stdout
    assert issued == 8
    assert_billed_once(period, org_ids, quote_ids, late_id)


# --- 5. A crash part-way, then a rerun --------------------------------------------------------


@pytest.mark.parametrize(("crash_after", "committed"), [(1, 2), (3, 4)])
def test_close_month_crashing_after_k_organisations_then_rerun_bills_each_once(crash_after, committed):
    period, org_ids, quote_ids, late_id = monthly_world(6)
    done = []

    def crash(organisation_id):
        done.append(organisation_id)
        if len(done) == crash_after:
            raise Injected(f"crash after {crash_after} organisation(s)")

    with pytest.raises(Injected):
        monthly.close_month(period, on_organisation_done=crash, batch_size=2)
    db.session.rollback()
    # Organisations are reported once their batch (of 2) committed: the crash loses no batch.
    assert invoice_numbers() == [fa(n) for n in range(1, committed + 1)]

    rerun = monthly.close_month(period, batch_size=2)

    assert rerun.invoices == [fa(n) for n in range(committed + 1, 7)]
    assert rerun.failures == []
    assert_billed_once(period, org_ids, quote_ids, late_id)


def test_close_month_process_killed_mid_transaction_gives_its_numbers_back():
    period, org_ids, quote_ids, late_id = monthly_world(6)
    name = "close-month-killed"
    # The 4th organisation's quotes are locked: the close's second batch (organisations 4 to 6)
    # blocks inserting that invoice's lines (their foreign key to the quote), after it took
    # FA-…-00004 to 00006 and before it could commit.
    with row_lock("SELECT id FROM quote WHERE organisation_id = :id FOR UPDATE", id=org_ids[3]):
        process = _cli(period, name, "--batch-size", "3")
        try:
            wait_for_lock_waiters(1, application_name=name)
            assert invoice_numbers() == [fa(n) for n in range(1, 4)]
        finally:
            process.kill()  # SIGKILL: no cleanup, no rollback from the client
            process.communicate()
    # Once its lock wait ends, the orphaned backend finds its client gone and aborts.
    deadline = time.monotonic() + TIMEOUT
    alive = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
    while db.session.scalar(alive, {"name": name}):
        assert time.monotonic() < deadline, "the killed process's transaction never ended"
        db.session.rollback()
        time.sleep(0.05)
    assert invoice_numbers() == [fa(n) for n in range(1, 4)]

    rerun = monthly.close_month(period)

    assert rerun.invoices == [fa(n) for n in range(4, 7)]
    assert_billed_once(period, org_ids, quote_ids, late_id)


def test_an_acceptance_racing_its_months_close_is_billed_once_by_the_next_close(wide_app):
    """The close holds the organisation; an acceptance of the same month waits for it (its decision
    references the organisation) and commits after: the close did not see it. It is on no invoice,
    then on the next month's, with its month shown, and on no other."""
    period, org_ids, quote_ids, late_id = monthly_world(1)
    org = db.session.get(Organisation, org_ids[0])
    gestionnaire = next(user for user in org.users if user.client_role == ClientRole.GESTIONNAIRE)
    in_period = datetime.combine(period_bounds(period)[1] - timedelta(days=1), datetime.min.time())
    lines = [LineInput(product_id=factories.product().id, quantity=3)]
    racing = factories.sent_quote(org, actor=factories.staff(StaffRole.ADMIN), recipient=gestionnaire,
                                  now=in_period, lines=lines)
    cgv_id = db.session.scalar(select(func.max(TermsVersion.id)))
    racing_id, gestionnaire_id = racing.id, gestionnaire.id
    db.session.commit()

    def accept():
        quotes.accept(db.session.get(Quote, racing_id), actor=db.session.get(User, gestionnaire_id),
                      terms_version=db.session.get(TermsVersion, cgv_id), channel=Channel.PORTAL,
                      now=in_period + timedelta(hours=20))

    holder, racer = hold_then_race(
        wide_app, lambda: monthly.close_organisations_month(org_ids, period), accept)

    assert racer.refusal is None
    db.session.expire_all()
    assert db.session.get(Quote, racing_id).billing_period == period
    assert db.session.get(Quote, racing_id).monthly_invoice_id is None
    assert_billed_once(period, org_ids, quote_ids, late_id)

    next_period = period_bounds(period)[1].strftime("%Y-%m")
    after_it = datetime.combine(period_bounds(next_period)[1], datetime.min.time()) + timedelta(hours=6)
    monthly.close_month(next_period, now=after_it)
    next_invoice = db.session.scalar(select(Invoice).where(Invoice.billing_period == next_period))
    assert db.session.get(Quote, racing_id).monthly_invoice_id == next_invoice.id
    labels = [line.label for line in next_invoice.lines if line.quote_id == racing_id]
    assert labels and all(" (validé en " in label for label in labels)
    assert Counter(db.session.scalars(select(InvoiceLine.quote_id)))[racing_id] == len(labels) == 1


# --- 6. Payments and credits ------------------------------------------------------------------


def _per_order_invoice() -> tuple[dict, int]:
    world = factories.world()
    quotes.accept(
        world["quote"],
        actor=world["users"][ClientRole.GESTIONNAIRE],
        terms_version=world["terms"],
        channel=Channel.PORTAL,
    )
    invoice_id = db.session.scalar(select(Invoice.id).where(Invoice.quote_id == world["quote"].id))
    return world, invoice_id


def _pay(invoice_id: int, reference: str) -> int:
    invoice = db.session.get(Invoice, invoice_id)
    return billing.record_payment(
        invoice,
        provider=PaymentProvider.STRIPE,
        provider_reference=reference,
        amount_cents=invoice.total_ttc_cents,
        currency="eur",
    ).id


@pytest.mark.parametrize("deliveries", [2, 8])
def test_concurrent_deliveries_of_one_payment_record_one_payment_and_one_grant(wide_app, deliveries):
    world, invoice_id = _per_order_invoice()
    credits = world["quote"].total_credits
    db.session.commit()

    def deliver(index, barrier):
        assert db.session.get(Invoice, invoice_id).status == InvoiceStatus.ISSUED
        barrier.wait()
        return _pay(invoice_id, "pi_concurrent")

    workers = run_together(wide_app, deliveries, deliver)

    payment_ids = {worker.result for worker in workers}
    assert len(payment_ids) == 1  # every delivery answered with the same payment
    db.session.rollback()
    assert count(Payment) == 1
    assert db.session.get(Invoice, invoice_id).status == InvoiceStatus.PAID
    grants = db.session.scalars(select(CreditEntry).where(CreditEntry.kind == CreditEntryKind.GRANT)).all()
    assert [grant.amount for grant in grants] == [credits]
    assert outbox("payment_received") == 1


def test_second_delivery_waiting_on_the_first_returns_its_payment(wide_app):
    _, invoice_id = _per_order_invoice()
    db.session.commit()

    first, second = hold_then_race(
        wide_app, partial(_pay, invoice_id, "pi_twice"), partial(_pay, invoice_id, "pi_twice")
    )

    assert first.result == second.result
    assert count(Payment) == 1 and count(CreditEntry) == 1


def test_one_payment_reference_on_two_invoices_at_once_is_refused_cleanly(wide_app):
    world, first_invoice = _per_order_invoice()
    other = factories.sent_quote(
        world["org"], actor=world["admin"], recipient=world["users"][ClientRole.GESTIONNAIRE]
    )
    quotes.accept(other, actor=other.recipient, terms_version=world["terms"], channel=Channel.PORTAL)
    second_invoice = db.session.scalar(select(Invoice.id).where(Invoice.quote_id == other.id))
    db.session.commit()

    first, second = hold_then_race(
        wide_app,
        partial(_pay, first_invoice, "pi_shared"),
        partial(_pay, second_invoice, "pi_shared"),
        refusals=(PaymentMismatch,),
    )

    assert first.refusal is None and isinstance(second.refusal, PaymentMismatch)
    db.session.rollback()
    assert db.session.scalars(select(Payment.invoice_id)).all() == [first_invoice]
    assert db.session.get(Invoice, second_invoice).status == InvoiceStatus.ISSUED
    assert count(CreditEntry) == 1


def _organisation_with_credits(balance: int) -> int:
    world = factories.world()
    credits.adjust_credits(world["org"], balance, actor=world["admin"], reason="Dotation initiale")
    org_id = world["org"].id
    db.session.commit()
    return org_id


def _consume(org_id: int, amount: int) -> int:
    return credits.consume_credits(
        db.session.get(Organisation, org_id), amount, actor=None, reason="Consommation"
    ).id


def _assert_ledger_never_negative(org_id: int, expected_balance: int) -> None:
    db.session.rollback()
    amounts = db.session.scalars(
        select(CreditEntry.amount).where(CreditEntry.organisation_id == org_id).order_by(CreditEntry.id)
    ).all()
    running = [sum(amounts[: index + 1]) for index in range(len(amounts))]
    assert min(running) >= 0, running
    assert credits.credit_balance(org_id) == expected_balance


@pytest.mark.parametrize(("workers", "amount", "successes"), [(2, 20, 1), (10, 7, 4)])
def test_concurrent_consumptions_never_overdraw_the_balance(wide_app, workers, amount, successes):
    org_id = _organisation_with_credits(30)

    def consume(index, barrier):
        barrier.wait()
        return _consume(org_id, amount)

    done = run_together(wide_app, workers, consume, refusals=(InsufficientCredits,))

    assert len([worker for worker in done if worker.refusal is None]) == successes
    refusals = [worker.refusal for worker in done if worker.refusal is not None]
    assert len(refusals) == workers - successes
    assert all(isinstance(refusal, InsufficientCredits) for refusal in refusals)
    _assert_ledger_never_negative(org_id, 30 - successes * amount)


def test_consumption_waiting_on_another_sees_its_debit(wide_app):
    org_id = _organisation_with_credits(30)

    first, second = hold_then_race(
        wide_app,
        partial(_consume, org_id, 20),
        partial(_consume, org_id, 20),
        refusals=(InsufficientCredits,),
    )

    assert first.refusal is None
    assert isinstance(second.refusal, InsufficientCredits) and second.refusal.params == {"balance": 10}
    _assert_ledger_never_negative(org_id, 10)
