"""Phones: only the configured regions' own lines are called; numbers are masked in every message and view."""

from __future__ import annotations

import phonenumbers
import pytest

from callbackd.core.phones import DEFAULT_REGIONS, PhoneError, hidden, mask, normalise, region_codes
from tests.conftest import case_row, write_csv


@pytest.mark.parametrize(("raw", "why"), [
    ("+1 650 253 0000", "region US"),
    ("+852 9123 4567", "region HK"),
    ("400-810-8888", "shared-cost (400)"),
    ("800-810-8888", "toll-free (800)"),
])
def test_numbers_outside_the_regions_and_hotlines_are_refused(raw, why):
    with pytest.raises(PhoneError, match=r"\(400\)|\(800\)|region") as refused:
        normalise(raw)
    assert why in str(refused.value)
    digits = "".join(c for c in raw if c.isdigit())
    assert digits not in str(refused.value).replace(" ", "").replace("-", "")  # never the whole number


def test_a_region_added_to_the_settings_is_called():
    assert normalise("+852 9123 4567", ("CN", "HK")).e164 == "+85291234567"
    assert normalise("13800138000", ("CN", "HK")) == ("+8613800138000", True)


def test_regions_are_checked_against_the_library_and_the_default_is_among_its_own():
    # region_codes takes the default regions without loading phonenumbers: they must be regions it knows
    assert set(DEFAULT_REGIONS) <= phonenumbers.SUPPORTED_REGIONS
    assert region_codes(["CN", "HK", "MO"]) == ["CN", "HK", "MO"]
    for regions, message in ((["CN", "XX"], "unknown phone region 'XX'"), (["ZZ"], "unknown phone region 'ZZ'"),
                             ([], "name at least one phone region")):
        with pytest.raises(ValueError, match=message):
            region_codes(regions)


def test_landlines_and_mobiles_are_masked_as_people_write_them():
    assert mask("+8613800138000") == "138****8000"
    assert mask(normalise("010-62345678").e164) == "010****5678"  # the trunk 0 and the area code kept
    assert mask(normalise("0571-88881234").e164) == "057*****1234"
    assert mask("+85291234567") == "+85*****4567"


def test_an_invalid_number_is_named_masked():
    with pytest.raises(PhoneError) as refused:
        normalise("1380013800099")
    assert "1380013800099" not in str(refused.value)
    assert hidden("1380013800099") in str(refused.value)
    assert hidden("12345") == "*****"


def test_the_ledger_reports_such_numbers_as_bad_rows_by_line_without_the_number(cli, workdir):
    rows = [case_row("P1", phone="+1 650 253 0000"), case_row("P2", phone="400-810-8888"),
            case_row("P3", phone="13800138000"), case_row("P4", phone="+852 9123 4567")]
    run = cli("ledger", "import", write_csv(workdir / "l.csv", rows), "--json")
    assert run.code == 0, run.err
    report = run.json()
    assert report["imported"] == 1
    errors = {error["line"]: error["reason"] for error in report["errors"]}
    assert sorted(errors) == [2, 3, 5]
    assert "region US" in errors[2] and "(400)" in errors[3] and "region HK" in errors[5]
    assert "2530000" not in run.out and "8108888" not in run.out and "91234567" not in run.out


def test_unknown_regions_in_the_settings_are_a_clear_error(cli, workdir, monkeypatch):
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text('[phones]\nregions = ["XX"]\n', encoding="utf-8")
    run = cli("init")
    assert run.code == 1
    assert "unknown phone region 'XX'" in run.err
