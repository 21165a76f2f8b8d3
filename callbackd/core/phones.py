"""Phone numbers: normalised with phonenumbers (default region CN) to E.164, and masked for display."""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import NamedTuple

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberFormat, PhoneNumberType

# Separators people type, and full-width digits and signs, all folded before parsing.
_FOLD = str.maketrans(
    {**{chr(0xFF10 + d): str(d) for d in range(10)}, "＋": "+", "（": "(", "）": ")", "－": "-", "　": " "}
)
_SEPARATORS = re.compile(r"[\s\-()（）]+")
_SMS_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


class PhoneError(ValueError):
    """A number that cannot be called: its message says why."""


class Phone(NamedTuple):
    e164: str
    sms: bool  # a mobile number; landlines cannot receive SMS


@cache
def mobile_pattern(region: str) -> re.Pattern[str] | None:
    """The library's own pattern of a region's mobile numbers (national digits), None when it has none: lets the
    common case (an 11-digit mobile) skip building a PhoneNumber. It matches ASCII digits only (its \\d is [0-9]),
    so for region CN a cell of 11 characters that it matches in full is 11 ASCII digits, and normalises to "+86"
    and those digits, SMS-capable."""
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.mobile is None or not metadata.mobile.national_number_pattern:
        return None
    return re.compile(metadata.mobile.national_number_pattern, re.ASCII)


def normalise(raw: str | int | None, region: str = "CN") -> Phone:
    """Parse a number as a hall system writes it (spaces, dashes, brackets, +86/86 prefixes, full-width digits)."""
    if raw is None:
        raise PhoneError("phone number missing")
    text = str(raw).strip()
    if text.isascii() and text.isdigit():
        digits = text  # the usual cell, plain ASCII digits: nothing to fold or strip out
    else:
        text = text.translate(_FOLD)
        if not text:
            raise PhoneError("phone number missing")
        digits = _SEPARATORS.sub("", text)
    if region == "CN":
        national = digits
        if len(national) > 11:  # +86 and the like only ever precede a mobile's 11 digits
            for prefix in ("+86", "0086", "86"):
                if national.startswith(prefix) and len(national) - len(prefix) == 11:
                    national = national[len(prefix) :]
                    break
        pattern = mobile_pattern(region)
        if len(national) == 11 and national.isdigit() and pattern is not None and pattern.fullmatch(national):
            return Phone("+86" + national, True)
    return _parse(digits, region, text)


# Ledgers repeat numbers, and the library's parse is some 40 times the cost of the mobile check above: each
# distinct number that needs it is parsed once (per process, and at most this many remembered).
@lru_cache(maxsize=1 << 16)
def _parse(digits: str, region: str, text: str) -> Phone:
    try:
        number = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        raise PhoneError(f"phone number {text!r} is not a number") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError(f"phone number {text!r} is not a valid number")
    return Phone(
        phonenumbers.format_number(number, PhoneNumberFormat.E164),
        phonenumbers.number_type(number) in _SMS_TYPES,
    )


def mask(e164: str) -> str:
    """The number as staff may see it: national form with the middle hidden (138****8000)."""
    national = e164[3:] if e164.startswith("+86") else e164
    if len(national) <= 7:
        return "*" * len(national)
    return national[:3] + "*" * (len(national) - 7) + national[-4:]


def mask_in(text: object, e164: str) -> str:
    """`text` with `e164` masked wherever it appears, in E.164 or national form: a provider's or a plugin's
    message often names the number it failed on."""
    national = e164.removeprefix("+86")
    return str(text).replace(e164, mask(e164)).replace(national, mask(e164))
