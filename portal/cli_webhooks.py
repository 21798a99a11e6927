"""`flask webhooks …`: the platform's webhook endpoints, for deployment scripts (add one and print its
secret once, list them, rotate a secret). The back office (Administration › Webhooks) does the same."""

from __future__ import annotations

import sys

import click
from sqlalchemy import case, func, select

from . import events, webhook_endpoints
from .exceptions import DomainError
from .extensions import db
from .labels import french_count, french_date
from .models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

ALL_TYPES = "all"


@click.group("webhooks", help="Points de réception des événements (webhooks) de la plateforme.")
def webhooks_cli() -> None:
    pass


@webhooks_cli.command("add", help="Ajoute un point de réception et affiche son secret de signature, une "
                                  "seule fois, seul sur la sortie standard (le reste va sur la sortie "
                                  f"d'erreur). Types : {', '.join(events.EVENT_TYPES)}, ou {ALL_TYPES}.")
@click.argument("url")
@click.option("--event", "event_types", multiple=True, metavar="TYPE",
              help=f"Un type d'événement ; répétez l'option pour en donner plusieurs ({ALL_TYPES} : tous).")
@click.option("--description", default=None, help="Pour le reconnaître (200 caractères au plus).")
def webhooks_add(url: str, event_types: tuple[str, ...], description: str | None) -> None:
    chosen = list(events.EVENT_TYPES) if ALL_TYPES in event_types else list(event_types)
    try:
        endpoint, secret = webhook_endpoints.create_endpoint(url=url, event_types=chosen,
                                                             description=description, actor=None)
    except DomainError as error:
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo(f"Point de réception {endpoint.id} ajouté : {endpoint.url}, types "
               f"{', '.join(endpoint.event_type_list)}.", err=True)
    click.echo("Secret de signature ci-dessous : il ne sera plus jamais affiché.", err=True)
    click.echo(secret)


@webhooks_cli.command("list", help="Liste les points de réception, avec leurs envois en attente et en échec.")
def webhooks_list() -> None:
    counts = {endpoint_id: (pending, failed) for endpoint_id, pending, failed in db.session.execute(
        select(WebhookDelivery.endpoint_id,
               func.count(case((WebhookDelivery.status == DeliveryStatus.PENDING, 1))),
               func.count(case((WebhookDelivery.status == DeliveryStatus.FAILED, 1))))
        .group_by(WebhookDelivery.endpoint_id))}
    endpoints = db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).all()
    if not endpoints:
        click.echo("Aucun point de réception (voir flask webhooks add).")
    for endpoint in endpoints:
        pending, failed = counts.get(endpoint.id, (0, 0))
        state = "activé" if endpoint.enabled else "désactivé"
        click.echo(f"{endpoint.id}  {endpoint.url}  [{' '.join(endpoint.event_type_list)}]  {state}, "
                   f"{french_count(pending, 'envoi en attente', 'envois en attente')}, "
                   f"{french_count(failed, 'en échec', 'en échec')}")


@webhooks_cli.command("rotate", help="Remplace le secret de signature d'un point de réception et affiche le "
                                     "nouveau, une seule fois ; l'ancien reste valable 24 heures.")
@click.argument("endpoint_id", type=int)
@click.option("--yes", is_flag=True, help="Sans demander de confirmation.")
def webhooks_rotate(endpoint_id: int, yes: bool) -> None:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id) if 0 < endpoint_id < 2**31 else None
    if endpoint is None:
        raise click.ClickException(f"Aucun point de réception n° {endpoint_id} (voir flask webhooks list).")
    if not yes and not click.confirm(f"Remplacer le secret de {endpoint.url} ? L'ancien restera valable "
                                     "24 heures.", default=False, err=True):
        click.echo("Rien n'a changé.", err=True)
        sys.exit(1)
    secret = webhook_endpoints.rotate_secret(endpoint, actor=None)
    db.session.commit()
    until = french_date(endpoint.previous_secret_expires_at)
    click.echo(f"Nouveau secret du point de réception {endpoint.id} ci-dessous : il ne sera plus jamais "
               f"affiché. L'ancien reste valable jusqu'au {until}.", err=True)
    click.echo(secret)
