"""The audit trail told in French sentences (portal/audit_sentences.py): every action written
anywhere in portal/ has one, a few read word for word, the Historique tab and the journal show
them (raw details one click away) with as many queries for a long page as for a short one."""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import insert, select

from portal import api_keys, audit_sentences, billing, credits, quotes, webhook_endpoints
from portal.extensions import db
from portal.models import (
    AuditEvent,
    Channel,
    ClientRole,
    CreditEntryKind,
    DecisionKind,
    Invoice,
    PaymentProvider,
    utcnow,
)

from .web import page_text, queries_of_get

PORTAL = Path(__file__).resolve().parent.parent / "portal"
HOOK = "https://plateforme.example/webhooks/portail"
# What each f-string action of portal/ becomes: `quote.{decision kind}` (quotes._decide), and
# `credits.{entry kind}` (credits._append_entry) for consumptions and adjustments; grants and
# reversals are recorded under their own literal names.
EXPANSIONS = {
    "quote.": [kind.value for kind in DecisionKind],
    "credits.": [CreditEntryKind.CONSUMPTION.value, CreditEntryKind.ADJUSTMENT.value],
}


# --- Every action written has a wording ---------------------------------------------------------


def recorded_actions() -> tuple[set[str], set[str]]:
    """The actions of every `audit.record(…)` / `audit.event_for(…)` in portal/: the literal ones
    (both branches of a conditional included), and the prefixes of f-strings."""
    literals, prefixes = set(), set()
    for path in PORTAL.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("record", "event_for")
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "audit"):
                continue
            action = node.args[0]
            if isinstance(action, ast.JoinedStr):
                prefixes.add(action.values[0].value)
                continue
            strings = [part.value for part in ast.walk(action)
                       if isinstance(part, ast.Constant) and isinstance(part.value, str)]
            assert strings, f"{path.name}:{node.lineno}: an action the test cannot read"
            literals.update(strings)
    return literals, prefixes


def test_every_action_recorded_in_the_portal_has_a_sentence_and_a_name():
    literals, prefixes = recorded_actions()
    assert {"quote.sent", "invoice.paid", "webhook_endpoint.created", "user.reactivated"} <= literals
    assert prefixes == set(EXPANSIONS), "a new f-string action: tell EXPANSIONS what it becomes"
    actions = literals | {prefix + value for prefix, values in EXPANSIONS.items() for value in values}
    assert actions - set(audit_sentences.WORDINGS) == set()
    assert actions - set(audit_sentences.ACTION_LABELS) == set()


# --- Word for word ------------------------------------------------------------------------------


def _last_event(action: str) -> AuditEvent:
    return db.session.scalar(select(AuditEvent).where(AuditEvent.action == action)
                             .order_by(AuditEvent.id.desc()))


def _sentence(action: str) -> str:
    event = _last_event(action)
    return audit_sentences.describe_all([event])[event.id]


def _refusal(world) -> None:
    decider = world["users"][ClientRole.GESTIONNAIRE]
    decider.full_name = "Marie Martin"
    quotes.refuse(world["quote"], actor=decider, terms_version=world["terms"], channel=Channel.PORTAL,
                  reason="trop cher")
    db.session.commit()


def test_a_refusal_reads_with_its_decider_and_reason(make):
    world = make.world()
    _refusal(world)
    reference = world["quote"].reference
    assert _sentence("quote.refused") == f"Devis {reference} refusé par Marie Martin, motif : trop cher"


def test_a_card_payment_reads_with_its_reference(make):
    world = make.world()
    quotes.accept(world["quote"], actor=world["users"][ClientRole.GESTIONNAIRE], terms_version=world["terms"],
                  channel=Channel.PORTAL)
    invoice = db.session.scalar(select(Invoice).where(Invoice.quote_id == world["quote"].id))
    billing.record_payment(invoice, provider=PaymentProvider.STRIPE, provider_reference="pi_3Abc",
                           amount_cents=invoice.total_ttc_cents, currency="EUR")
    assert _sentence("invoice.paid") == f"Facture {invoice.number} payée par carte (réf. pi_3Abc)"
    reference = world["quote"].reference
    assert _sentence("invoice.issued") == f"Facture {invoice.number} émise pour le devis {reference}"


def test_credits_consumed_through_the_api_and_adjusted_by_staff(make):
    world = make.world()
    org, admin = world["org"], world["admin"]
    admin.full_name = "Paul Durand"
    credits.adjust_credits(org, 1500, actor=admin, reason="Geste commercial")
    # Thousands apart by a narrow no-break space, as amounts are.
    added = "1\u202f500 crédits ajoutés par Paul Durand, motif : Geste commercial"
    assert _sentence("credits.adjustment") == added
    credits.adjust_credits(org, -1, actor=admin, reason="Erreur de saisie")
    assert _sentence("credits.adjustment") == "1 crédit retiré par Paul Durand, motif : Erreur de saisie"
    key, _secret = api_keys.create_key("Plateforme", ["credits:consume"], actor=admin)
    credits.consume_credits(org, 10, actor=None, reason="Analyse", external_reference="analyse-1",
                            api_key=key)
    expected = f"10 crédits consommés via l'API (clé {key.prefix}…, réf. analyse-1)"
    assert _sentence("credits.consumption") == expected
    assert _sentence("api_key.created") == f"Clé d'API « Plateforme » ({key.prefix}…) créée par Paul Durand"


