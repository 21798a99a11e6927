"""README's demo section says what a new user meets: every account of its « Demo logins » table
signs in with the password it gives, its three organisations exist with the billing it names, and
its card hint is the one the payment page shows (the one the browser journey pays with)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from portal.demo import load_demo
from portal.extensions import db
from portal.models import BillingMode, Organisation

from .web import csrf_token

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
DEMO_SECTION = README.split("### Demo logins", 1)[1].split("\n## ", 1)[0]
PAYMENT_TEMPLATE = (Path(__file__).resolve().parents[1] / "templates/client/payment.html").read_text(
    encoding="utf-8")


def _logins() -> list[tuple[str, list[str], str]]:
    """(who, emails, password) of each row of the table; « same for `martin` and `lefevre` » spelled out."""
    rows = []
    for line in DEMO_SECTION.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[2].startswith("`"):
            continue
        emails = re.findall(r"`([^`]+@[^`]+)`", cells[1])
        others = cells[1].split("same for", 1)[1] if "same for" in cells[1] else ""
        for other in re.findall(r"`(\w+)`", others):
            emails += [email.replace("@dupont.", f"@{other}.") for email in emails if "@dupont." in email]
        rows.append((cells[0], emails, cells[2].strip("`")))
    return rows


@pytest.fixture
def demo(app):
    assert load_demo()
    db.session.commit()


def test_the_table_lists_staff_and_the_three_roles_of_the_three_client_organisations():
    emails = [email for _, listed, _ in _logins() for email in listed]
    assert len(emails) == 2 + 3 * 3 and len(set(emails)) == len(emails)


@pytest.mark.parametrize("who, emails, password", _logins(), ids=lambda value: str(value)[:30])
def test_every_demo_login_of_the_readme_signs_in(demo, new_client, who, emails, password):
    sign_in_page, home = ("/admin/connexion", "/admin/") if who.startswith("staff") else (
        "/espace-client/connexion", "/espace-client/")
    for email in emails:
        client = new_client()
        answer = client.post(sign_in_page, data={"csrf_token": csrf_token(client, sign_in_page),
                                                 "email": email, "password": password})
        assert answer.status_code == 302, (email, answer.status_code)
        page = client.get(home, follow_redirects=True)
        assert page.status_code == 200 and "connexion" not in page.request.path, email


def test_the_organisations_it_names_exist_with_the_billing_it_says(demo):
    modes = dict(db.session.execute(select(Organisation.name, Organisation.billing_mode)).all())
    said = " ".join(DEMO_SECTION.split())
    assert "*Atelier Dupont SARL* (per-order billing)" in said
    assert "*Boulangeries Martin SAS* (monthly billing" in said
    assert "*Cabinet Lefèvre & Associés* (SELARL, per-order" in said
    assert modes["Atelier Dupont SARL"] == BillingMode.PER_ORDER
    assert modes["Boulangeries Martin SAS"] == BillingMode.MONTHLY
    assert modes["Cabinet Lefèvre & Associés"] == BillingMode.PER_ORDER


def test_its_card_hint_is_the_payment_pages():
    readme = re.search(r"number `(\d{16})`, month `(\d\d)`, year on two digits `(\d\d)` \(for 20\3\),\s+"
                       r"CVC `(\d{3})`, postal code optional\. `(\d{16})` is declined", DEMO_SECTION)
    page = re.search(r"carte (\d{16}), mois (\d\d), année sur deux chiffres (\d\d) \(pour 20\3\), "
                     r"cryptogramme (\d{3}), code postal facultatif ; carte refusée : (\d{16})",
                     PAYMENT_TEMPLATE)
    assert readme and page
    assert readme.groups() == page.groups()
