"""`flask --app wsgi …` commands: demo data, staff users, monthly close, quote expiry, API keys."""

from __future__ import annotations

import sys

import click
from flask import Flask
from sqlalchemy import select

from . import api_keys, monthly, outbox, quote_expiry
from .auth import MIN_PASSWORD_LENGTH, hash_password
from .cli_webhooks import webhooks_cli
from .delivery import webhooks, worker
from .demo import DEMO_CLIENT_PASSWORD, DEMO_STAFF_PASSWORD, load_demo
from .exceptions import DomainError
from .extensions import db
from .labels import format_number, french_count, french_date, period_label
from .models import ApiKey, StaffRole, User, UserKind


def register(app: Flask) -> None:
    """Attach the command groups to the app."""
    for group in (demo_cli, staff_cli, billing_cli, quotes_cli, api_keys_cli):
        app.cli.add_command(group)
    app.cli.add_command(outbox_cli)
    app.cli.add_command(payments_cli)
    app.cli.add_command(webhooks_cli)


@click.group("demo", help="Données de démonstration.")
def demo_cli() -> None:
    pass


@demo_cli.command("load", help="Charge les données de démonstration (sans effet si déjà chargées).")
def demo_load() -> None:
    if not load_demo():
        click.echo("Données de démonstration déjà présentes : rien à faire.")
        return
    db.session.commit()
    click.echo("Données de démonstration chargées.")
    click.echo(f"  Équipe : admin@portail-devis.fr / {DEMO_STAFF_PASSWORD}")
    click.echo(f"  Clients : responsable@dupont.example (etc.) / {DEMO_CLIENT_PASSWORD}")


@click.group("staff", help="Comptes de l'équipe.")
def staff_cli() -> None:
    pass


@staff_cli.command("create", help="Crée un compte de l'équipe ; le mot de passe est demandé.")
@click.argument("email")
@click.option("--role", type=click.Choice([role.value for role in StaffRole]), required=True,
              help="Rôle du compte : admin (administrateur) ou sales (commercial).")
@click.option("--name", default="", help="Nom complet (par défaut : l'adresse).")
def staff_create(email: str, role: str, name: str) -> None:
    email = email.strip().lower()
    if "@" not in email:
        raise click.ClickException("Adresse email invalide.")
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise click.ClickException(f"Un compte existe déjà pour {email}.")
    password = _read_password()
    user = User(email=email, full_name=name or email, kind=UserKind.STAFF,
                staff_role=StaffRole(role), password_hash=hash_password(password))
    db.session.add(user)
    db.session.commit()
    click.echo(f"Compte {role} créé pour {email}.")


