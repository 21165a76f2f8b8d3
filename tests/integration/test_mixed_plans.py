"""A channel plan across providers: an Alibaba Cloud one-key call, then Tencent Cloud's SMS, then Twilio's, each
through its real SDK against its emulator, the receipts pushed to one running web app; and the rest of a survey
asked by Twilio SMS after a one-key call answered its short form (`[surveys] rest_by`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callbackd.store.db import Database
from tests.conftest import case_row
from tests.integration import test_aliyun as aliyun
from tests.integration import test_tencent as tencent
from tests.integration.aliyun_emulator import AliyunEmulator
from tests.integration.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    MONDAY,
    PUBLIC_BASE_URL,
    SETTINGS,
    Deployment,
    LogRecords,
    WebServer,
    leaked_phones,
)
from tests.integration.tencent_emulator import TencentEmulator
from tests.integration.twilio_emulator import TwilioEmulator

PLAN = ("aliyun-voice", "tencent-sms", "twilio-sms")
MOBILE, MOBILE_2 = "13900000001", "13900000002"
A, B = "+8613900000001", "+8613900000002"


def without_organisation(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("organisation ="))


class Providers:
    """The three emulators behind one deployment."""

    def __init__(self, aliyun_cloud: AliyunEmulator, tencent_cloud: TencentEmulator, twilio: TwilioEmulator):
        self.aliyun, self.tencent, self.twilio = aliyun_cloud, tencent_cloud, twilio


@pytest.fixture
def mixed(workdir: Path, monkeypatch: pytest.MonkeyPatch, cli: Any, log_records: LogRecords
          ) -> Iterator[tuple[Deployment, Providers]]:
    """callbackd with the Alibaba Cloud, Tencent Cloud and Twilio channels against their emulators, one try per
    channel, the rest of a survey asked by Twilio SMS; on the suite's database."""
    url = os.environ.get("CALLBACKD_DATABASE_URL") or f"sqlite:///{workdir / 'callbackd.db'}"
    web = WebServer()
    providers = Providers(
        AliyunEmulator(aliyun.KEY_ID, aliyun.KEY_SECRET, voice_url=f"{web.url}/hooks/aliyun/{aliyun.TOKEN}/voice",
                       sms_url=f"{web.url}/hooks/aliyun/{aliyun.TOKEN}/sms", show_numbers={aliyun.SHOW_NUMBER},
                       voice_templates=aliyun.VOICE_TEMPLATES, sms_templates=aliyun.SMS_TEMPLATES,
                       sign_names={aliyun.SIGN_NAME}, clock=aliyun.now).start(),
        TencentEmulator(tencent.ACCOUNT, f"{web.url}/hooks/tencent/{tencent.TOKEN}").start(),
        TwilioEmulator(ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_BASE_URL, web.url,
                       sms_url=f"{PUBLIC_BASE_URL}/hooks/twilio/sms").start(),
    )
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text(
        SETTINGS + without_organisation(aliyun.settings_text(providers.aliyun.endpoint))
        + without_organisation(tencent.settings_toml(providers.tencent.endpoint))
        + '\n[dispatch]\nattempts_per_channel = 1\n\n[surveys]\nrest_by = "twilio-sms"\n', encoding="utf-8")
    for name, value in {
        "CALLBACKD_DATABASE_URL": url, "CALLBACKD_NOW": MONDAY,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": aliyun.KEY_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": aliyun.KEY_SECRET,
        "CALLBACKD_ALIYUN_CALLBACK_TOKEN": aliyun.TOKEN,
        "TENCENTCLOUD_SECRET_ID": tencent.SECRET_ID, "TENCENTCLOUD_SECRET_KEY": tencent.SECRET_KEY,
        "CALLBACKD_TENCENT_CALLBACK_TOKEN": tencent.TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "CALLBACKD_TWILIO_FROM": FROM_NUMBER,
        "CALLBACKD_TWILIO_PUBLIC_BASE_URL": PUBLIC_BASE_URL, "CALLBACKD_TWILIO_API_BASE_URL": providers.twilio.url,
    }.items():
        monkeypatch.setenv(name, value)
    database = Database(url)
    database.ensure_schema()
    deployment = None
    try:
        web.start()
        deployment = Deployment(providers.twilio, database, web.url, workdir, cli, monkeypatch, log_records)
        yield deployment, providers
    finally:
        for emulator in (providers.aliyun, providers.tencent, providers.twilio):
            emulator.stop()
        web.stop()
        database.dispose()
    assert leaked_phones(log_records.text, deployment.phones if deployment else set()) == []


