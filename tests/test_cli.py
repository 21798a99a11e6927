"""The flask commands: demo data, staff accounts, monthly close, quote expiry, API keys."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import api_keys, auth, monthly, quotes, seller
from portal.extensions import db
from portal.models import (
    ApiKey,
    AuditEvent,
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
    assert "1 facture émise" in result.output
    assert db.session.scalar(select(Invoice.billing_period)) == monthly.previous_period()
    again = runner.invoke(args=["billing", "close-month"])
    assert "0 facture émise ; 1 organisation déjà facturée" in again.output
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



# --- API keys ---------------------------------------------------------------------------------


def _api_keys() -> list[ApiKey]:
    db.session.expire_all()
    return db.session.scalars(select(ApiKey).order_by(ApiKey.id)).all()


def test_api_keys_create_prints_the_secret_once_alone_on_stdout(runner):
    result = runner.invoke(args=["api-keys", "create", "Plateforme", "--scope", "credits:read",
                                 "--scope", "credits:consume"])
    assert result.exit_code == 0, result.output
    [key] = _api_keys()
    secret = result.stdout.strip()  # for `SECRET=$(flask api-keys create …)`
    assert api_keys.find_active_key(secret).id == key.id and secret.startswith(key.prefix)
    assert f"préfixe {key.prefix}" in result.stderr and "credits:read, credits:consume" in result.stderr
    assert "ne sera plus jamais affichée" in result.stderr
    assert key.created_by_id is None and key.scope_list == ["credits:read", "credits:consume"]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "api_key.created"))
    assert event.actor_id is None and event.details["prefix"] == key.prefix
    listed = runner.invoke(args=["api-keys", "list"])
    assert listed.exit_code == 0
    assert f"{key.prefix}…  Plateforme  [credits:read credits:consume]" in listed.output
    assert "active" in listed.output and secret not in listed.output


@pytest.mark.parametrize("arguments, message", [
    (["--scope", "credits:everything"], "Autorisation inconnue : credits:everything"),
    (["--scope", "credits:read", "--scope", "admin"], "Autorisation inconnue : admin"),
    ([], "Choisissez au moins une autorisation pour la clé d'API."),
])
def test_api_keys_create_refuses_an_unknown_or_missing_scope_in_french(runner, arguments, message):
    result = runner.invoke(args=["api-keys", "create", "Plateforme", *arguments])
    assert result.exit_code != 0 and message in result.output, result.output
    assert "pdk_" not in result.output
    assert _api_keys() == []


def test_api_keys_revoke_asks_for_a_confirmation_unless_yes(runner):
    key, secret = api_keys.create_key("Ancienne", ["credits:read"], actor=None)
    db.session.commit()
    declined = runner.invoke(args=["api-keys", "revoke", key.prefix], input="n\n")
    assert declined.exit_code != 0 and "Révocation annulée" in declined.output
    assert _api_keys()[0].revoked_at is None
    revoked = runner.invoke(args=["api-keys", "revoke", f"{key.prefix}…"], input="y\n")
    assert revoked.exit_code == 0 and "révoquée" in revoked.output, revoked.output
    assert _api_keys()[0].revoked_at is not None and api_keys.find_active_key(secret) is None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "api_key.revoked"))
    assert event.actor_id is None
    assert "révoquée le" in runner.invoke(args=["api-keys", "list"]).output


def test_api_keys_revoke_with_yes_and_an_unknown_prefix(runner):
    key, _secret = api_keys.create_key("Script", ["quotes:read"], actor=None)
    db.session.commit()
    unknown = runner.invoke(args=["api-keys", "revoke", "pdk_inconnu0", "--yes"])
    assert unknown.exit_code != 0 and "Aucune clé d'API active n'a le préfixe pdk_inconnu0" in unknown.output
    done = runner.invoke(args=["api-keys", "revoke", key.prefix, "--yes"])
    assert done.exit_code == 0 and _api_keys()[0].revoked_at is not None
    again = runner.invoke(args=["api-keys", "revoke", key.prefix, "--yes"])
    assert again.exit_code != 0 and "Aucune clé d'API active" in again.output
