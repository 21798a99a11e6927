"""`flask --app wsgi …` commands: demo data, staff users, monthly close, quote expiry."""

from __future__ import annotations

import sys

import click
from flask import Flask
from sqlalchemy import select

from . import monthly, quotes
from .auth import MIN_PASSWORD_LENGTH, hash_password
from .demo import DEMO_CLIENT_PASSWORD, DEMO_STAFF_PASSWORD, load_demo
from .exceptions import DomainError
from .extensions import db
from .models import StaffRole, User, UserKind


def register(app: Flask) -> None:
    """Attach the command groups to the app."""
    for group in (demo_cli, staff_cli, billing_cli, quotes_cli):
        app.cli.add_command(group)


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
@click.option("--role", type=click.Choice([role.value for role in StaffRole]), required=True)
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
def close_month(period: str | None) -> None:
    period = period or monthly.previous_period()
    try:
        monthly.check_closable(period)
    except DomainError as error:
        raise click.ClickException(str(error)) from error
    organisation_ids = monthly.pending_organisation_ids(period)
    with click.progressbar(length=len(organisation_ids), label=f"Clôture {period}",
                           file=sys.stderr) as bar:
        summary = monthly.close_month(period, on_organisation_done=lambda _: bar.update(1))
    click.echo(f"Période {period} : {len(summary.invoices)} facture(s) émise(s), "
               f"{summary.already_billed} organisation(s) déjà facturée(s), "
               f"{len(summary.failures)} échec(s).")
    for number in summary.invoices:
        click.echo(f"  {number}")
    for organisation_id, message in summary.failures:
        click.echo(f"  Organisation {organisation_id} : {message}", err=True)
    if summary.failures:
        sys.exit(1)


@click.group("quotes", help="Devis.")
def quotes_cli() -> None:
    pass


@quotes_cli.command("expire", help="Passe en « expiré » les devis envoyés dont la validité est dépassée.")
def expire() -> None:
    expired = quotes.expire_overdue()
    db.session.commit()
    click.echo(f"{len(expired)} devis expiré(s).")