def test_a_plan_falls_back_from_one_provider_to_the_next(mixed):
    deployment, providers = mixed
    deployment.ledger(case_row("K1", "不动产窗口", matter="不动产登记", phone=MOBILE))
    deployment.open_round("2026-W48", *PLAN)

    assert deployment.dispatch()["placed"] == 1
    (call,) = providers.aliyun.calls
    providers.aliyun.answer(call, status="200003")  # nobody answers: the plan's next channel, another provider
    assert deployment.attempts("K1") == [("aliyun-voice", "no_answer"), ("tencent-sms", "due")]

    assert deployment.dispatch("2026-11-23T10:01:00+08:00")["placed"] == 1  # a minute after the call
    (message,) = providers.tencent.messages_to(A)
    assert tencent.ack(providers.tencent.report((message, "FAIL", "MK:0005", "用户停机")))
    assert deployment.attempts("K1") == [("aliyun-voice", "no_answer"), ("tencent-sms", "failed"),
                                         ("twilio-sms", "due")]

    assert deployment.dispatch("2026-11-23T10:02:00+08:00")["placed"] == 1
    (sms,) = providers.twilio.messages_to(A)
    assert "总体评价" in sms.body  # Twilio's SMS asks the whole survey
    providers.twilio.text(A, "1 1 2 1 1 1")
    assert deployment.status("K1") == "completed"
    assert len([q for q, (level, _) in deployment.answers("K1").items() if level]) == 6
    assert deployment.attempts("K1") == [("aliyun-voice", "no_answer"), ("tencent-sms", "failed"),
                                         ("twilio-sms", "completed")]


def test_the_rest_of_the_survey_follows_a_one_key_call_by_twilio_sms(mixed):
    deployment, providers = mixed
    deployment.ledger(case_row("K1", "不动产窗口", matter="不动产登记", phone=MOBILE),
                      case_row("K2", "社保窗口", matter="社保卡补办", phone=MOBILE_2))
    deployment.open_round("2026-W48", *PLAN)

    assert deployment.dispatch()["placed"] == 2
    for call in providers.aliyun.calls:
        providers.aliyun.answer(call, "2")
    assert {case: deployment.answers(case) for case in ("K1", "K2")} == {
        "K1": {"overall": ("基本满意", "基本满意")}, "K2": {"overall": ("基本满意", "基本满意")}}
    assert deployment.attempts("K1") == [("aliyun-voice", "completed"), ("twilio-sms", "due")]

    assert deployment.dispatch("2026-11-23T10:01:00+08:00")["placed"] == 2
    (rest,) = providers.twilio.messages_to(A)
    assert "总体评价" not in rest.body and "服务态度" in rest.body  # only what the call did not ask
    providers.twilio.text(A, "1 1 1 1 3")
    assert deployment.status("K1") == "completed"
    assert len([q for q, (level, _) in deployment.answers("K1").items() if level]) == 6
    # nobody replies to the other: once the SMS waited its day, the short form stands and the callback completes
    assert deployment.dispatch("2026-11-24T10:02:00+08:00")["placed"] == 0
    assert deployment.status("K2") == "completed"
    assert deployment.attempts("K2") == [("aliyun-voice", "completed"), ("twilio-sms", "no_answer")]
    assert set(deployment.answers("K2")) == {"overall"}
