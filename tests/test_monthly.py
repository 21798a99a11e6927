"""The monthly close: one consolidated invoice per organisation and month."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal import billing, monthly, monthly_outlook, quotes
from portal.exceptions import CloseAlreadyQueued, InvalidInput, InvalidPeriod
from portal.extensions import db
from portal.models import (
    BillingMode,
    Channel,
    ClientRole,
    CloseJobStatus,
    Invoice,
    MonthlyCloseJob,
    OutboxEmail,
    Quote,
    utcnow,
)

ACCEPTED_AT = datetime(2026, 3, 15, 10, 0)
CLOSE_AT = datetime(2026, 4, 1, 6, 0)


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _monthly_org_with_quotes(make, admin, terms, n_quotes: int, accepted_at=ACCEPTED_AT):
    org = make.organisation(billing_mode=BillingMode.MONTHLY)
    decider = make.client_user(org, ClientRole.GESTIONNAIRE)
    make.client_user(org, ClientRole.RESPONSABLE)
    accepted = []
    for _ in range(n_quotes):
        quote = make.sent_quote(org, actor=admin, recipient=decider, now=accepted_at)
        quotes.accept(quote, actor=decider, terms_version=terms, channel=Channel.PORTAL,
                      now=accepted_at)
        accepted.append(quote)
    return org, accepted


@pytest.fixture
def billing_world(make):
    make.seller_settings()
    admin = make.staff()
    return admin, make.terms(actor=admin)


def test_one_invoice_per_organisation_gathering_its_quotes(make, billing_world):
    admin, terms = billing_world
    org_a, quotes_a = _monthly_org_with_quotes(make, admin, terms, 3)
    org_b, quotes_b = _monthly_org_with_quotes(make, admin, terms, 1)
    db.session.commit()
    summary = monthly.close_month("2026-03", now=CLOSE_AT)
    assert len(summary.invoices) == 2 and summary.failures == []
    invoice_a = db.session.scalar(select(Invoice).where(Invoice.organisation_id == org_a.id))
    assert invoice_a.billing_period == "2026-03"
    assert invoice_a.issue_date == date(2026, 4, 1)
    assert invoice_a.sale_date == date(2026, 3, 31)
    assert invoice_a.total_ttc_cents == sum(quote.total_ttc_cents for quote in quotes_a)
    assert {line.quote_id for line in invoice_a.lines} == {quote.id for quote in quotes_a}
    billed = db.session.scalars(select(Quote.monthly_invoice_id).where(Quote.organisation_id == org_a.id))
    assert set(billed) == {invoice_a.id}
    assert _count(OutboxEmail, OutboxEmail.template == "monthly_invoice_issued") == 2


def test_close_month_is_idempotent(make, billing_world):
    admin, terms = billing_world
    _monthly_org_with_quotes(make, admin, terms, 2)
    db.session.commit()
    first = monthly.close_month("2026-03", now=CLOSE_AT)
    second = monthly.close_month("2026-03", now=CLOSE_AT)
    assert len(first.invoices) == 1 and second.invoices == []
    assert _count(Invoice) == 1


def test_a_crash_midway_is_resumed_by_a_rerun(make, billing_world):
    admin, terms = billing_world
    for _ in range(5):
        _monthly_org_with_quotes(make, admin, terms, 1)
    db.session.commit()
    done = []

    def crash_after_two(organisation_id: int) -> None:
        done.append(organisation_id)
        if len(done) == 2:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        monthly.close_month("2026-03", now=CLOSE_AT, on_organisation_done=crash_after_two, batch_size=2)
    db.session.rollback()
    assert _count(Invoice) == 2  # the first batch, committed before its organisations were reported
    monthly.close_month("2026-03", now=CLOSE_AT, batch_size=2)
    assert _count(Invoice) == 5
    numbers = sorted(db.session.scalars(select(Invoice.number)))
    assert numbers == [f"FA-2026-0000{n}" for n in range(1, 6)]


def test_an_organisation_refused_in_a_batch_leaves_the_others_billed(make, billing_world, monkeypatch):
    admin, terms = billing_world
    orgs = [_monthly_org_with_quotes(make, admin, terms, 2)[0] for _ in range(3)]
    db.session.commit()
    refused_id = orgs[1].id
    new_invoice_emails = billing.new_invoice_emails

    def refuse_one(invoice, organisation, **options):
        # Fault injected after the batch took its numbers: they must all be given back.
        if organisation.id == refused_id:
            raise InvalidInput("Organisation incomplète.")
        return new_invoice_emails(invoice, organisation, **options)

    monkeypatch.setattr(billing, "new_invoice_emails", refuse_one)
    summary = monthly.close_month("2026-03", now=CLOSE_AT)

    assert summary.failures == [(refused_id, "Organisation incomplète.")]
    assert summary.invoices == ["FA-2026-00001", "FA-2026-00002"]
    billed = dict(db.session.execute(select(Invoice.organisation_id, Invoice.number)).all())
    assert billed == {orgs[0].id: "FA-2026-00001", orgs[2].id: "FA-2026-00002"}
    unbilled = db.session.scalars(select(Quote.organisation_id).where(Quote.monthly_invoice_id.is_(None)))
    assert set(unbilled) == {refused_id}
    assert _count(OutboxEmail, OutboxEmail.template == "monthly_invoice_issued") == 2


def test_later_months_and_per_order_quotes_are_left_alone(make, billing_world):
    admin, terms = billing_world
    _monthly_org_with_quotes(make, admin, terms, 1, accepted_at=datetime(2026, 4, 2, 9))
    per_order = make.organisation(billing_mode=BillingMode.PER_ORDER)
    decider = make.client_user(per_order, ClientRole.GESTIONNAIRE)
    quote = make.sent_quote(per_order, actor=admin, recipient=decider, now=ACCEPTED_AT)
    quotes.accept(quote, actor=decider, terms_version=terms, channel=Channel.PORTAL, now=ACCEPTED_AT)
    db.session.commit()
    assert monthly.pending_organisation_ids("2026-03") == []
    assert monthly.close_month("2026-03", now=CLOSE_AT).invoices == []
    assert len(monthly.close_month("2026-04", now=datetime(2026, 5, 1, 6)).invoices) == 1


def _lines_of(invoice_number: str) -> list[str]:
    invoice = db.session.scalar(select(Invoice).where(Invoice.number == invoice_number))
    return [line.label for line in invoice.lines]


def test_an_acceptance_committed_after_its_months_close_is_billed_by_the_next_close(make, billing_world):
    """The close of March ran; a quote accepted on 31 March commits after it (it waited for the
    close's lock on its organisation): a rerun of March leaves it, the close of April bills it
    with its month on its lines, beside April's own quotes. Never unbilled, never twice."""
    admin, terms = billing_world
    org, march = _monthly_org_with_quotes(make, admin, terms, 1)
    db.session.commit()
    [march_invoice] = monthly.close_month("2026-03", now=CLOSE_AT).invoices

    decider = next(user for user in org.users if user.client_role == ClientRole.GESTIONNAIRE)
    late = make.sent_quote(org, actor=admin, recipient=decider, now=ACCEPTED_AT)
    quotes.accept(late, actor=decider, terms_version=terms, channel=Channel.PORTAL,
                  now=datetime(2026, 3, 31, 21, 59))  # 23:59 in Paris: a March acceptance
    april = make.sent_quote(org, actor=admin, recipient=decider, now=datetime(2026, 4, 10, 9))
    quotes.accept(april, actor=decider, terms_version=terms, channel=Channel.PORTAL,
                  now=datetime(2026, 4, 10, 9))
    db.session.commit()
    assert late.billing_period == "2026-03"
    assert monthly.pending_organisation_ids("2026-03") == [org.id]  # shown as still to bill…
    rerun = monthly.close_month("2026-03", now=CLOSE_AT)
    assert (rerun.invoices, rerun.already_billed, rerun.failures) == ([], 1, [])  # …but March has its invoice
    assert db.session.get(Quote, late.id).monthly_invoice_id is None
    # The client's « Factures » announces it on April's invoice, beside April's quote.
    [to_come] = monthly_outlook.invoices_to_come(org.id)
    assert (to_come.period, to_come.issue_date) == ("2026-04", date(2026, 5, 1))
    assert [quote.id for quote in to_come.quotes] == [late.id, april.id]

    [april_invoice] = monthly.close_month("2026-04", now=datetime(2026, 5, 1, 6)).invoices
    labels = _lines_of(april_invoice)
    assert [label for label in labels if label.startswith(late.reference)] == [
        f"{late.reference} (validé en mars 2026) — {line.label}" for line in late.lines]
    assert [label for label in labels if label.startswith(april.reference)] == [
        f"{april.reference} — {line.label}" for line in april.lines]
    db.session.expire_all()
    billed = dict(db.session.execute(select(Quote.id, Quote.monthly_invoice_id)).all())
    invoice_ids = dict(db.session.execute(select(Invoice.number, Invoice.id)).all())
    assert billed == {march[0].id: invoice_ids[march_invoice], late.id: invoice_ids[april_invoice],
                      april.id: invoice_ids[april_invoice]}


def test_a_month_never_closed_is_billed_by_the_next_close_rather_than_never(make, billing_world):
    admin, terms = billing_world
    org, february = _monthly_org_with_quotes(make, admin, terms, 1, accepted_at=datetime(2026, 2, 27, 9))
    db.session.commit()
    assert monthly.pending_organisation_ids("2026-03") == [org.id]
    [invoice] = monthly.close_month("2026-03", now=CLOSE_AT).invoices
    assert _lines_of(invoice)[0].startswith(f"{february[0].reference} (validé en février 2026) — ")
    assert monthly.close_month("2026-02", now=CLOSE_AT).invoices == []


def test_preview_lists_what_will_be_billed(make, billing_world):
    admin, terms = billing_world
    org, accepted = _monthly_org_with_quotes(make, admin, terms, 2)
    previews = monthly_outlook.preview_month("2026-03")
    assert [(p.organisation.id, len(p.quotes)) for p in previews] == [(org.id, 2)]
    assert previews[0].total_ttc_cents == sum(q.total_ttc_cents for q in accepted)


@pytest.mark.parametrize("period", ["2026-04", "2026-05", "2030-01", "2026-13", "26-03", "mars", ""])
def test_current_future_or_malformed_periods_are_refused(make, billing_world, period):
    admin, terms = billing_world
    _monthly_org_with_quotes(make, admin, terms, 1)
    db.session.commit()
    with pytest.raises(InvalidPeriod):
        monthly.close_month(period, now=CLOSE_AT)
    assert _count(Invoice) == 0


def test_previous_period_in_paris_time():
    assert monthly.previous_period(datetime(2026, 3, 31, 22, 30)) == "2026-03"  # 1 April in Paris
    assert monthly.previous_period(datetime(2026, 1, 15)) == "2025-12"


# --- The close queued from the back office, run by the outbox worker --------------------------


def test_a_queued_close_is_run_once_by_the_worker_and_records_its_summary(make, billing_world):
    admin, terms = billing_world
    _monthly_org_with_quotes(make, admin, terms, 2)
    _monthly_org_with_quotes(make, admin, terms, 1)
    job = monthly.queue_close("2026-03", actor=admin)
    db.session.commit()
    assert job.status == CloseJobStatus.QUEUED and _count(Invoice) == 0
    with pytest.raises(CloseAlreadyQueued):
        monthly.queue_close("2026-03", actor=admin)
    db.session.rollback()
    assert monthly.close_progress("2026-03") == monthly.CloseProgress(issued=0, pending=2)

    assert monthly.run_queued_closes(now=CLOSE_AT) == 1
    db.session.expire_all()
    job = db.session.get(MonthlyCloseJob, job.id)
    assert (job.status, job.issued_count, job.failures_count) == (CloseJobStatus.DONE, 2, 0)
    assert _count(Invoice, Invoice.billing_period == "2026-03") == 2
    assert monthly.close_progress("2026-03") == monthly.CloseProgress(issued=2, pending=0)
    assert monthly.run_queued_closes(now=CLOSE_AT) == 0
    monthly.queue_close("2026-03", actor=admin)  # done: the period may be closed again (no-op)
    db.session.commit()


def test_the_database_allows_one_active_job_per_period(make, billing_world):
    admin, _terms = billing_world
    db.session.add(MonthlyCloseJob(period="2026-03", requested_by_id=admin.id))
    db.session.commit()
    db.session.add(MonthlyCloseJob(period="2026-03", requested_by_id=admin.id,
                                   status=CloseJobStatus.RUNNING))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    db.session.add(MonthlyCloseJob(period="2026-03", status=CloseJobStatus.DONE))
    db.session.add(MonthlyCloseJob(period="2026-02", status=CloseJobStatus.QUEUED))
    db.session.commit()


def test_a_job_left_running_by_a_dead_worker_is_run_again_after_its_lease(make, billing_world):
    admin, terms = billing_world
    _monthly_org_with_quotes(make, admin, terms, 1)
    stale = utcnow() - monthly.CLOSE_JOB_LEASE - timedelta(minutes=1)
    fresh = MonthlyCloseJob(period="2026-02", status=CloseJobStatus.RUNNING, started_at=utcnow())
    db.session.add_all([MonthlyCloseJob(period="2026-03", status=CloseJobStatus.RUNNING,
                                        started_at=stale), fresh])
    db.session.commit()
    assert monthly.run_queued_closes(now=CLOSE_AT) == 1  # the stale one only
    assert _count(Invoice, Invoice.billing_period == "2026-03") == 1
    assert db.session.get(MonthlyCloseJob, fresh.id).status == CloseJobStatus.RUNNING


def test_a_refused_job_fails_with_its_message_and_the_worker_goes_on(make, billing_world):
    admin, _terms = billing_world
    job = MonthlyCloseJob(period="2999-01", requested_by_id=admin.id)  # not over
    db.session.add(job)
    db.session.commit()
    assert monthly.run_queued_closes() == 1
    db.session.expire_all()
    job = db.session.get(MonthlyCloseJob, job.id)
    assert job.status == CloseJobStatus.FAILED and "n'est pas terminée" in job.error


def test_the_worker_loop_runs_the_jobs_it_is_given(app):
    import threading

    from portal.delivery import worker

    stop, runs = threading.Event(), []
    worker.work(interval=0.01, stop=stop, jobs=(lambda: runs.append(1) or stop.set(),))
    assert runs == [1]


def test_flask_outbox_send_runs_the_queued_closes(make, billing_world, runner):
    admin, terms = billing_world
    _monthly_org_with_quotes(make, admin, terms, 1)
    monthly.queue_close("2026-03", actor=admin)
    db.session.commit()
    result = runner.invoke(args=["outbox", "send"])
    assert result.exit_code == 0, result.output
    assert "1 clôture mensuelle exécutée." in result.output
    assert _count(Invoice, Invoice.billing_period == "2026-03") == 1
