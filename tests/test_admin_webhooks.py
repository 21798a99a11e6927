"""Administration › « Webhooks »: administrators create the platform's endpoints (the signing secret
shown once, on the page answering the creation or the rotation, and nowhere else), change them,
send a test event, read each delivery's attempts and send deliveries again; the sales role has no
menu entry and gets 403, client users are refused."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import events, webhook_endpoints
from portal.extensions import db
from portal.models import (
    AuditEvent,
    ClientRole,
    DeliveryStatus,
    Event,
    StaffRole,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

from .web import count_queries, csrf_token, page_text, post_form, sign_in, sign_in_client

URL = "/admin/webhooks/"
HOOK = "https://plateforme.example/webhooks/portail"
NOW = datetime(2026, 5, 4, 10, 0)
SECRET = re.compile(r'<code class="webhook-secret user-select-all">([^<]+)</code>')


@pytest.fixture
def admin_client(client, make):
    admin = make.staff(StaffRole.ADMIN, full_name="Alice Admin")
    sign_in(client, admin)
    client.admin = admin
    return client


def _endpoints() -> list[WebhookEndpoint]:
    db.session.expire_all()
    return db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).all()


def _deliveries(endpoint: WebhookEndpoint, make, statuses, attempts_each: int = 1) -> list[WebhookDelivery]:
    """An event per status, its delivery to `endpoint` in that status with `attempts_each` attempts."""
    organisation = make.organisation()
    made = []
    for n, status in enumerate(statuses):
        event = events.record("quote.accepted", organisation, {"object": "quote", "id": n}, now=NOW)
        delivery = db.session.scalar(select(WebhookDelivery).where(WebhookDelivery.event_id == event.id))
        delivery.status, delivery.attempts = status, attempts_each
        delivery.last_status_code = 200 if status == DeliveryStatus.DELIVERED else 503
        delivery.delivered_at = NOW if status == DeliveryStatus.DELIVERED else None
        for attempt in range(attempts_each):
            db.session.add(WebhookAttempt(
                delivery_id=delivery.id, attempted_at=NOW + timedelta(minutes=attempt),
                duration_ms=40 + attempt, status_code=delivery.last_status_code,
                response_excerpt=f"Réponse {n}-{attempt}",
                error=None if status == DeliveryStatus.DELIVERED else "HTTP 503"))
        made.append(delivery)
    db.session.commit()
    return made


# --- The list and the creation ------------------------------------------------------------------------


def test_the_admin_menu_has_the_entry_next_to_the_api_keys(admin_client):
    home = page_text(admin_client.get("/admin/"))
    menu = re.findall(r'class="dropdown-item[^"]*"\s+href="([^"]+)"', home)
    assert menu[menu.index("/admin/cles-api/") + 1] == URL
    assert "Webhooks" in home


def test_an_empty_list_says_what_to_do(admin_client):
    page = page_text(admin_client.get(URL))
    assert "Aucun point de réception. Cliquez sur « Créer »" in page
    assert f'href="{URL}new/' in page


def test_the_creation_form_offers_every_event_type_as_a_checkbox_with_its_description(admin_client):
    page = page_text(admin_client.get(URL + "new/"))
    for event_type, description in events.EVENT_TYPES.items():
        assert f'type="checkbox" value="{event_type}"' in page, event_type
        assert f"<code>{event_type}</code> — {description}" in page
    assert events.TEST_EVENT_TYPE not in page
    assert 'name="url"' in page and 'name="description"' in page and 'name="enabled"' in page


def test_a_created_endpoint_shows_its_secret_once(admin_client, caplog):
    caplog.set_level(logging.DEBUG)
    response = post_form(admin_client, URL + "new/", {
        "url": HOOK, "description": "Plateforme", "event_types": ["quote.accepted", "invoice.paid"],
        "enabled": "y"})
    assert response.status_code == 200  # the answer itself: no redirect, nothing flashed
    page = page_text(response)
    [endpoint] = _endpoints()
    secret = SECRET.search(page).group(1)
    assert secret == endpoint.secret and secret.startswith("whsec_")
    assert "Copiez ce secret maintenant : il ne sera plus jamais affiché." in page
    assert endpoint.url == HOOK and endpoint.enabled and endpoint.description == "Plateforme"
    assert endpoint.event_type_list == ["quote.accepted", "invoice.paid"]
    assert endpoint.created_by_id == admin_client.admin.id
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "webhook_endpoint.created"))
    assert event.actor_id == admin_client.admin.id and secret not in str(event.details)
    with admin_client.session_transaction() as session:
        assert secret not in str(dict(session))
    listed = page_text(admin_client.get(URL))
    assert HOOK in listed and "Plateforme" in listed and "quote.accepted" in listed and "Activé" in listed
    details = page_text(admin_client.get(f"{URL}details/?id={endpoint.id}"))
    assert HOOK in details and "Alice Admin" in details
    for later in (listed, details, page_text(admin_client.get(f"{URL}edit/?id={endpoint.id}"))):
        assert secret not in later and "whsec_" not in later
    assert secret not in caplog.text


def test_a_disabled_endpoint_can_be_created(admin_client):
    post_form(admin_client, URL + "new/", {"url": HOOK, "event_types": ["quote.sent"]})
    assert not _endpoints()[0].enabled


@pytest.mark.parametrize("data, message", [
    ({"url": "", "event_types": ["quote.sent"]}, "Indiquez l'adresse qui recevra les événements."),
    ({"url": "plateforme.example", "event_types": ["quote.sent"]}, "Adresse invalide"),
    ({"url": "http://plateforme.example/", "event_types": ["quote.sent"]}, "doit commencer par https://"),
    ({"url": "https://169.254.169.254/", "event_types": ["quote.sent"]}, "service de métadonnées"),
    ({"url": "https://192.168.0.2/", "event_types": ["quote.sent"]}, "n'est pas publique"),
    ({"url": "https://a:b@plateforme.example/", "event_types": ["quote.sent"]}, "mot de passe"),
    ({"url": HOOK, "event_types": []}, "Choisissez au moins un type d'événement."),
    ({"url": HOOK, "event_types": ["quote.sent"], "description": "x" * 201},
     "La description fait 200 caractères au plus."),
])
def test_a_refused_endpoint_says_why_beside_the_form_and_nothing_is_created(admin_client, data, message):
    response = post_form(admin_client, URL + "new/", data)
    page = page_text(response)
    assert response.status_code == 200 and message in page
    assert "whsec_" not in page and _endpoints() == []


def test_an_unknown_event_type_creates_nothing(admin_client):
    response = post_form(admin_client, URL + "new/", {"url": HOOK, "event_types": ["quote.signed"]})
    assert response.status_code == 200 and "whsec_" not in page_text(response)
    assert _endpoints() == []


def test_creating_needs_the_csrf_token(admin_client):
    response = admin_client.post(URL + "new/", data={"url": HOOK, "event_types": ["quote.sent"]})
    assert response.status_code == 400 and _endpoints() == []


# --- Edit, rotation, test event --------------------------------------------------------------------------


def test_editing_changes_types_description_and_state(admin_client, make):
    endpoint = make.webhook_endpoint(event_types=["quote.sent", "invoice.paid"], description="Avant")
    db.session.commit()
    form = page_text(admin_client.get(f"{URL}edit/?id={endpoint.id}"))
    assert re.search(r'checked[^>]*value="invoice.paid"|value="invoice.paid"[^>]*checked', form)
    assert not re.search(r'checked[^>]*value="quote.accepted"|value="quote.accepted"[^>]*checked', form)
    assert 'value="Avant"' in form and 'name="url"' not in form
    response = post_form(admin_client, f"{URL}edit/?id={endpoint.id}",
                         {"description": "Après", "event_types": ["credits.granted"]})
    assert response.status_code == 302 and f"details/?id={endpoint.id}" in response.headers["Location"]
    [stored] = _endpoints()
    assert stored.event_type_list == ["credits.granted"] and stored.description == "Après"
    assert not stored.enabled and stored.url == endpoint.url
    refused = post_form(admin_client, f"{URL}edit/?id={endpoint.id}", {"description": "X", "enabled": "y"})
    assert "Choisissez au moins un type d'événement." in page_text(refused)
    assert _endpoints()[0].description == "Après"
    assert admin_client.get(f"{URL}edit/?id=999").status_code == 404


def test_rotating_the_secret_asks_for_a_confirmation_then_shows_the_new_one_once(admin_client, make):
    endpoint = make.webhook_endpoint()
    db.session.commit()
    first = endpoint.secret
    details = page_text(admin_client.get(f"{URL}details/?id={endpoint.id}"))
    assert f"{URL}secret/?id={endpoint.id}" in details and "Régénérer le secret…" in details
    confirm_page = page_text(admin_client.get(f"{URL}secret/?id={endpoint.id}"))
    assert "L’ancien secret reste valable 24 heures" in confirm_page
    unconfirmed = post_form(admin_client, f"{URL}secret/?id={endpoint.id}", {})
    assert "Cochez la case de confirmation pour régénérer le secret." in page_text(unconfirmed)
    assert _endpoints()[0].secret == first
    assert admin_client.post(f"{URL}secret/?id={endpoint.id}", data={"confirm": "y"}).status_code == 400
    response = post_form(admin_client, f"{URL}secret/?id={endpoint.id}", {"confirm": "y"})
    assert response.status_code == 200
    page = page_text(response)
    [stored] = _endpoints()
    assert SECRET.search(page).group(1) == stored.secret != first and stored.previous_secret == first
    assert "il ne sera plus jamais affiché" in page and "L’ancien secret reste valable jusqu’au" in page
    details = page_text(admin_client.get(f"{URL}details/?id={endpoint.id}"))
    assert stored.secret not in details and first not in details
    assert "L’ancien secret reste valable jusqu’au" in details


def test_the_test_button_queues_one_event_for_this_endpoint(admin_client, make):
    endpoint = make.webhook_endpoint(event_types=["quote.sent"])
    make.webhook_endpoint(url="https://autre.example/hook")
    db.session.commit()
    details_url = f"{URL}details/?id={endpoint.id}"
    assert admin_client.post(f"{URL}test/?id={endpoint.id}", data={}).status_code == 400  # no CSRF token
    response = post_form(admin_client, f"{URL}test/?id={endpoint.id}", form_url=details_url)
    assert response.status_code == 302 and details_url in response.headers["Location"]
    [event] = db.session.scalars(select(Event)).all()
    assert event.type == events.TEST_EVENT_TYPE
    [delivery] = db.session.scalars(select(WebhookDelivery)).all()
    assert delivery.endpoint_id == endpoint.id and delivery.event_id == event.id
    page = page_text(admin_client.get(details_url))
    assert f"Événement de test {event.public_id} mis en file" in page
    assert "endpoint.test" in page and "En attente" in page and "Pas encore de tentative" in page


def test_a_disabled_endpoint_offers_no_test_button_and_refuses_one(admin_client, make):
    endpoint = make.webhook_endpoint(enabled=False)
    db.session.commit()
    details_url = f"{URL}details/?id={endpoint.id}"
    page = page_text(admin_client.get(details_url))
    assert "Ce point de réception est désactivé" in page and "Envoyer un événement de test" not in page
    response = post_form(admin_client, f"{URL}test/?id={endpoint.id}", form_url=details_url,
                         follow_redirects=True)
    assert "Ce point de réception est désactivé" in page_text(response)
    assert db.session.scalar(select(func.count(Event.id))) == 0


# --- Deliveries: the log, resending -------------------------------------------------------------------


def test_a_new_endpoint_page_says_what_to_do(admin_client, make):
    endpoint = make.webhook_endpoint()
    db.session.commit()
    page = page_text(admin_client.get(f"{URL}details/?id={endpoint.id}"))
    assert "Aucun envoi pour l’instant" in page and "envoyez un événement de test" in page


def test_the_endpoint_page_lists_deliveries_newest_first_with_their_attempts(admin_client, make):
    endpoint = make.webhook_endpoint(event_types=["quote.accepted"])
    delivered, failed = _deliveries(endpoint, make, [DeliveryStatus.DELIVERED, DeliveryStatus.FAILED],
                                    attempts_each=2)
    page = page_text(admin_client.get(f"{URL}details/?id={endpoint.id}"))
    assert page.index(failed.event.public_id) < page.index(delivered.event.public_id)
    assert "Livré" in page and "En échec" in page and "quote.accepted" in page
    assert "0 en attente, 1 livré, 1 en échec." in page
    assert "2 tentatives" in page and "Réponse 1-0" in page and "Réponse 1-1" in page and "HTTP 503" in page
    assert ">503<" in page and ">41<" in page  # the status code and the duration of an attempt
    assert f"{URL}renvoyer/?id={failed.id}" in page and f"{URL}renvoyer/?id={delivered.id}" in page
    assert f"{URL}renvoyer-echecs/?id={endpoint.id}" in page


def test_the_deliveries_are_paginated_and_the_page_runs_a_bounded_number_of_queries(admin_client, make):
    endpoint = make.webhook_endpoint(event_types=["quote.accepted"])
    _deliveries(endpoint, make, [DeliveryStatus.FAILED] * 3, attempts_each=2)
    details_url = f"{URL}details/?id={endpoint.id}"
    db.session.expire_all()
    with count_queries() as few:
        assert admin_client.get(details_url).status_code == 200
    _deliveries(endpoint, make, [DeliveryStatus.DELIVERED] * 22, attempts_each=3)
    db.session.expire_all()
    with count_queries() as many:
        first = admin_client.get(details_url)
    assert many.n == few.n, (few.statements, many.statements)
    page = page_text(first)
    assert page.count('class="webhook-delivery"') == 20 and "Envois plus anciens" in page
    older = re.search(r'href="([^"]*avant=\d+)"', page).group(1).replace("&amp;", "&")
    rest = page_text(admin_client.get(older))
    assert rest.count('class="webhook-delivery"') == 5 and "Envois plus anciens" not in rest
    assert "Aucun envoi plus ancien" in page_text(admin_client.get(details_url + "&avant=1"))


def test_resending_one_delivery(admin_client, make):
    endpoint = make.webhook_endpoint(event_types=["quote.accepted"])
    [failed] = _deliveries(endpoint, make, [DeliveryStatus.FAILED])
    details_url = f"{URL}details/?id={endpoint.id}"
    assert admin_client.post(f"{URL}renvoyer/?id={failed.id}").status_code == 400  # no CSRF token
    response = post_form(admin_client, f"{URL}renvoyer/?id={failed.id}", form_url=details_url)
    assert response.status_code == 302 and details_url in response.headers["Location"]
    db.session.expire_all()
    assert failed.status == DeliveryStatus.PENDING and failed.attempts == 0
    page = page_text(admin_client.get(details_url))
    assert "Envoi remis en file" in page and f"{URL}renvoyer/?id={failed.id}" not in page
    again = post_form(admin_client, f"{URL}renvoyer/?id={failed.id}", form_url=details_url,
                      follow_redirects=True)
    assert "Cet envoi est déjà en file d'attente" in page_text(again)
    assert post_form(admin_client, f"{URL}renvoyer/?id=999", form_url=details_url).status_code == 404


def test_resending_every_failed_delivery_after_a_confirmation(admin_client, make):
    endpoint = make.webhook_endpoint(event_types=["quote.accepted"])
    _deliveries(endpoint, make, [DeliveryStatus.FAILED, DeliveryStatus.FAILED, DeliveryStatus.DELIVERED])
    confirm_url = f"{URL}renvoyer-echecs/?id={endpoint.id}"
    assert "2 envois en échec repartiront" in page_text(admin_client.get(confirm_url))
    unconfirmed = post_form(admin_client, confirm_url, {})
    assert "Cochez la case de confirmation pour renvoyer les envois." in page_text(unconfirmed)
    response = post_form(admin_client, confirm_url, {"confirm": "y"}, follow_redirects=True)
    assert "2 envois remis en file." in page_text(response)
    statuses = db.session.scalars(select(WebhookDelivery.status).order_by(WebhookDelivery.id)).all()
    assert statuses == [DeliveryStatus.PENDING, DeliveryStatus.PENDING, DeliveryStatus.DELIVERED]
    page = page_text(admin_client.get(confirm_url))
    assert "Aucun envoi en échec pour ce point de réception : rien à renvoyer." in page
    details = page_text(admin_client.get(f"{URL}details/?id={endpoint.id}"))
    assert confirm_url not in details


# --- Who may -----------------------------------------------------------------------------------------------


def _pages(endpoint: WebhookEndpoint) -> list[str]:
    return [URL, URL + "new/", f"{URL}edit/?id={endpoint.id}", f"{URL}details/?id={endpoint.id}",
            f"{URL}secret/?id={endpoint.id}", f"{URL}renvoyer-echecs/?id={endpoint.id}"]


def _posts(endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> list[str]:
    return [URL + "new/", f"{URL}edit/?id={endpoint.id}", f"{URL}secret/?id={endpoint.id}",
            f"{URL}renvoyer-echecs/?id={endpoint.id}", f"{URL}test/?id={endpoint.id}",
            f"{URL}renvoyer/?id={delivery.id}"]


def _unchanged(endpoint: WebhookEndpoint, secret: str) -> None:
    [stored] = _endpoints()
    assert stored.secret == secret and stored.previous_secret is None and stored.description is None
    assert db.session.scalar(select(func.count(Event.id))) == 1  # the delivery's event, no test event
    assert db.session.scalars(select(WebhookDelivery.status)).all() == [DeliveryStatus.FAILED]


def test_the_sales_role_has_no_menu_entry_and_gets_403(client, make):
    sales = make.staff(StaffRole.SALES)
    endpoint = make.webhook_endpoint(event_types=["quote.accepted"])
    [delivery] = _deliveries(endpoint, make, [DeliveryStatus.FAILED])
    sign_in(client, sales)
    home = page_text(client.get("/admin/"))
    assert "Webhooks" not in home and URL not in home
    token = csrf_token(client)
    for url in _pages(endpoint):
        assert client.get(url).status_code == 403, url
    for url in _posts(endpoint, delivery):
        assert client.post(url, data={"csrf_token": token, "url": HOOK, "event_types": ["quote.sent"],
                                      "description": "X", "confirm": "y"}).status_code == 403, url
    _unchanged(endpoint, endpoint.secret)


def test_client_users_are_refused(client, make):
    organisation = make.organisation()
    responsable = make.client_user(organisation, ClientRole.RESPONSABLE)
    endpoint = make.webhook_endpoint(event_types=["quote.accepted"])
    [delivery] = _deliveries(endpoint, make, [DeliveryStatus.FAILED])
    sign_in_client(client, responsable)
    for url in _pages(endpoint):
        assert client.get(url).status_code == 403, url
    for url in _posts(endpoint, delivery):
        assert client.post(url, data={"confirm": "y"}).status_code in (400, 403), url  # CSRF first
    _unchanged(endpoint, endpoint.secret)


def test_anonymous_visitors_are_sent_to_the_sign_in_page(client, make):
    endpoint = make.webhook_endpoint()
    db.session.commit()
    response = client.get(f"{URL}details/?id={endpoint.id}")
    assert response.status_code == 302 and "/admin/connexion" in response.headers["Location"]


def test_the_domain_secret_is_never_shown_by_the_list_even_after_a_rotation(admin_client, make):
    endpoint, secret = webhook_endpoints.create_endpoint(url=HOOK, event_types=["quote.sent"], actor=None)
    rotated = webhook_endpoints.rotate_secret(endpoint, actor=None)
    db.session.commit()
    for url in (URL, f"{URL}details/?id={endpoint.id}", f"{URL}edit/?id={endpoint.id}"):
        page = page_text(admin_client.get(url))
        assert secret not in page and rotated not in page, url
