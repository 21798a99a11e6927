"""The money side of the benchmark dataset: invoices numbered per year in issue order, credit
notes, payments, the credit ledger, the number counters and the audit trail (written last, in
time order, so that audit ids follow time as they do in real use)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta

from portal.dates import paris_today

from .bulk import Writer, as_json, day, ts

SELLER = {
    "company_name": "Portail Devis SAS", "legal_form": "SAS", "share_capital": "50 000 €",
    "address_line1": "10 rue de la Paix", "postal_code": "75002", "city": "Paris",
    "siren": "123456789", "rcs_city": "Paris", "vat_number": "FR32123456789",
    "address_line2": "", "country": "FR", "email": "facturation@portail-devis.fr",
    "phone": "01 23 45 67 89", "iban": "FR7630006000011234567890189", "bic": "AGRIFRPP",
    "early_payment_discount": "néant", "late_penalty_rate": "trois fois le taux d'intérêt légal",
    "operation_category": "services",
}
SELLER_JSON = as_json(SELLER)


class Draft:
    """An invoice or credit note before it gets its id and number (slots keep memory low)."""

    __slots__ = ("issued_at", "kind", "org", "quote_id", "period", "lines", "sale_date", "credits",
                 "reference", "status", "paid_at", "cancelled_at", "credited", "id", "number",
                 "billed_quotes", "actor", "totals")

    def __init__(self, issued_at, kind, org, quote_id, period, lines, sale_date, credits=0,
                 reference=None, billed_quotes=(), actor=None, credited=None) -> None:
        self.issued_at, self.kind, self.org = issued_at, kind, org
        self.quote_id, self.period = quote_id, period
        self.lines, self.sale_date, self.credits, self.reference = lines, sale_date, credits, reference
        self.billed_quotes, self.actor, self.credited = billed_quotes, actor, credited
        self.status, self.paid_at, self.cancelled_at = "issued", None, None
        ht = sum(line[4] for line in lines)
        vat = sum(line[5] for line in lines)
        self.totals = (ht, vat, ht + vat)


class Ledger:
    """Mixin of the generator: needs `w`, `rng`, `now`, `today`, `current_period`, `next_id`."""

    def __init__(self, writer: Writer, rng: random.Random, now: datetime) -> None:
        self.w, self.rng, self.now = writer, rng, now
        self.events: list[tuple] = []
        self.drafts: list[Draft] = []
        self.monthly_groups: dict[tuple[int, str], list] = defaultdict(list)
        self.grants: dict[int, list] = {}  # organisation id -> [count, credits, first grant time]
        self.credit_rows = 0

    def seller_settings(self) -> None:
        values = dict(SELLER, quote_validity_days=30)
        columns = self.w._columns["seller_settings"]
        self.w.add("seller_settings", tuple([1] + [values[name] for name in columns[1:20]]))

    def audit(self, at, actor, action, object_type, object_id, organisation_id, details) -> None:
        self.events.append((at, actor, action, object_type, object_id, organisation_id,
                            as_json(details) if details else "{}"))

    # --- accepted quotes --------------------------------------------------------------------

    def accepted(self, quote_id, org, reference, decided_at, billing_period, line_rows, credits) -> None:
        """Per order: an invoice at once. Monthly: credits at once; the invoice at the month's close."""
        lines = [(quote_id, label, quantity, price, ht, vat, rate)
                 for _id, _q, _p, _prod, label, quantity, price, rate, _c, ht, vat in line_rows]
        if billing_period is not None:
            if credits:
                self.grant(org.id, quote_id, reference, credits, decided_at, org.users[1])
            if billing_period < self.current_period:
                self.monthly_groups[(org.id, billing_period)].append((quote_id, reference, lines, org))
            return
        self.drafts.append(Draft(decided_at, "invoice", org, quote_id, None, lines,
                                 paris_today(decided_at), credits, reference, actor=org.users[1]))

    def grant(self, org_id, quote_id, reference, credits, at, actor) -> None:
        entry_id = self.next_id("credit_entry")
        self.w.add("credit_entry", (entry_id, org_id, "grant", credits, quote_id, actor,
                                    f"Devis {reference}", ts(at)))
        self.credit_rows += 1
        stats = self.grants.setdefault(org_id, [0, 0, at])
        stats[0] += 1
        stats[1] += credits
        self.audit(at, actor, "credits.granted", "creditentry", entry_id, org_id,
                   {"amount": credits, "quote": reference})

    # --- invoices ---------------------------------------------------------------------------

    def invoices(self) -> None:
        for (_organisation_id, period), billed in self.monthly_groups.items():
            first = date(int(period[:4]), int(period[5:]), 1)
            next_month = (first + timedelta(days=32)).replace(day=1)
            lines = [(quote_id, f"{reference} — {label}", *rest)
                     for quote_id, reference, quote_lines, _org in billed
                     for _q, label, *rest in quote_lines]
            issued_at = datetime.combine(next_month, datetime.min.time()) + timedelta(hours=5)
            self.drafts.append(Draft(issued_at, "invoice", billed[0][3], None, period, lines,
                                     next_month - timedelta(days=1),
                                     billed_quotes=[quote_id for quote_id, *_ in billed]))
        for draft in list(self.drafts):
            self.settle(draft)
        self.drafts.sort(key=lambda draft: draft.issued_at)
        counters: dict[tuple[str, int], int] = defaultdict(int)
        for draft in self.drafts:
            draft.id = self.next_id("invoice")
            year = paris_today(draft.issued_at).year
            series = "FA" if draft.kind == "invoice" else "AV"
            counters[(series, year)] += 1
            draft.number = f"{series}-{year}-{counters[(series, year)]:05d}"
        for draft in self.drafts:
            self.write_invoice(draft)
        self.invoice_counters = counters

    def settle(self, draft: Draft) -> None:
        """Paid, still due, or cancelled by a credit note, depending on its age."""
        rng = self.rng
        age = (self.now - draft.issued_at).total_seconds()
        if age > 60 * 86400:
            roll = rng.random()
            if roll < 0.96:
                draft.status, draft.paid_at = "paid", draft.issued_at + timedelta(days=rng.uniform(1, 45))
            elif roll < 0.97:
                draft.status = "cancelled"
                draft.cancelled_at = draft.issued_at + timedelta(days=rng.uniform(5, 30))
                note = Draft(draft.cancelled_at, "credit_note", draft.org, None, None, draft.lines,
                             draft.sale_date, credited=draft, actor=self.staff[2])
                self.drafts.append(note)
        elif rng.random() < 0.5:
            paid_at = draft.issued_at + timedelta(seconds=rng.uniform(0, age))
            draft.status, draft.paid_at = "paid", paid_at

    def write_invoice(self, draft: Draft) -> None:
        org = draft.org
        issue_date = paris_today(draft.issued_at)
        ht, vat, ttc = draft.totals
        self.w.add("invoice", (
            draft.id, draft.kind, draft.number, org.id, draft.quote_id, draft.period,
            draft.credited.id if draft.credited else None, draft.status, "EUR", day(issue_date),
            day(issue_date + timedelta(days=org.terms_days)), day(draft.sale_date), ht, vat, ttc,
            SELLER_JSON, org.buyer_json, "Annulation" if draft.credited else None, None, None,
            ts(draft.issued_at), ts(draft.paid_at), ts(draft.cancelled_at)))
        for position, (quote_id, label, quantity, price, line_ht, line_vat, rate) in enumerate(
                draft.lines, start=1):
            self.w.add("invoice_line", (self.next_id("invoice_line"), draft.id, position, quote_id,
                                        label, quantity, price, rate, line_ht, line_vat))
        for quote_id in draft.billed_quotes:
            row = self.billed_quote_rows.pop(quote_id)
            row[18] = draft.id  # monthly_invoice_id
            self.w.add("quote", tuple(row))
        if draft.credited:
            self.audit(draft.issued_at, draft.actor, "invoice.credited", "invoice", draft.credited.id,
                       org.id, {"credit_note": draft.number})
        else:
            details = {"number": draft.number, "quote": draft.reference} if draft.reference else {
                "number": draft.number, "period": draft.period}
            self.audit(draft.issued_at, draft.actor, "invoice.issued", "invoice", draft.id, org.id,
                       details)
        if draft.status == "paid":
            self.payment(draft)

    def payment(self, draft: Draft) -> None:
        stripe = self.rng.random() < 0.7
        provider = "stripe" if stripe else "bank_transfer"
        reference = f"pi_bench_{draft.id}" if stripe else f"VIR-{draft.number}"
        actor = None if stripe else self.staff[1]
        self.w.add("payment", (self.next_id("payment"), draft.id, provider, reference, draft.totals[2],
                               "EUR", actor, ts(draft.paid_at)))
        self.audit(draft.paid_at, actor, "invoice.paid", "invoice", draft.id, draft.org.id,
                   {"provider": provider, "reference": reference, "amount_cents": draft.totals[2]})
        if draft.quote_id and draft.credits:
            self.grant(draft.org.id, draft.quote_id, draft.reference, draft.credits, draft.paid_at, actor)

    # --- credits, counters, audit -------------------------------------------------------------

    def credit_ledger(self, target: int) -> None:
        """Consumptions (never more than 80 % of what was granted) and a few staff adjustments,
        up to about `target` credit entries in all."""
        rng = self.rng
        remaining = max(0, target - self.credit_rows)
        total_grants = sum(stats[0] for stats in self.grants.values()) or 1
        for org_id, (count, credits, first) in self.grants.items():
            entries = round(remaining * count / total_grants)
            if not entries:
                continue
            share = credits * 0.8 / entries
            span = max((self.now - first).total_seconds(), 1.0)
            for _ in range(entries):
                at = first + timedelta(seconds=rng.uniform(0, span))
                entry_id = self.next_id("credit_entry")
                if rng.random() < 0.04:
                    actor, amount, kind, reason = self.staff[0], rng.randint(1, 20), "adjustment", \
                        "Geste commercial"
                else:
                    actor, amount, kind, reason = None, -int(share * rng.uniform(0.5, 1.0)), \
                        "consumption", "Consommation"
                    if amount == 0:
                        continue
                self.w.add("credit_entry", (entry_id, org_id, kind, amount, None, actor, reason, ts(at)))
                self.audit(at, actor, f"credits.{kind}", "creditentry", entry_id, org_id,
                           {"amount": amount, "reason": reason})

    def counters(self, quote_numbers: dict[int, int], quote_series: str) -> None:
        for year, value in quote_numbers.items():
            self.w.add("number_counter", (quote_series, year, value))
        for (series, year), value in self.invoice_counters.items():
            self.w.add("number_counter", (series, year, value))

    def flush_audit(self) -> None:
        self.events.sort(key=lambda event: event[0])
        add = self.w.add
        for at, actor, action, object_type, object_id, organisation_id, details in self.events:
            add("audit_event", (self.next_id("audit_event"), actor, action, object_type, object_id,
                                organisation_id, details, None, ts(at)))
        self.events = []