def _read_password() -> str:
    """From a hidden prompt on a terminal, or the first line of stdin otherwise; never argv."""
    if sys.stdin.isatty():
        password = click.prompt("Mot de passe", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.ClickException(
            f"Le mot de passe doit comporter au moins {MIN_PASSWORD_LENGTH} caractères.")
    return password


@click.group("billing", help="Facturation.")
def billing_cli() -> None:
    pass


@billing_cli.command("close-month", help="Émet les factures mensuelles consolidées d'un mois échu.")
@click.option("--period", default=None, help="Mois à facturer, AAAA-MM (par défaut : le mois précédent).")
@click.option("--batch-size", default=monthly.BATCH, show_default=True, type=click.IntRange(min=1),
              help="Organisations facturées par transaction.")
def close_month(period: str | None, batch_size: int) -> None:
    period = period or monthly.previous_period()
    try:
        monthly.check_closable(period)
    except DomainError as error:
        raise click.ClickException(str(error)) from error
    organisation_ids = monthly.pending_organisation_ids(period)
    with click.progressbar(length=len(organisation_ids), label=f"Clôture de {period_label(period)}",
                           file=sys.stderr) as bar:
        summary = monthly.close_month(period, on_organisation_done=lambda _: bar.update(1),
                                      batch_size=batch_size)
    click.echo(_close_summary(summary))
    for number in summary.invoices:
        click.echo(f"  {number}")
    for organisation_id, message in summary.failures:
        click.echo(f"  Organisation {organisation_id} : {message}", err=True)
    if summary.failures:
        sys.exit(1)


def _close_summary(summary: monthly.CloseSummary) -> str:
    """« Clôture de novembre 2026 : 2 factures émises ; 3 organisations déjà facturées ; 0 échec. »"""
    billed = summary.already_billed_in_all
    return (f"Clôture de {period_label(summary.period)} : "
            f"{french_count(len(summary.invoices), 'facture émise', 'factures émises')} ; "
            f"{french_count(billed, 'organisation déjà facturée', 'organisations déjà facturées')}"
            f"{' (rien à refaire)' if billed and not summary.invoices and not summary.failures else ''} ; "
            f"{french_count(len(summary.failures), 'échec', 'échecs')}.")


@click.group("quotes", help="Devis.")
def quotes_cli() -> None:
    pass


@quotes_cli.command("expire", help="Passe en « expiré » les devis envoyés dont la validité est dépassée.")
def expire() -> None:
    expired = quote_expiry.expire_overdue()
    db.session.commit()
    click.echo(f"{french_count(len(expired), 'devis expiré', 'devis expirés')}.")


@quotes_cli.command("remind", help="Envoie les rappels des devis qui arrivent à échéance (J-7 et J-1).")
def remind() -> None:
    count = quote_expiry.remind_expiring()
    db.session.commit()
    click.echo(f"{french_count(count, 'rappel mis', 'rappels mis')} en file d'envoi.")


# --- API keys: for deployment scripts -----------------------------------------------------------


@click.group("api-keys", help="Clés de l'API de la plateforme.")
def api_keys_cli() -> None:
    pass


@api_keys_cli.command("create", help="Crée une clé d'API et affiche sa clé secrète, une seule fois, "
                                      "seule sur la sortie standard (le reste va sur la sortie d'erreur). "
                                      f"Autorisations : {', '.join(api_keys.SCOPES)}.")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, metavar="AUTORISATION",
              help="Une autorisation de la clé ; répétez l'option pour en donner plusieurs.")
def api_keys_create(name: str, scopes: tuple[str, ...]) -> None:
    try:
        key, secret = api_keys.create_key(name, scopes, actor=None)
    except DomainError as error:
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo(f"Clé d'API « {key.name} » créée : préfixe {key.prefix}, autorisations "
               f"{', '.join(key.scope_list)}.", err=True)
    click.echo("Clé secrète ci-dessous : elle ne sera plus jamais affichée.", err=True)
    click.echo(secret)


@api_keys_cli.command("list", help="Liste les clés d'API, actives et révoquées.")
def api_keys_list() -> None:
    keys = db.session.scalars(select(ApiKey).order_by(ApiKey.id)).all()
    if not keys:
        click.echo("Aucune clé d'API.")
    for key in keys:
        state = "active" if key.active else f"révoquée le {french_date(key.revoked_at)}"
        used = french_date(key.last_used_at) if key.last_used_at else "jamais"
        click.echo(f"{key.prefix}…  {key.name}  [{' '.join(key.scope_list)}]  créée le "
                   f"{french_date(key.created_at)}, dernière utilisation : {used}, {state}")


@api_keys_cli.command("revoke", help="Révoque la clé d'API de ce préfixe (pdk_ et 8 caractères) : ses "
                                      "appels suivants sont refusés.")
@click.argument("prefix")
@click.option("--yes", is_flag=True, help="Sans demander de confirmation.")
def api_keys_revoke(prefix: str, yes: bool) -> None:
    prefix = prefix.strip().rstrip("…").rstrip(".")
    matching = db.session.scalars(select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
                                  ).all()
    if not matching:
        raise click.ClickException(f"Aucune clé d'API active n'a le préfixe {prefix} "
                                   "(voir flask api-keys list).")
    if len(matching) > 1:
        raise click.ClickException(f"Plusieurs clés actives ont le préfixe {prefix} : révoquez-les depuis "
                                   "le back office (Administration › Clés d'API).")
    key = matching[0]
    if not yes and not click.confirm(f"Révoquer la clé « {key.name} » ({key.prefix}…) ? Ses appels seront "
                                     "refusés aussitôt.", default=False):
        click.echo("Révocation annulée : rien n'a changé.", err=True)
        sys.exit(1)
    try:
        api_keys.revoke_key(key, actor=None)
    except DomainError as error:
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo(f"Clé d'API « {key.name} » ({key.prefix}…) révoquée.")


# --- Outbox: sending the queued emails --------------------------------------------------------


