"""Webhook receipts: a repeated delivery is recognised, and two deliveries are never taken for one."""

from __future__ import annotations

from datetime import UTC, datetime

from callbackd.store import receipts
from callbackd.store.receipts import first_delivery

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def test_a_repeat_is_recognised(session):
    assert first_delivery(session, "sms-in:SM1", NOW)
    assert not first_delivery(session, "sms-in:SM1", NOW)
    assert receipts.recorded(session, "sms-in:SM1") and not receipts.recorded(session, "sms-in:SM2")


def test_keys_that_differ_only_beyond_the_columns_length_stay_two(session):
    # a provider's id is short, but a key is built from what a request carries: its length is not ours to choose
    common = "call:CA" + "0" * 200
    assert first_delivery(session, f"{common}:busy", NOW)
    assert first_delivery(session, f"{common}:completed", NOW)
    assert not first_delivery(session, f"{common}:busy", NOW)
