"""The flask commands: demo data, staff accounts, monthly close, quote expiry."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from portal import auth, monthly, quotes, seller
from portal.extensions import db
from portal.models import (
    BillingMode,
    Channel,
    ClientRole,
    Invoice,
    Organisation,
    Product,
    Quote,
    QuoteRequest,
    QuoteStatus,
    StaffRole,
    TermsVersion,
    User,
    utcnow,
)


def _counts() -> dict[str, int]:
    models = (User, Organisation, Product, Quote, Invoice, QuoteRequest, TermsVersion)
    return {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in models}


def test_demo_load_is_complete_and_idempotent(runner):
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    assert "admin@portail-devis.fr" in result.output
    first = _counts()
    again = runner.invoke(args=["demo", "load"])
    assert again.exit_code == 0 and "déjà" in again.output
    assert _counts() == first
    assert first["Organisation"] == 3 and first["Product"] == 6
    statuses = set(db.session.scalars(select(Quote.status)))
    assert statuses == set(QuoteStatus)
    modes = {org.billing_mode: org for org in db.session.scalars(select(Organisation))}
    assert set(modes) == {BillingMode.PER_ORDER, BillingMode.MONTHLY}
    assert sum(org.staff_validation_allowed for org in db.session.scalars(select(Organisation))) == 1
    roles = set(db.session.scalars(select(User.client_role).where(User.client_role.is_not(None))))
    assert roles == set(ClientRole)
    products = db.session.scalars(select(Product)).all()
    assert sum(not p.published for p in products) == 2
    assert sum(p.credits_per_unit > 0 for p in products) >= 2
    assert seller.current_terms() is not None
    assert monthly.pending_organisation_ids(monthly.previous_period()) != []


def test_staff_create_reads_the_password_from_stdin(runner):
    result = runner.invoke(args=["staff", "create", "Nouvelle@Vendeur.test", "--role", "sales"],
                           input="un-mot-de-passe-solide\n")
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "nouvelle@vendeur.test"))
    assert user.staff_role == StaffRole.SALES
    assert auth.check_password(user, "un-mot-de-passe-solide")
    assert "un-mot-de-passe-solide" not in user.password_hash


def test_staff_create_refuses_bad_input(runner):
    short = runner.invoke(args=["staff", "create", "a@b.test", "--role", "admin"], input="court\n")
    assert short.exit_code != 0 and "au moins" in short.output
    bad_role = runner.invoke(args=["staff", "create", "a@b.test", "--role", "boss"], input="x" * 12)
    assert bad_role.exit_code != 0
    argv = runner.invoke(args=["staff", "create", "a@b.test", "--role", "admin", "--password", "x"])
    assert argv.exit_code != 0  # no way to put a password on the command line
    runner.invoke(args=["staff", "create", "a@b.test", "--role", "admin"], input="y" * 12 + "\n")
    duplicate = runner.invoke(args=["staff", "create", "a@b.test", "--role", "admin"],
                              input="z" * 12 + "\n")
    assert duplicate.exit_code != 0 and "existe déjà" in duplicate.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_close_month_command_bills_the_previous_month(runner, make):
    make.seller_settings()
    admin = make.staff()
    terms = make.terms(actor=admin)
    org = make.organisation(billing_mode=BillingMode.MONTHLY)
    decider = make.client_user(org, ClientRole.GESTIONNAIRE)
    last_month = utcnow().replace(day=1) - timedelta(days=10)
    quote = make.sent_quote(org, actor=admin, recipient=decider, now=last_month)
    quotes.accept(quote, actor=decider, terms_version=terms, channel=Channel.PORTAL, now=last_month)
    db.session.commit()
    result = runner.invoke(args=["billing", "close-month"])
    assert result.exit_code == 0, result.output
    assert "1 facture(s) émise(s)" in result.output
    assert db.session.scalar(select(Invoice.billing_period)) == monthly.previous_period()
    again = runner.invoke(args=["billing", "close-month"])
    assert "0 facture(s) émise(s)" in again.output
    current = runner.invoke(args=["billing", "close-month", "--period", utcnow().strftime("%Y-%m")])
    assert current.exit_code != 0 and "pas terminée" in current.output
    malformed = runner.invoke(args=["billing", "close-month", "--period", "2026-1"])
    assert malformed.exit_code != 0 and "AAAA-MM" in malformed.output


def test_quotes_expire_command(runner, make):
    world = make.world()
    world["quote"].valid_until = (utcnow() - timedelta(days=2)).date()
    db.session.commit()
    result = runner.invoke(args=["quotes", "expire"])
    assert result.exit_code == 0 and "1 devis expiré" in result.output
    assert db.session.get(Quote, world["quote"].id).status == QuoteStatus.EXPIRED

