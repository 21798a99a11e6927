"""The one transaction boundary of views (portal/transaction.py), and that no view commits itself."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from flask import get_flashed_messages
from sqlalchemy import event, func, select

from portal.exceptions import AccountLocked, DomainError, NothingToBill, PaymentMismatch
from portal.extensions import db
from portal.models import Product
from portal.transaction import transaction, transactional

PORTAL = Path(__file__).resolve().parent.parent / "portal"
VIEW_MODULES = sorted([*(PORTAL / "admin").rglob("*.py"), *(PORTAL / "client").rglob("*.py"),
                       PORTAL / "webhooks.py"])


@pytest.fixture
def commits(app):
    """The COMMITs sent to the database while the test runs."""
    seen: list[object] = []

    def count(connection) -> None:
        seen.append(connection)

    event.listen(db.engine, "commit", count)
    yield seen
    event.remove(db.engine, "commit", count)


def _product(sku: str) -> Product:
    product = Product(sku=sku, name=f"Produit {sku}", unit_price_cents=1000, vat_rate_bp=2000,
                      credits_per_unit=0, published=True)
    db.session.add(product)
    db.session.flush()
    return product


def _products() -> int:
    db.session.rollback()  # read what the database holds, not the session
    return db.session.scalar(select(func.count()).select_from(Product))


def test_success_commits_once_at_the_end_of_the_block(app, commits):
    with app.test_request_context("/"), transaction() as outcome:
        _product("A-1")
        _product("A-2")
        assert commits == []  # nothing before the end of the block
    assert outcome.ok and outcome.error is None
    assert len(commits) == 1
    assert _products() == 2


def test_a_refusal_rolls_back_the_whole_block_flashes_and_logs_it(app, commits, caplog):
    caplog.set_level(logging.WARNING, logger="portal.errors")
    with app.test_request_context("/"):
        with transaction() as outcome:
            _product("B-1")
            _product("B-2")
            raise NothingToBill()
        assert get_flashed_messages(with_categories=True) == [("error", str(NothingToBill()))]
    assert not outcome.ok and isinstance(outcome.error, NothingToBill)
    assert commits == [] and _products() == 0
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Request refused")]
    assert len(refusals) == 1 and "NothingToBill (409)" in refusals[0]


def test_refusals_outside_those_named_propagate_after_a_rollback(app, commits):
    with app.test_request_context("/"):
        with pytest.raises(PaymentMismatch), transaction(refusals=NothingToBill):
            _product("C-1")
            raise PaymentMismatch()
        with pytest.raises(RuntimeError), transaction():
            _product("C-2")
            raise RuntimeError("a bug is no refusal")
        assert get_flashed_messages() == []
    assert commits == [] and _products() == 0


def test_a_kept_refusal_commits_what_the_block_wrote(app, commits):
    with app.test_request_context("/"):
        with transaction(keep=AccountLocked) as outcome:
            _product("D-1")  # as the lock's email to the account owner
            raise AccountLocked(minutes=15)
        assert get_flashed_messages() == [str(AccountLocked(minutes=15))]
    assert isinstance(outcome.error, AccountLocked)
    assert len(commits) == 1 and _products() == 1


@pytest.mark.parametrize(("status", "committed"), [(200, True), (302, True), (400, False), (409, False)])
def test_the_decorator_commits_once_after_a_response_below_400(app, commits, status, committed):
    @transactional
    def view():
        _product("E-1")
        return "ok", status

    with app.test_request_context("/"):
        assert view().status_code == status
    assert len(commits) == int(committed)
    assert _products() == int(committed)


def test_the_decorator_lets_a_refusal_reach_the_error_handler(app, commits):
    @transactional
    def view():
        _product("F-1")
        raise NothingToBill()

    with app.test_request_context("/"), pytest.raises(DomainError):
        view()
    assert commits == [] and _products() == 0


def _session_ends(source: str, name: str) -> list[str]:
    """The `….session.commit()` / `….session.rollback()` calls written in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("commit", "rollback")
                and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "session"):
            found.append(f"{name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_no_view_commits_or_rolls_back_itself():
    assert any(path.name == "webhooks.py" for path in VIEW_MODULES)
    found = [line for path in VIEW_MODULES
             for line in _session_ends(path.read_text(encoding="utf-8"), str(path.relative_to(PORTAL)))]
    assert found == [], "views go through portal.transaction:\n" + "\n".join(found)


@pytest.mark.parametrize("call", ["db.session.commit()", "db.session.rollback()",
                                  "self.db.session.commit()"])
def test_the_scan_finds_a_commit_or_rollback_written_in_a_view(call):
    assert len(_session_ends(f"def view():\n    {call}\n", "sample.py")) == 1
