"""Legal identities and addresses, checked and normalised: SIREN, SIRET, VAT number, country,
postal code, email.

A leaf helper (it imports nothing from the domain): the back-office forms use it today, the domain
can use it tomorrow. Each function returns the value as it is stored (spaces and dots removed,
upper case where it applies) or raises a named `InvalidInput` whose French message says what is
expected.
"""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

from .exceptions import (
    FrenchVatKeyMismatch,
    InvalidCountry,
    InvalidEmail,
    InvalidForeignVatNumber,
    InvalidFrenchPostalCode,
    InvalidFrenchVatNumber,
    InvalidPostalCode,
    InvalidSiren,
    InvalidSiret,
    InvalidVatNumber,
    SirenChecksum,
    SiretChecksum,
    SiretOfAnotherSiren,
    VatNumberOfAnotherSiren,
)


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ISO 3166-1 alpha-2: the 249 officially assigned codes (no reserved ones such as EU, UK or XK).
COUNTRY_CODES = _codes("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV
BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES
ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE
IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU
NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM
SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE
VG VI VN VU WF WS YE YT ZA ZM ZW
""")
# Intra-community VAT prefixes: the member states (Greece is EL) and Northern Ireland (XI).
EU_VAT_PREFIXES = _codes("AT BE BG CY CZ DE DK EE EL ES FI FR HR HU IE IT LT LU LV MT NL PL PT RO "
                         "SE SI SK XI")
# Where postal codes are the French five digits: France, its overseas departments and
# collectivities that have their own ISO code, and Monaco.
FIVE_DIGIT_POSTAL_CODES = _codes("FR GP MQ GF RE YT PM BL MF WF PF NC MC")

_SEPARATORS = re.compile(r"[\s.\-]+")  # what people type inside numbers: spaces, dots, hyphens
_FRENCH_VAT = re.compile(r"FR(?P<key>[0-9]{2})(?P<siren>[0-9]{9})")
_OTHER_VAT = re.compile(r"[A-Z]{2}[0-9A-Z+*]{2,12}")
_POSTAL_CODE = re.compile(r"[A-Z0-9](?:[A-Z0-9 \-]{0,8}[A-Z0-9])?")
_LA_POSTE = "356000000"  # La Poste's establishments: SIRET checked by digit sum, not Luhn
_MAX_INPUT = 64  # longer than any of these identifiers once compacted: refused before any parsing


def compact(value: str | None) -> str:
    """The text without spaces, dots or hyphens, in upper case ('' for None)."""
    return _SEPARATORS.sub("", (value or "")[:_MAX_INPUT * 4]).upper()


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum (ISO/IEC 7812) of ASCII digits is right."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _digits(value: str, length: int) -> bool:
    return len(value) == length and value.isascii() and value.isdigit()


def siren(value: str | None) -> str:
    """A SIREN: 9 digits, Luhn checksum."""
    number = compact(value)
    if not _digits(number, 9):
        raise InvalidSiren()
    if not luhn_valid(number):
        raise SirenChecksum()
    return number


def siret(value: str | None, *, siren_number: str | None = None) -> str:
    """A SIRET: 14 digits, Luhn checksum (La Poste's: digit sum a multiple of 5), a valid SIREN
    as its first 9 digits, and that SIREN is `siren_number` when given."""
    number = compact(value)
    if not _digits(number, 14):
        raise InvalidSiret()
    if number.startswith(_LA_POSTE) and number != f"{_LA_POSTE}00048":  # 00048: its head office
        valid = sum(map(int, number)) % 5 == 0
    else:
        valid = luhn_valid(number)
    if not valid or not luhn_valid(number[:9]):
        raise SiretChecksum()
    if siren_number and number[:9] != siren_number:
        raise SiretOfAnotherSiren(siren=siren_number)
    return number


def french_vat_key(siren_number: str) -> str:
    """The two-digit key of a French VAT number: (12 + 3 × (SIREN mod 97)) mod 97."""
    return f"{(12 + 3 * (int(siren_number) % 97)) % 97:02d}"


def vat_number(value: str | None, *, siren_number: str | None = None) -> str:
    """An intra-community VAT number: a French one is FR + its key + a valid SIREN (that SIREN is
    `siren_number` when given); another member state's is checked for its shape only."""
    number = compact(value)
    prefix = number[:2]
    if len(number) > _MAX_INPUT or prefix not in EU_VAT_PREFIXES:
        raise InvalidVatNumber()
    if prefix != "FR":
        if not _OTHER_VAT.fullmatch(number):
            raise InvalidForeignVatNumber(prefix=prefix)
        return number
    match = _FRENCH_VAT.fullmatch(number)
    if not match:
        raise InvalidFrenchVatNumber()
    embedded = match["siren"]
    if not luhn_valid(embedded) or match["key"] != french_vat_key(embedded):
        raise FrenchVatKeyMismatch(siren=embedded)
    if siren_number and embedded != siren_number:
        raise VatNumberOfAnotherSiren(siren=siren_number)
    return number


def country(value: str | None) -> str:
    """An ISO 3166-1 alpha-2 country code, in upper case."""
    code = (value or "").strip().upper()
    if code not in COUNTRY_CODES:
        raise InvalidCountry()
    return code


def postal_code(value: str | None, *, country_code: str | None = "FR") -> str:
    """A postal code: 5 digits in France (overseas and Monaco included), elsewhere up to 10
    letters, digits, spaces or hyphens."""
    code = " ".join((value or "")[:_MAX_INPUT].split()).upper()
    if country_code in FIVE_DIGIT_POSTAL_CODES:
        code = code.replace(" ", "")
        if not _digits(code, 5):
            raise InvalidFrenchPostalCode()
        return code
    if len(code) > 10 or not code.isascii() or not _POSTAL_CODE.fullmatch(code):
        raise InvalidPostalCode()
    return code


def email(value: str | None) -> str:
    """An email address, syntactically valid (no DNS lookup), as normalised by email_validator."""
    text = (value or "").strip()
    if len(text) > 254:
        raise InvalidEmail()
    try:
        return validate_email(text, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError:
        raise InvalidEmail() from None