def test_a_webhook_endpoint_created_by_someone_or_by_the_command_line(make):
    staff = make.staff(full_name="Paul Durand")
    webhook_endpoints.create_endpoint(url=HOOK, event_types=["quote.sent"], actor=None)
    assert _sentence("webhook_endpoint.created") == f"Point de réception {HOOK} créé"
    webhook_endpoints.create_endpoint(url=HOOK + "/2", event_types=["quote.sent"], actor=staff)
    assert _sentence("webhook_endpoint.created") == f"Point de réception {HOOK}/2 créé par Paul Durand"


def test_an_unknown_action_or_incomplete_details_read_as_the_code(make):
    org = make.organisation()
    db.session.execute(insert(AuditEvent), [
        {"action": "quote.frobbed", "object_type": "quote", "object_id": 1, "organisation_id": org.id,
         "details": {}, "created_at": utcnow()},
        {"action": "quote.sent", "object_type": "quote", "object_id": 2, "organisation_id": org.id,
         "details": {"n": 2}, "created_at": utcnow()},
        {"action": "invoice.paid", "object_type": "invoice", "object_id": 3, "organisation_id": org.id,
         "details": None, "created_at": utcnow()}])
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.organisation_id == org.id)).all()
    assert sorted(audit_sentences.describe_all(events).values()) == ["invoice.paid", "quote.frobbed",
                                                                     "quote.sent"]


# --- The pages ----------------------------------------------------------------------------------


def test_the_historique_tab_and_the_journal_show_sentences_and_the_raw_details(staff_client):
    world = staff_client.world
    _refusal(world)
    expected = f"Devis {world['quote'].reference} refusé par Marie Martin, motif : trop cher"
    tab = page_text(staff_client.get(f"/admin/organisation/{world['org'].id}/historique"))
    journal = page_text(staff_client.get("/admin/journal/"))
    for page in (tab, journal):
        assert expected in page
        assert f"Devis {world['quote'].reference} envoyé par " in page
        # The codes stay, behind a closed disclosure.
        assert '<details class="audit-raw"><summary><small>détails</small></summary>' in page
        assert "<code>quote.refused</code>" in page and "reason : trop cher" in page
    assert "<td>quote.refused</td>" not in tab  # no longer a column of codes


def test_what_people_typed_stays_text_in_the_sentence_and_the_details(staff_client):
    world = staff_client.world
    quotes.refuse(world["quote"], actor=world["users"][ClientRole.RESPONSABLE], terms_version=world["terms"],
                  channel=Channel.PORTAL, reason="<script>alert(1)</script>")
    db.session.commit()
    for url in (f"/admin/organisation/{world['org'].id}/historique", "/admin/journal/"):
        html = staff_client.get(url).get_data(as_text=True)
        assert "<script>alert(1)" not in html
        assert html.count("motif : &lt;script&gt;alert(1)&lt;/script&gt;") == 1, url
        assert html.count("reason : &lt;script&gt;alert(1)&lt;/script&gt;") == 1, url


def test_a_sentence_in_english(staff_client):
    staff = staff_client.world["admin"]
    staff.full_name = "Paul Durand"
    webhook_endpoints.create_endpoint(url=HOOK, event_types=["quote.sent"], actor=staff)
    db.session.commit()
    page = page_text(staff_client.get("/admin/journal/", headers={"Accept-Language": "en"}))
    assert f"Webhook endpoint {HOOK} created by Paul Durand" in page


def _events(organisation_id: int, quote_id: int, invoice_id: int, count: int) -> None:
    """`count` events of five kinds naming quotes and invoices (the invoice need not exist)."""
    kinds = [("quote.sent", "quote", quote_id, {"number": "DV-2026-00001", "total_ttc_cents": 1200}),
             ("quote.refused", "quote", quote_id, {"reason": "trop cher", "terms": "v1"}),
             ("invoice.paid", "invoice", invoice_id, {"provider": "stripe", "reference": "pi_1"}),
             ("request.answered", "quoterequest", 1, {"quote_id": quote_id}),
             ("credits.adjustment", "creditentry", 1, {"amount": 5, "reason": "geste"})]
    db.session.execute(insert(AuditEvent), [
        {"action": action, "object_type": kind, "object_id": object_id, "organisation_id": organisation_id,
         "details": details, "created_at": utcnow()}
        for action, kind, object_id, details in (kinds[n % len(kinds)] for n in range(count))])
    db.session.commit()


def test_the_pages_run_as_many_queries_for_a_few_events_as_for_a_full_page(staff_client):
    world = staff_client.world
    org = world["org"]
    urls = [f"/admin/organisation/{org.id}/historique", "/admin/journal/"]
    _events(org.id, world["quote"].id, 424242, 5)
    few = {url: queries_of_get(staff_client, url) for url in urls}
    _events(org.id, world["quote"].id, 424242, 120)
    assert {url: queries_of_get(staff_client, url) for url in urls} == few
