"""Wording (issue 26, point 11): what people read says each thing once, in French, in one voice —
draft names, the client's status labels, the mandate setting, plurals, grouped credits, months
written out, the monthly close's rerun, and the commands' help."""

from __future__ import annotations

import ast
import re
from datetime import datetime
from html import unescape
from pathlib import Path

import click
import pytest
from flask import render_template
from sqlalchemy import select

from portal import cli, cli_webhooks, credits, monthly, quotes
from portal.extensions import db
from portal.labels import credits_text, format_number, period_label, quote_reference_label
from portal.models import BillingMode, Channel, ClientRole, Invoice, Quote, QuoteStatus

from .web import post_form, sign_in, sign_in_client

ROOT = Path(__file__).resolve().parents[1]
NNBSP = "\u202f"  # the narrow no-break space that groups thousands, as in amounts


def _text(response) -> str:
    """A page's text, tags and scripts left out, whitespace collapsed (templates wrap sentences)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.get_data(as_text=True), flags=re.DOTALL)
    # Only ASCII whitespace: str.split() would also break the no-break spaces this file checks.
    return re.sub(r"[ \t\r\n]+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


# --- 1. A draft is named once: « Brouillon n° 13 » -------------------------------------------------


def test_a_new_draft_is_named_once_in_the_editor_and_the_lists(staff_client):
    world = staff_client.world
    draft = quotes.create_draft(organisation=world["org"], actor=world["admin"],
                                recipient=world["users"][ClientRole.GESTIONNAIRE], lines=[])
    db.session.commit()
    pages = {
        "editor": staff_client.get(f"/admin/devis/{draft.id}"),
        "organisation": staff_client.get(f"/admin/organisation/{world['org'].id}/devis"),
        "all quotes": staff_client.get("/admin/tous-les-devis/"),
    }
    for name, response in pages.items():
        text = _text(response)
        assert response.status_code == 200, name
        assert f"Brouillon n° {draft.id}" in text, name
        assert "Brouillon Brouillon" not in text and "Brouillon #" not in text, name


# --- 2. The client reads « À valider » --------------------------------------------------------------


def test_the_client_reads_a_sent_quote_as_to_validate(client, make):
    world = make.world()
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.GESTIONNAIRE])
    text = _text(client.get("/espace-client/devis"))
    assert world["quote"].status == QuoteStatus.SENT and world["quote"].reference in text
    assert "À valider" in text and "En attente du client" not in text


def test_staff_still_read_whom_a_sent_quote_waits_for(staff_client):
    org = staff_client.world["org"]
    text = _text(staff_client.get(f"/admin/organisation/{org.id}/devis"))
    assert "En attente du client" in text and "À valider" not in text


# --- 3. The mandate setting, in one voice -----------------------------------------------------------


def test_the_mandate_setting_speaks_to_the_client_as_vous(client, make):
    world = make.world()
    db.session.commit()
    sign_in_client(client, world["users"][ClientRole.RESPONSABLE])
    text = _text(client.get("/espace-client/parametres"))
    assert "Validation pour votre compte" in text
    assert "Autoriser l’équipe commerciale à valider vos devis pour votre compte" in text
    assert " notre " not in text.lower() and "interlocuteur" not in text
    granted = post_form(client, "/espace-client/parametres", {"allowed": "y"}, follow_redirects=True)
    text = _text(granted)
    assert "Validation pour votre compte autorisée." in text
    responsable = world["users"][ClientRole.RESPONSABLE].full_name
    assert f"Autorisation donnée par {responsable} le" in text


def test_the_back_office_shows_the_mandate_with_the_same_name_and_who_gave_it(staff_client):
    org, users = staff_client.world["org"], staff_client.world["users"]
    never = _text(staff_client.get(f"/admin/organisation/{org.id}/informations"))
    assert "Validation pour le compte du client Non autorisée : jamais accordée par le client" in never
    quotes.set_mandate(org, allowed=True, actor=users[ClientRole.RESPONSABLE])
    db.session.commit()
    text = _text(staff_client.get(f"/admin/organisation/{org.id}/informations"))
    assert f"Autorisée par {users[ClientRole.RESPONSABLE].full_name} le" in text
    assert "modifié par" not in text  # the validation is feminine; it was « modifié »


# --- 4. Plurals by ngettext, never « (s) » ---------------------------------------------------------

PLURAL_HACK = re.compile(r"\w\(e?s\)")


def _user_facing_strings(path: Path):
    """Every string literal of a module but docstrings and log messages (not read by users)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            hidden.add(id(body[0].value))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.value.id in {"log", "logger"}:
            hidden.update(id(arg) for arg in ast.walk(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in hidden:
            yield node.lineno, node.value


def test_no_plural_hack_in_templates_or_in_what_the_portal_says():
    offences = []
    for template in sorted((ROOT / "templates").rglob("*")):
        if template.suffix in {".html", ".txt"}:
            for number, line in enumerate(template.read_text(encoding="utf-8").splitlines(), 1):
                offences += [f"{template.relative_to(ROOT)}:{number}: {line.strip()}"
                             for _match in PLURAL_HACK.finditer(re.sub(r"\{#.*?#\}", "", line))]
    for module in sorted((ROOT / "portal").rglob("*.py")):
        offences += [f"{module.relative_to(ROOT)}:{number}: {text!r}"
                     for number, text in _user_facing_strings(module) if PLURAL_HACK.search(text)]
    assert offences == []


def test_the_cli_writes_its_counts_in_french_singular_and_plural(runner, make):
    world = make.world()
    world["quote"].valid_until = datetime(2020, 1, 1).date()
    db.session.commit()
    expired = runner.invoke(args=["quotes", "expire"])
    assert expired.exit_code == 0 and expired.output == "1 devis expiré.\n"
    sent = runner.invoke(args=["outbox", "send"])
    assert sent.exit_code == 0, sent.output
    assert re.search(r"^\d+ emails? envoyés?, ", sent.output, re.MULTILINE)
    assert "0 webhook livré, 0 à réessayer plus tard, 0 en échec." in sent.output
    assert "(s)" not in expired.output + sent.output


# --- 5. Credits grouped by thousands ----------------------------------------------------------------


def test_credit_counts_are_grouped_like_amounts(app):
    assert format_number(1500) == f"1{NNBSP}500" and format_number(-12000) == f"-12{NNBSP}000"
    assert credits_text(1) == "1 crédit" and credits_text(0) == "0 crédit"
    assert credits_text(1500) == f"1{NNBSP}500 crédits"
    assert credits_text(1500, signed=True) == f"+1{NNBSP}500 crédits"


def test_a_balance_of_thousands_reads_grouped_in_the_portal_and_the_back_office(client, staff_client, make):
    world = staff_client.world
    credits.adjust_credits(world["org"], 1500, actor=world["admin"], reason="Reprise du solde")
    db.session.commit()
    admin_tab = _text(staff_client.get(f"/admin/organisation/{world['org'].id}/credits"))
    assert f"Solde : 1{NNBSP}500 crédits" in admin_tab and f"+1{NNBSP}500" in admin_tab
    portal = client.application.test_client()
    sign_in_client(portal, world["users"][ClientRole.RESPONSABLE])
    page = _text(portal.get("/espace-client/credits"))
    assert f"Solde : 1{NNBSP}500 crédits" in page and f"+1{NNBSP}500" in page


def test_the_payment_email_groups_the_credits(app):
    values = {"amount": "1 800,00 €", "number": "FA-2026-00001", "method": "Carte bancaire",
              "received_on": "3 novembre 2026", "invoice_url": "http://localhost/f",
              "seller_name": "Vendeur", "subject": "Paiement reçu"}
    with app.test_request_context():
        for suffix in ("txt", "html"):
            many = render_template(f"email/payment_received.{suffix}", credits=1500, **values)
            one = render_template(f"email/payment_received.{suffix}", credits=1, **values)
            assert f"Les 1{NNBSP}500 crédits de votre commande sont disponibles" in unescape(many)
            assert "Le crédit de votre commande est disponible" in unescape(one)


# --- 6. Months written out: « novembre 2026 » ------------------------------------------------------


def test_a_billing_period_reads_as_a_month(app):
    with app.test_request_context():
        assert period_label("2026-11") == "novembre 2026"
        assert period_label("2026-13") == "2026-13"  # a mistyped period is shown as typed


@pytest.fixture
def monthly_invoice(make):
    """A monthly organisation's invoice for last month (one accepted quote)."""
    world = make.world(billing_mode=BillingMode.MONTHLY)
    period = monthly.previous_period()
    accepted_at = datetime(int(period[:4]), int(period[5:]), 15, 10, 0)
    quote = make.sent_quote(world["org"], actor=world["admin"],
                            recipient=world["users"][ClientRole.GESTIONNAIRE], now=accepted_at)
    quotes.accept(quote, actor=world["users"][ClientRole.GESTIONNAIRE], terms_version=world["terms"],
                  channel=Channel.PORTAL, now=accepted_at)
    db.session.commit()
    monthly.close_month(period)
    invoice = db.session.scalar(select(Invoice).where(Invoice.billing_period == period))
    return world, period, invoice


def test_the_billed_month_is_written_out_wherever_it_is_shown(client, monthly_invoice):
    world, period, invoice = monthly_invoice
    with client.application.test_request_context():
        month = period_label(period)
    sign_in(client, world["admin"])
    pages = {
        "invoice": client.get(f"/admin/factures/details/?id={invoice.id}"),
        "invoices list": client.get("/admin/factures/"),
        "organisation": client.get(f"/admin/organisation/{world['org'].id}/factures"),
        "monthly close": client.get(f"/admin/cloture-mensuelle/?periode={period}"),
    }
    portal = client.application.test_client()
    sign_in_client(portal, world["users"][ClientRole.RESPONSABLE])
    pages["portal invoice"] = portal.get(f"/espace-client/factures/{invoice.id}")
    for name, response in pages.items():
        text = _text(response)
        assert response.status_code == 200, name
        assert month in text, name
        assert not re.search(rf"(?<![\d/-]){period}(?![\d-])", text), name


# --- 7. A rerun of the close says how many organisations were already billed ------------------------


def test_a_rerun_of_close_month_counts_the_organisations_already_billed(runner, monthly_invoice):
    _world, period, _invoice = monthly_invoice
    again = runner.invoke(args=["billing", "close-month", "--period", period])
    assert again.exit_code == 0, again.output
    assert (f"Clôture de {period_label(period)} : 0 facture émise ; 1 organisation déjà facturée "
            "(rien à refaire) ; 0 échec.") in again.output


def test_a_rerun_from_the_back_office_counts_them_too(staff_client, monthly_invoice):
    _world, period, _invoice = monthly_invoice
    preview = _text(staff_client.get(f"/admin/cloture-mensuelle/?periode={period}"))
    assert "Rien à facturer pour cette période" in preview
    assert "1 organisation est déjà facturée pour ce mois" in preview
    monthly.queue_close(period, actor=staff_client.world["admin"])
    db.session.commit()
    assert monthly.run_queued_closes() == 1
    done = _text(staff_client.get(f"/admin/cloture-mensuelle/?periode={period}"))
    assert "0 facture émise ; 1 organisation déjà facturée pour ce mois ; 0 échec." in done


# --- 8. `--help` in French ------------------------------------------------------------------------

ENGLISH = re.compile(r"\b(the|and|of|to|for|with|show|create|list|run|send)\b", re.IGNORECASE)


def _project_commands():
    groups = [cli.demo_cli, cli.staff_cli, cli.billing_cli, cli.quotes_cli, cli.api_keys_cli,
              cli.outbox_cli, cli.payments_cli, cli_webhooks.webhooks_cli]
    for group in groups:
        yield [group.name], group
        for name, command in group.commands.items():
            yield [group.name, name], command


def test_every_project_command_and_option_has_a_french_help(runner):
    for path, command in _project_commands():
        assert command.help and not ENGLISH.search(command.help), path
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help and not ENGLISH.search(param.help), (path, param.name)
        shown = runner.invoke(args=[*path, "--help"])
        assert shown.exit_code == 0 and command.help.split()[0] in shown.output, path


def test_the_drafts_reference_helper_reads_like_the_journal(app):
    with app.test_request_context():
        draft = Quote(id=13, number=None, revision=1)
        revision = Quote(id=14, number="DV-2026-00005", revision=2)
        assert quote_reference_label(draft) == "Brouillon n° 13"
        assert quote_reference_label(revision) == "DV-2026-00005-R2"
