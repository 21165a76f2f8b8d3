"""Phone numbers: normalised with phonenumbers to E.164 within the regions callbackd calls (`[phones] regions`, by
default CN), refused when premium, toll-free or shared-cost (400/800), and masked for display."""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import NamedTuple

# phonenumbers (its metadata and matchers, some 10-20 ms to import) is imported where a number is parsed or a
# region looked up: masking, listing and settings that keep the default region never need it.

# Separators people type, and full-width digits and signs, all folded before parsing.
_FOLD = str.maketrans(
    {**{chr(0xFF10 + d): str(d) for d in range(10)}, "＋": "+", "（": "(", "）": ")", "－": "-", "　": " "}
)
_SEPARATORS = re.compile(r"[\s\-()（）]+")
DEFAULT_REGIONS = ("CN",)


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
    from phonenumbers import PhoneMetadata

    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.mobile is None or not metadata.mobile.national_number_pattern:
        return None
    return re.compile(metadata.mobile.national_number_pattern, re.ASCII)


def normalise(raw: str | int | None, regions: tuple[str, ...] = DEFAULT_REGIONS) -> Phone:
    """Parse a number as a hall system writes it (spaces, dashes, brackets, +86/86 prefixes, full-width digits): a
    number without a country code is read as the first region's. A number of another region, and one that is no
    applicant's own line (premium, toll-free, shared-cost), is a `PhoneError`; its message shows the number masked."""
    region = regions[0]
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
    return _parse(digits, regions, text)


# Ledgers repeat numbers, and the library's parse is some 40 times the cost of the mobile check above: each
# distinct number that needs it is parsed once (per process, and at most this many remembered).
@lru_cache(maxsize=1 << 16)
def _parse(digits: str, regions: tuple[str, ...], text: str) -> Phone:
    import phonenumbers

    try:
        number = phonenumbers.parse(digits, regions[0])
    except phonenumbers.NumberParseException:
        raise PhoneError(f"phone number {hidden(text)!r} is not a number") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError(f"phone number {hidden(text)!r} is not a valid number")
    region = phonenumbers.region_code_for_number(number)
    if region not in regions:
        raise PhoneError(f"phone number {hidden(text)!r} is in region {region}, outside the regions callbackd calls "
                         f"({', '.join(regions)}; [phones] regions)")
    kind = phonenumbers.number_type(number)
    if kind not in _callable_types():
        raise PhoneError(f"phone number {hidden(text)!r} is {_type_names().get(kind, 'not an applicant line')}, "
                         f"not an applicant's own line")
    return Phone(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), kind in _sms_types())


@cache
def _sms_types() -> frozenset[int]:
    from phonenumbers import PhoneNumberType

    return frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


@cache
def _callable_types() -> frozenset[int]:
    """An applicant is called on a line of their own: a hotline (400, 800), a premium or a shared number is never
    one."""
    from phonenumbers import PhoneNumberType

    return frozenset({PhoneNumberType.FIXED_LINE, *_sms_types()})


@cache
def _type_names() -> dict[int, str]:
    from phonenumbers import PhoneNumberType

    return {
        PhoneNumberType.TOLL_FREE: "a toll-free (800) number", PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
        PhoneNumberType.SHARED_COST: "a shared-cost (400) number", PhoneNumberType.UAN: "a hotline number",
        PhoneNumberType.VOIP: "a VoIP number", PhoneNumberType.PERSONAL_NUMBER: "a forwarding number",
        PhoneNumberType.PAGER: "a pager number", PhoneNumberType.VOICEMAIL: "a voicemail number",
    }


def mask(e164: str) -> str:
    """The number as staff may see it, with the middle hidden: a mobile 138****8000, a landline with its trunk 0
    and area code 010****5678 (national form), another region's number in E.164 +85*****4567."""
    if e164.startswith("+86"):
        national = e164[3:]
        if not (len(national) == 11 and national[0] == "1"):  # a landline: its area code as people write it, 010
            national = "0" + national
    else:
        national = e164
    if len(national) <= 7:
        return "*" * len(national)
    return national[:3] + "*" * (len(national) - 7) + national[-4:]


def dialable(e164: str) -> str:
    """The number as an operator in mainland China dials it: a mobile's 11 digits, a landline with its trunk 0
    (01062345678); another region's number in E.164."""
    if not e164.startswith("+86"):
        return e164
    national = e164[3:]
    return national if len(national) == 11 and national[0] == "1" else "0" + national


_DIGIT = re.compile(r"\d")


def hidden(text: str) -> str:
    """Text that may hold a phone number, with the digits masked as `mask` masks a number's (an error message names
    the cell it refused without showing the number)."""
    count = len(_DIGIT.findall(text))
    seen = 0

    def one(found: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        return found[0] if count > 7 and (seen <= 3 or seen > count - 4) else "*"

    return _DIGIT.sub(one, text)


def mask_in(text: object, e164: str) -> str:
    """`text` with `e164` masked wherever it appears, in E.164 or national form: a provider's or a plugin's
    message often names the number it failed on."""
    national = e164.removeprefix("+86")
    return str(text).replace(e164, mask(e164)).replace(national, mask(e164))


# what an applicant may write into a suggestion about themselves: a mobile or landline number, an identity card's
# number (18 characters, the last may be X)
_PERSONAL = re.compile(r"(?<!\d)(?:\d{17}[\dXx]|1[3-9]\d{9}|0\d{2,3}[- ]?\d{7,8}|\d{7,8})(?!\d)")


def without_numbers(text: str) -> str:
    """Free text (a suggestion) as a window or a leader may read it: phone and identity-card numbers the applicant
    wrote are starred (the first three and last two characters kept, so staff can tell one was there)."""
    return _PERSONAL.sub(lambda found: found[0][:3] + "*" * (len(found[0]) - 5) + found[0][-2:], text)


def region_codes(regions: list[str]) -> list[str]:
    """`regions` checked against the regions phonenumbers knows (CN, HK, MO, ...); an unknown one is a ValueError."""
    # the default regions are among phonenumbers' (tests/unit/test_phones.py holds it): settings that name only them
    # need not load the library
    others = [region for region in regions if region not in DEFAULT_REGIONS]
    unknown: list[str] = []
    if others:
        import phonenumbers

        unknown = [region for region in others if region not in phonenumbers.SUPPORTED_REGIONS]
    if unknown or not regions:
        raise ValueError(f"unknown phone region {unknown[0]!r}" if unknown else "name at least one phone region")
    return regions
