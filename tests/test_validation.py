"""Typed input: whole numbers (portal.forms.parse_int), legal identities and addresses
(portal.validation), and the back office's organisation form that uses them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal import validation
from portal.demo import load_demo
from portal.exceptions import (
    InvalidCountry,
    InvalidEmail,
    InvalidInput,
    InvalidNumber,
    InvalidPostalCode,
    InvalidSiren,
    InvalidSiret,
    InvalidVatNumber,
)
from portal.extensions import db
from portal.forms import parse_int
from portal.models import BillingMode, Organisation, SellerSettings

from .web import page_text, post_form, sign_in

# --- Whole numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "number"), [
    ("12", 12), (" 12 ", 12), ("\u00a012\t", 12), ("1 000", 1000), ("1\u202f000", 1000),
    ("-0", 0), ("0", 0), ("007", 7), ("100", 100),
])
def test_parse_int_accepts_ascii_whole_numbers_within_bounds(app, text, number):
    assert parse_int(text, minimum=0, maximum=100_000) == number


@pytest.mark.parametrize("text", [
    "9" * 5000, "9" * 4301, "1" + "0" * 40, str(2**63), str(2**31), "-1", "100001",
    "NaN", "nan", "Infinity", "-Infinity", "inf", "1e5", "1E5", "12.0", "12,0", "0x10", "0b1",
    "1_000", "+5", "--5", "5-", "١٢", "²", "１２", "٣", "", " ", "\x00", "1\x002", "douze", None,
])
def test_parse_int_refuses_anything_else_with_a_french_message(app, text):
    with pytest.raises(InvalidNumber) as refused:
        parse_int(text, minimum=0, maximum=100_000)
    assert str(refused.value) == ("Nombre invalide : saisissez un nombre entier compris entre 0 et "
                                  "100\u202f000.")


def test_parse_int_raises_the_error_it_is_given(app):
    from portal.exceptions import UnknownProduct

    with pytest.raises(UnknownProduct):
        parse_int("9" * 5000, minimum=1, maximum=10, error=UnknownProduct)


# --- Identities, one by one -------------------------------------------------------------------


@pytest.mark.parametrize(("check", "typed", "stored"), [
    (validation.siren, "732829320", "732829320"),
    (validation.siren, " 732 829 320 ", "732829320"),
    (validation.siren, "732.829.320", "732829320"),
    (validation.siren, "356000000", "356000000"),  # La Poste
    (validation.siret, "73282932000074", "73282932000074"),
    (validation.siret, "732 829 320 00074", "73282932000074"),
    (validation.siret, "35600000000048", "35600000000048"),  # La Poste's head office: Luhn
    (validation.siret, "356 000 000 12341", "35600000012341"),  # a La Poste office: digit sum
    (validation.vat_number, "FR44732829320", "FR44732829320"),
    (validation.vat_number, "fr 44 732 829 320", "FR44732829320"),
    (validation.vat_number, "DE123456789", "DE123456789"),
    (validation.vat_number, "NL123456789B01", "NL123456789B01"),
    (validation.vat_number, "EL123456789", "EL123456789"),
    (validation.country, "FR", "FR"),
    (validation.country, " de ", "DE"),
    (validation.email, " Compta@Exemple.FR ", "Compta@exemple.fr"),
])
def test_good_identities_pass_and_are_stored_compact(app, check, typed, stored):
    assert check(typed) == stored


@pytest.mark.parametrize(("check", "typed", "error", "message"), [
    (validation.siren, "NaN", InvalidSiren, "SIREN invalide : 9 chiffres"),
    (validation.siren, "732829321", InvalidSiren, "sa clé de contrôle ne correspond pas"),
    (validation.siren, "73282932", InvalidSiren, "SIREN invalide : 9 chiffres"),
    (validation.siren, "٧٣٢٨٢٩٣٢٠", InvalidSiren, "SIREN invalide : 9 chiffres"),
    (validation.siren, "9" * 5000, InvalidSiren, "SIREN invalide : 9 chiffres"),
    (validation.siret, "73282932000075", InvalidSiret, "sa clé de contrôle ne correspond pas"),
    (validation.siret, "7328293200007", InvalidSiret, "SIRET invalide : 14 chiffres"),
    (validation.siret, "35600000012344", InvalidSiret, "sa clé de contrôle ne correspond pas"),
    (validation.vat_number, "FR45732829320", InvalidVatNumber, "sa clé ne correspond pas au SIREN 732829320"),
    (validation.vat_number, "FR4473282932", InvalidVatNumber, "FR, une clé de 2 chiffres"),
    (validation.vat_number, "FRXX732829320", InvalidVatNumber, "FR, une clé de 2 chiffres"),
    (validation.vat_number, "US123456789", InvalidVatNumber, "État membre de l'Union européenne"),
    (validation.vat_number, "GR123456789", InvalidVatNumber, "État membre de l'Union européenne"),
    (validation.vat_number, "NaN", InvalidVatNumber, "État membre de l'Union européenne"),
    (validation.vat_number, "DE1", InvalidVatNumber, "après le code pays DE"),
    (validation.vat_number, "DE" + "1" * 13, InvalidVatNumber, "après le code pays DE"),
    (validation.country, "-1", InvalidCountry, "Pays inconnu"),
    (validation.country, "EU", InvalidCountry, "Pays inconnu"),
    (validation.country, "XK", InvalidCountry, "Pays inconnu"),
    (validation.country, "FRA", InvalidCountry, "Pays inconnu"),
    (validation.country, "", InvalidCountry, "Pays inconnu"),
    (validation.email, "../../etc/passwd", InvalidEmail, "Adresse email invalide"),
    (validation.email, "a@b", InvalidEmail, "Adresse email invalide"),
    (validation.email, "a" * 250 + "@b.fr", InvalidEmail, "Adresse email invalide"),
])
def test_bad_identities_are_refused_with_a_french_message(app, check, typed, error, message):
    with pytest.raises(error) as refused:
        check(typed)
    assert message in str(refused.value)


def test_a_siret_or_vat_number_of_another_siren_is_refused(app):
    assert validation.siret("73282932000074", siren_number="732829320") == "73282932000074"
    with pytest.raises(InvalidSiret, match="doit commencer par le SIREN de l'organisation"):
        validation.siret("73282932000074", siren_number="552100554")
    assert validation.vat_number("FR44732829320", siren_number="732829320") == "FR44732829320"
    with pytest.raises(InvalidVatNumber, match="ne correspond pas au SIREN de l'organisation"):
        validation.vat_number("FR44732829320", siren_number="552100554")


def test_the_french_vat_key_is_computed_from_the_siren(app):
    assert validation.french_vat_key("732829320") == "44"
    assert validation.french_vat_key("552100554") == "96"


@pytest.mark.parametrize(("code", "country", "stored"), [
    ("69001", "FR", "69001"), (" 69 001 ", "FR", "69001"), ("97400", "RE", "97400"),
    ("98000", "MC", "98000"), ("sw1a 1aa", "GB", "SW1A 1AA"), ("10115", "DE", "10115"),
    ("1000-001", "PT", "1000-001"),
])
def test_postal_codes_are_five_digits_in_france(app, code, country, stored):
    assert validation.postal_code(code, country_code=country) == stored


@pytest.mark.parametrize(("code", "country", "message"), [
    ("6900", "FR", "5 chiffres en France"), ("690011", "FR", "5 chiffres en France"),
    ("NaN", "FR", "5 chiffres en France"), ("٦٩٠٠١", "FR", "5 chiffres en France"),
    ("../../etc", "DE", "10 lettres, chiffres"), ("12345678901", "DE", "10 lettres, chiffres"),
])
def test_bad_postal_codes_are_refused(app, code, country, message):
    with pytest.raises(InvalidPostalCode, match=message):
        validation.postal_code(code, country_code=country)


def test_the_country_list_is_iso_3166_alpha_2(app):
    assert len(validation.COUNTRY_CODES) == 249
    assert {"FR", "DE", "BE", "CH", "GB", "US", "RE", "MC"} <= validation.COUNTRY_CODES
    assert not {"EU", "UK", "XK", "ZZ", "FX"} & validation.COUNTRY_CODES
    assert all(error.__mro__[1] is InvalidInput for error in (
        InvalidSiren, InvalidSiret, InvalidVatNumber, InvalidCountry, InvalidPostalCode, InvalidEmail))


# --- Factories and demo data pass the checks --------------------------------------------------


def _identity_is_valid(organisation) -> None:
    siren = validation.siren(organisation.siren)
    if organisation.siret:
        validation.siret(organisation.siret, siren_number=siren)
    if organisation.vat_number:
        validation.vat_number(organisation.vat_number, siren_number=siren)
    validation.postal_code(organisation.postal_code, country_code=validation.country(organisation.country))


def test_factory_organisations_have_valid_and_distinct_sirens(make):
    organisations = [make.organisation() for _ in range(30)]
    for organisation in organisations:
        _identity_is_valid(organisation)
    assert len({organisation.siren for organisation in organisations}) == 30


def test_the_demo_organisations_and_seller_pass_the_checks(app):
    assert load_demo()
    organisations = db.session.scalars(select(Organisation)).all()
    assert len(organisations) == 3
    for organisation in organisations:
        _identity_is_valid(organisation)
    seller = db.session.get(SellerSettings, 1)
    validation.vat_number(seller.vat_number, siren_number=validation.siren(seller.siren))


# --- The back office's organisation form --------------------------------------------------------

GOOD = {"name": "Boulangeries Martin SAS", "legal_form": "SAS", "siren": "732 829 320",
        "siret": "732 829 320 00074", "vat_number": "FR 44 732829320", "address_line1": "1 rue du Four",
        "address_line2": "", "postal_code": "44000", "city": "Nantes", "country": "FR",
        "billing_email": "compta@martin.example", "billing_mode": "monthly", "payment_terms_days": "45"}


@pytest.fixture
def staff_client(client, make):
    sign_in(client, make.staff())
    return client


def _organisations() -> list[tuple]:
    db.session.expire_all()
    return db.session.execute(select(Organisation.name, Organisation.siren, Organisation.siret,
                                     Organisation.vat_number, Organisation.postal_code,
                                     Organisation.country, Organisation.billing_email,
                                     Organisation.billing_mode, Organisation.payment_terms_days)
                              .order_by(Organisation.id)).all()


def test_the_organisation_form_saves_good_identities_normalised(staff_client):
    response = post_form(staff_client, "/admin/organisations/new/", GOOD)
    assert response.status_code == 302, page_text(response)
    assert _organisations() == [("Boulangeries Martin SAS", "732829320", "73282932000074",
                                 "FR44732829320", "44000", "FR", "compta@martin.example",
                                 BillingMode.MONTHLY, 45)]


def test_the_organisation_form_offers_countries_by_french_name(staff_client):
    page = page_text(staff_client.get("/admin/organisations/new/"))
    assert '<option selected value="FR">France</option>' in page
    assert '<option value="DE">Allemagne</option>' in page
    assert '<option value="CI">Côte d’Ivoire</option>' in page
    assert '<option value="monthly">Facturation consolidée mensuelle</option>' in page


@pytest.mark.parametrize(("field", "value", "message"), [
    ("siren", "NaN", "SIREN invalide : 9 chiffres dont le dernier est une clé de contrôle"),
    ("siren", "732829321", "SIREN invalide : sa clé de contrôle ne correspond pas"),
    ("country", "-1", "Pays inconnu : choisissez un pays de la liste"),
    ("billing_email", "../../etc/passwd", "Adresse email invalide : vérifiez sa saisie."),
    ("siret", "55210055400005", "Le SIRET doit commencer par le SIREN de l'organisation (732829320)."),
    ("siret", "73282932000075", "SIRET invalide : sa clé de contrôle ne correspond pas"),
    ("vat_number", "FR96552100554", "Le numéro de TVA ne correspond pas au SIREN de l'organisation"),
    ("vat_number", "FR45732829320", "Numéro de TVA français invalide : sa clé ne correspond pas"),
    ("vat_number", "../../etc/passwd", "Numéro de TVA intracommunautaire invalide"),
    ("postal_code", "4400", "Le code postal compte 5 chiffres en France"),
    ("payment_terms_days", "9" * 5000, "Nombre invalide : saisissez un nombre entier compris entre 0 et 60."),
    ("payment_terms_days", str(2**63), "Nombre invalide : saisissez un nombre entier compris entre 0 et 60."),
    ("payment_terms_days", "NaN", "Nombre invalide : saisissez un nombre entier compris entre 0 et 60."),
    ("payment_terms_days", "-1", "Nombre invalide : saisissez un nombre entier compris entre 0 et 60."),
    ("billing_mode", "-1", "Choisissez un mode de facturation de la liste."),
])
def test_a_bad_identity_is_refused_on_its_field_and_nothing_is_saved(staff_client, field, value, message):
    response = post_form(staff_client, "/admin/organisations/new/", {**GOOD, field: value})
    assert response.status_code == 200
    assert message in page_text(response)
    assert _organisations() == []


def test_a_bad_identity_does_not_change_an_existing_organisation(staff_client, make):
    organisation = make.organisation(name="ACME", siren="732829320", country="FR", postal_code="69001")
    db.session.commit()
    before = _organisations()
    url = f"/admin/organisations/edit/?id={organisation.id}"
    for field, value in (("siren", "NaN"), ("country", "-1"), ("billing_email", "../../etc/passwd")):
        response = post_form(staff_client, url, {**GOOD, field: value})
        assert response.status_code == 200
        assert "invalide" in page_text(response) or "inconnu" in page_text(response)
        assert _organisations() == before
    response = post_form(staff_client, url, GOOD)
    assert response.status_code == 302
    assert _organisations()[0][:3] == ("Boulangeries Martin SAS", "732829320", "73282932000074")


def test_blank_optional_identities_are_stored_as_null(staff_client):
    blank = dict.fromkeys(("legal_form", "siren", "siret", "vat_number", "address_line1", "address_line2",
                           "postal_code", "city", "billing_email"), "")
    response = post_form(staff_client, "/admin/organisations/new/", {**GOOD, **blank})
    assert response.status_code == 302, page_text(response)
    organisation = db.session.scalar(select(Organisation))
    assert (organisation.siren, organisation.vat_number, organisation.billing_email) == (None, None, None)
    assert db.session.scalar(select(func.count()).select_from(Organisation)) == 1
