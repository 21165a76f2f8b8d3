"""Requests no provider sends, against the real web app on loopback: a body over 1 MB is refused with 413 before
it is read (declared or streamed), and every malformed request gets a 4xx, never a 500, and changes nothing."""

from __future__ import annotations

import socket
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from tests.integration.conftest import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_BASE_URL
from tests.integration.test_twilio import HOOKS, A, B, round_on

LIMIT = 1 << 20


def signed(url: str, params: dict[str, str]) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, params)}


def local(deployment, url: str) -> str:
    return deployment.app_url + url[len(PUBLIC_BASE_URL):]


def raw_request(deployment, head: str, chunks: list[bytes]) -> bytes:
    """Send a request's head and then `chunks` on one connection, stopping as soon as the server answers; what it
    answered (empty if it never did within the timeout)."""
    address = urlsplit(deployment.app_url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        connection.sendall(head.encode("latin-1"))
        try:
            for chunk in chunks:
                connection.sendall(chunk)
        except OSError:  # the server answered and closed the connection: what it said is read below
            pass
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                data = connection.recv(65536)
                if not data:
                    break
                answer += data
        except TimeoutError:
            pass
        return answer


# ---- size --------------------------------------------------------------------------------------------------


def test_a_body_declared_over_a_megabyte_is_refused_before_it_is_sent(deployment):
    head = ("POST /hooks/twilio/sms HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {100 * LIMIT}\r\n\r\n")
    answer = raw_request(deployment, head, [])  # not one byte of the body sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_streamed_body_over_a_megabyte_is_refused_before_it_ends(deployment):
    head = ("POST /hooks/twilio/sms HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"Body=" + b"x" * (64 * 1024 - 5)
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 20  # 1.25 MB, and never the closing chunk
    answer = raw_request(deployment, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_body_of_exactly_a_megabyte_is_read(deployment):
    round_on(deployment, "twilio-sms")
    deployment.dispatch()
    url = f"{HOOKS}/sms"
    params = {"AccountSid": ACCOUNT_SID, "MessageSid": "SM" + "1" * 32, "From": A, "To": FROM_NUMBER,
              "Body": "1 1 1 1 1 1 "}
    params["Body"] += "好" * ((LIMIT - len(urlencode(params).encode())) // 9)  # 好 is 9 bytes url-encoded
    body = urlencode(params).encode()
    assert LIMIT - 9 < len(body) <= LIMIT
    response = httpx.post(local(deployment, url), content=body, timeout=10,
                          headers={**signed(url, params), "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert deployment.status("K1") == "completed"


# ---- malformed ---------------------------------------------------------------------------------------------


def test_a_body_that_is_not_utf8_is_refused_with_400(deployment):
    round_on(deployment, "twilio-sms")
    deployment.dispatch()
    before = deployment.state()
    response = httpx.post(f"{deployment.app_url}/hooks/twilio/sms", content=b"From=%2B86139&Body=\xff\xfe\xfa",
                          headers={"Content-Type": "application/x-www-form-urlencoded",
                                   "X-Twilio-Signature": "x"}, timeout=10)
    assert response.status_code == 400
    assert deployment.state() == before


@pytest.mark.parametrize("attempt_id", ["9" * 20, "1" * 5000, "١٢"])
@pytest.mark.parametrize("path", ["voice/{}", "voice/{}/answer?q=attitude&try=0", "voice/{}/suggestion",
                                  "status/{}", "status/sms/{}"])
def test_an_attempt_id_no_database_holds_is_no_attempt(deployment, attempt_id, path):
    url = f"{HOOKS}/{path.format(attempt_id)}"
    params = {"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "0" * 32, "CallStatus": "busy", "Digits": "1",
              "MessageStatus": "failed", "ErrorCode": "30003"}
    response = httpx.post(local(deployment, url), data=params, headers=signed(url, params), timeout=10)
    assert response.status_code == 404
    forged = httpx.post(local(deployment, url), data=params, headers={"X-Twilio-Signature": "forged"}, timeout=10)
    assert forged.status_code == 403  # the signature is checked first, as for every request


@pytest.mark.parametrize("code", ["abc", "-1", "1e3", "3000" * 10])
def test_an_error_code_that_is_not_a_number_is_refused_and_changes_nothing(deployment, code):
    round_on(deployment, "twilio-sms")
    deployment.dispatch()
    before = deployment.state()
    message = deployment.emulator.messages[0]
    url = f"{HOOKS}/status/sms/1"
    params = {"AccountSid": ACCOUNT_SID, "MessageSid": message.sid, "MessageStatus": "undelivered",
              "ErrorCode": code}
    response = httpx.post(local(deployment, url), data=params, headers=signed(url, params), timeout=10)
    assert response.status_code == 400
    assert deployment.state() == before


def test_an_inbound_message_without_message_sid_is_refused(deployment):
    # Twilio gives every message a MessageSid; without one, two applicants' messages could not be told apart
    url = f"{HOOKS}/sms"
    for phone in (A, B):
        params = {"AccountSid": ACCOUNT_SID, "From": phone, "To": FROM_NUMBER, "Body": "退订"}
        response = httpx.post(local(deployment, url), data=params, headers=signed(url, params), timeout=10)
        assert response.status_code == 400
    assert deployment.opted_out() == set()
    # as Twilio sends them, each with its own MessageSid, both are kept
    assert deployment.emulator.text(A, "退订") and deployment.emulator.text(B, "TD")
    assert deployment.opted_out() == {A, B}


ROUTES = ["voice/{}", "voice/{}/answer", "voice/{}/suggestion", "status/{}", "status/sms/{}", "sms"]
IDS = st.sampled_from(["1", "0", "9" * 19, "9" * 400, "1.5", "x"]) | st.text("0123456789", min_size=1, max_size=30)
NAMES = ["CallSid", "MessageSid", "CallStatus", "MessageStatus", "ErrorCode", "Digits", "From", "Body", "AnsweredBy",
         "RecordingUrl", "q"]
TEXT = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", "0", "9" * 25, "abc", "-1", "+86", "failed", "undelivered", "completed", "busy", "退订", "1 1 1"])


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), attempt_id=IDS, params=st.dictionaries(st.sampled_from(NAMES), TEXT, max_size=6),
       query=st.dictionaries(st.sampled_from(["q", "try"]), TEXT, max_size=2), sign=st.booleans())
def test_no_request_gets_a_server_error(deployment, route, attempt_id, params, query, sign):
    if not deployment.emulator.calls:  # once: attempt 1 is a call under way, which the voice routes reach
        round_on(deployment, "twilio-voice")
        deployment.dispatch()
    url = f"{HOOKS}/{route.format(attempt_id)}" + (f"?{urlencode(query)}" if query else "")
    headers = signed(url, params) if sign else {}
    response = httpx.post(local(deployment, url), data=params, headers=headers, timeout=10)
    assert response.status_code < 500, (response.status_code, response.text)
    assert sign or response.status_code in (403, 404)  # unsigned: refused, or no such route
