"""Accounts: staff invite client users (who set their password from the emailed link), admins
manage the staff accounts and their roles, either deactivates an account, every user chooses their
language; and the seller's own settings (its legal identity, printed on every quote and invoice),
which only admins change.

Like every domain module, functions here flush only; the caller commits once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from . import audit, auth, outbox
from .exceptions import (
    AdminRequired,
    EmailAlreadyUsed,
    EmailTooLong,
    ExternalIdAlreadyUsed,
    FullNameMissing,
    InvalidEmail,
    NotAllowed,
    OrganisationMissing,
    OwnAccountDeactivation,
    OwnRoleChange,
    PasswordTooShort,
    SellerSettingsConflict,
    UnknownClientRole,
    UnknownLanguage,
    UnknownSellerField,
    UnknownStaffRole,
)
from .extensions import db
from .i18n import supported_language
from .models import (
    ClientRole,
    LoginToken,
    Organisation,
    SellerSettings,
    StaffRole,
    User,
    UserKind,
)

# --- Organisations ----------------------------------------------------------------------------


def check_external_id_free(organisation: Organisation) -> None:
    """An organisation's `external_id` (the platform's id of it) names no other organisation;
    the unique index backs this check against a concurrent save."""
    if organisation.external_id is None:
        return
    with db.session.no_autoflush:
        taken = db.session.scalar(select(Organisation.id).where(
            Organisation.external_id == organisation.external_id, Organisation.id != organisation.id))
    if taken is not None:
        raise ExternalIdAlreadyUsed(external_id=organisation.external_id)


# --- Client users -----------------------------------------------------------------------------


def invite_client_user(
    *,
    organisation: Organisation,
    email: str,
    full_name: str,
    role: ClientRole | str,
    actor: User,
    ip: str | None = None,
    now: datetime | None = None,
) -> User:
    """Create a client user without a password and queue the invitation to set one."""
    _require_staff(actor)
    if organisation is None:
        raise OrganisationMissing()
    email = normalise_email(email)
    full_name = " ".join((full_name or "").split())
    if not full_name:
        raise FullNameMissing()
    try:
        role = ClientRole(role)
    except ValueError:
        raise UnknownClientRole() from None
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise EmailAlreadyUsed(email=email)
    user = User(email=email, full_name=full_name, kind=UserKind.CLIENT, client_role=role,
                organisation_id=organisation.id, password_hash=None, active=True)
    try:
        with db.session.begin_nested():  # a concurrent invitation of the same address
            db.session.add(user)
    except IntegrityError:
        raise EmailAlreadyUsed(email=email) from None
    token, seed = create_invitation_token(user, now=now)
    audit.record("user.invited", user, actor=actor, organisation_id=organisation.id, ip=ip,
                 email=email, role=role)
    outbox.enqueue_invitation(user, token=token, seed=seed, invited_by=actor.full_name)
    return user


def normalise_email(email: str) -> str:
    """An address as stored: trimmed, lower case, syntactically valid (no DNS lookup)."""
    email = (email or "").strip().lower()
    try:
        validate_email(email, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        raise InvalidEmail() from None
    if len(email) > 254:
        raise EmailTooLong()
    return email


def create_invitation_token(user: User, *, now: datetime | None = None) -> tuple[LoginToken, str]:
    """A one-time "set your password" token, stored as its hash; returns it and its seed."""
    hours = current_app.config["INVITATION_TTL_HOURS"]
    return auth.create_link(user, purpose=auth.MAGIC_LINK_INVITE, hours=hours, now=now)


def _require_staff(actor: User) -> None:
    if actor is None or actor.kind != UserKind.STAFF:
        raise NotAllowed()


def _require_admin(actor: User) -> None:
    _require_staff(actor)
    if actor.staff_role != StaffRole.ADMIN:
        raise AdminRequired()


# --- Each user's language (client and staff alike) ----------------------------------------------


def checked_language(language: object) -> str:
    """`language` if the product speaks it ('fr', 'en'); UnknownLanguage otherwise."""
    checked = supported_language(language)
    if checked is None:
        raise UnknownLanguage()
    return checked


def set_language(user: User, language: object) -> User:
    """Keep `language` as `user`'s choice for their pages, emails and quotes (invoices stay
    French); flushes."""
    user.language = checked_language(language)
    db.session.flush()
    return user


# --- Staff accounts (admins only) and deactivation -----------------------------------------------


def create_staff_user(*, email: str, full_name: str, role: StaffRole | str, password: str, actor: User,
                      ip: str | None = None) -> User:
    """Create a staff account with its initial password (the admin hands it over; the user can
    change it from « Mon compte »)."""
    _require_admin(actor)
    email = normalise_email(email)
    full_name = " ".join((full_name or "").split())
    if not full_name:
        raise FullNameMissing()
    role = _staff_role(role)
    if len(password or "") < auth.MIN_PASSWORD_LENGTH:
        raise PasswordTooShort(length=auth.MIN_PASSWORD_LENGTH)
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise EmailAlreadyUsed(email=email)
    user = User(email=email, full_name=full_name, kind=UserKind.STAFF, staff_role=role,
                password_hash=auth.hash_password(password), active=True)
    try:
        with db.session.begin_nested():  # the same address created concurrently
            db.session.add(user)
    except IntegrityError:
        raise EmailAlreadyUsed(email=email) from None
    audit.record("staff.created", user, actor=actor, ip=ip, email=email, role=role)
    return user


def set_staff_role(user: User, *, role: StaffRole | str, actor: User, ip: str | None = None) -> User:
    """Change a staff account's role (never one's own: an admin could lock every admin out)."""
    _require_admin(actor)
    if user.kind != UserKind.STAFF:
        raise NotAllowed()
    role = _staff_role(role)
    if user.staff_role == role:
        return user
    if user.id == actor.id:
        raise OwnRoleChange()
    previous, user.staff_role = user.staff_role, role
    db.session.flush()
    audit.record("staff.role_changed", user, actor=actor, ip=ip, email=user.email, previous=previous,
                 role=role)
    return user


def set_active(user: User, *, active: bool, actor: User, ip: str | None = None) -> User:
    """Deactivate an account (every session of it ends, it can no longer sign in) or reactivate it.
    Any staff member for a client user, admins only for a staff account; never one's own."""
    _require_staff(actor)
    if user.kind == UserKind.STAFF:
        _require_admin(actor)
    if not active and user.id == actor.id:
        raise OwnAccountDeactivation()
    if user.active == active:
        return user
    user.active = active
    if not active:
        auth.revoke_sessions(user)
    db.session.flush()
    audit.record("user.reactivated" if active else "user.deactivated", user, actor=actor,
                 organisation_id=user.organisation_id, ip=ip, email=user.email)
    return user