@click.group("outbox", help="Envoi des emails et des webhooks en file d'attente.")
def outbox_cli() -> None:
    pass


def _describe_transport() -> str:
    from flask import current_app

    config = current_app.config
    if config.get("MAIL_SERVER"):
        return f"serveur SMTP {config['MAIL_SERVER']}:{config['MAIL_PORT']}"
    return f"fichiers .eml dans {config['MAIL_OUTBOX_DIR']} (MAIL_SERVER non défini)"


@outbox_cli.command("send", help="Exécute les clôtures mensuelles en file d'attente, envoie une fois "
                                  "les emails et les webhooks en attente, puis s'arrête.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Nombre maximal d'emails traités, et de webhooks livrés.")
def outbox_send(limit: int) -> None:
    closes = monthly.run_queued_closes()
    if closes:
        click.echo(f"{french_count(closes, 'clôture mensuelle exécutée', 'clôtures mensuelles exécutées')}.")
    result = worker.send_pending(limit=limit)
    click.echo(f"{french_count(result.sent, 'email envoyé', 'emails envoyés')}, "
               f"{format_number(result.retried)} à réessayer plus tard, "
               f"{format_number(result.failed)} en échec ({_describe_transport()}).")
    deliveries = webhooks.deliver_pending(limit=limit)
    click.echo(f"{french_count(deliveries.delivered, 'webhook livré', 'webhooks livrés')}, "
               f"{format_number(deliveries.retried)} à réessayer plus tard, "
               f"{format_number(deliveries.failed)} en échec.")


@outbox_cli.command("work", help="Envoie les emails et les webhooks, et exécute les clôtures "
                                  "mensuelles demandées, en continu ; Ctrl-C ou SIGTERM l'arrête.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=None,
              help="Secondes entre deux passages quand la file est vide (défaut : MAIL_WORKER_INTERVAL).")
def outbox_work(interval: float | None) -> None:
    import signal
    import threading

    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    click.echo(f"Envoi des emails : {_describe_transport()}.", err=True)
    # A pass over the webhooks that hits its limit asks for the next pass at once: a backlog drains
    # without waiting `interval`, emails still getting their turn between two batches of webhooks.
    jobs = (monthly.run_queued_closes, lambda: webhooks.deliver_due(stop=stop))
    try:
        worker.work(interval=interval, stop=stop, jobs=jobs)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    click.echo("Envoi des emails arrêté.", err=True)


@outbox_cli.command("retry", help="Remet en file d'envoi un email en échec.")
@click.argument("email_id", type=int)
def outbox_retry(email_id: int) -> None:
    try:
        outbox.retry_failed(email_id)
    except DomainError as error:
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo(f"Email {email_id} remis en file d'envoi.")


# --- Card payments: settling what the webhook missed ------------------------------------------


@click.group("payments", help="Paiements par carte (Stripe).")
def payments_cli() -> None:
    pass


@payments_cli.command("reconcile", help="Demande à Stripe l'état des paiements par carte des factures "
                                        "émises et enregistre ceux dont le webhook n'est jamais arrivé.")
def payments_reconcile() -> None:
    from . import payments
    from .payments import Outcome

    if not payments.enabled():
        raise click.ClickException("STRIPE_SECRET_KEY n'est pas défini : paiement par carte désactivé.")
    counts = dict.fromkeys(Outcome, 0)
    failures = []
    for link_id, intent_id in payments.reconcile_candidates():
        try:
            counts[payments.reconcile_intent(link_id)] += 1
        except DomainError as error:
            db.session.rollback()
            failures.append((intent_id, str(error)))
            continue
        db.session.commit()  # each intent on its own: a later failure keeps what is settled
    flagged = counts[Outcome.FLAGGED] + counts[Outcome.REFUSED]
    click.echo(", ".join((
        french_count(counts[Outcome.RECORDED], "paiement enregistré", "paiements enregistrés"),
        french_count(counts[Outcome.ALREADY_RECORDED], "déjà enregistré", "déjà enregistrés"),
        french_count(flagged, "signalé à l'équipe", "signalés à l'équipe"),
        french_count(len(failures), "échec", "échecs"))) + ".")
    for intent_id, message in failures:
        click.echo(f"  {intent_id} : {message}", err=True)
    if failures:
        sys.exit(1)