def _staff_role(role: StaffRole | str) -> StaffRole:
    try:
        return StaffRole(role)
    except ValueError:
        raise UnknownStaffRole() from None


# --- Seller settings --------------------------------------------------------------------------

SELLER_FIELDS = (
    "company_name", "legal_form", "share_capital", "address_line1", "address_line2", "postal_code",
    "city", "country", "siren", "rcs_city", "vat_number", "email", "phone", "iban", "bic",
    "early_payment_discount", "late_penalty_rate", "operation_category", "vat_on_debits",
    "quote_validity_days",
)


def save_seller_settings(*, values: dict[str, Any], actor: User, ip: str | None = None) -> SellerSettings:
    """Save the seller settings (the single row id 1, created if missing): admins only, the IBAN
    clients pay to is among them."""
    _require_admin(actor)
    unknown = set(values) - set(SELLER_FIELDS)
    if unknown:
        raise UnknownSellerField(fields=", ".join(sorted(unknown)))
    settings = db.session.get(SellerSettings, 1, with_for_update=True)
    if settings is None:
        settings = SellerSettings(id=1)
        db.session.add(settings)
    changed = sorted(name for name, value in values.items() if getattr(settings, name) != value)
    for name, value in values.items():
        setattr(settings, name, value)
    try:
        db.session.flush()
    except IntegrityError:
        raise SellerSettingsConflict() from None
    audit.record("seller.updated", settings, actor=actor, ip=ip, fields=changed)
    return settings
