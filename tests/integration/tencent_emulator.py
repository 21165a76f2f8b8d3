"""A Tencent Cloud emulator for end-to-end tests: 语音消息 (VMS) and 短信 (SMS) at their HTTP boundary, nothing of
the project faked.

- **The API 3.0 endpoint.** `TencentEmulator.endpoint` is an `http.server` on 127.0.0.1 that takes what the real
  `tencentcloud` SDK sends: `POST /` with a JSON body, `X-TC-Action`, `X-TC-Version`, `X-TC-Timestamp`,
  `X-TC-Region` and an `Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<date>/<service>/tc3_request,
  SignedHeaders=content-type;host, Signature=...` header, which it checks by recomputing the signature with the
  account's SecretKey. It serves `SendTtsVoice` (vms, 2020-09-02) and `SendSms` (sms, 2021-01-11) against the
  app, signature and templates the account has approved, and answers as Tencent does: always HTTP 200 with
  `Content-Type: application/json`, `{"Response": {..., "RequestId"}}`, or `{"Response": {"Error": {"Code",
  "Message"}, "RequestId"}}` so the SDK raises its real `TencentCloudSDKException`. SendSms reports each number's
  own outcome inside a 200 answer (`SendStatusSet[].Code`, "Ok" or an error code). `fail_next` scripts a refusal
  for a number, at the top level or (SMS) in its SendStatusSet entry.
- **The network and the people on it.** Nothing calls back while the API request is open. The test then drives
  the project's callbacks over HTTP as Tencent would, at the callback address configured in Tencent's console
  (`/hooks/tencent/<token>/voice` and `/sms` on the uvicorn under test): `press` (voicekey_callback), `end`
  (voiceprompt_callback: result 0 answered, 1 not answered, 2 call failure), `fail` (voice_failure_callback with
  a failure_code), `report` (a JSON array of 短信下发状态 reports), `reply` (回复短信). Each records the
  project's answer; `deliver_twice` sends every callback twice, as Tencent retries one it thinks was lost.

Payload shapes follow Tencent's callback documentation (语音消息 回执 API, 短信 回调 API): the mobile number without
its country code beside `nationcode`, strings where Tencent sends strings (`result`), numbers where it sends numbers
(`failure_code`, a reply's `time`).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx

from tests.integration.loopback import LoopbackEmulator

TIMEOUT = 10.0
E164 = re.compile(r"\+[1-9]\d{6,14}")
_AUTHORIZATION = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z]+)/tc3_request, "
    r"SignedHeaders=content-type;host, Signature=(?P<signature>[0-9a-f]{64})"
)
ACTIONS = {"SendTtsVoice": ("vms", "2020-09-02"), "SendSms": ("sms", "2021-01-11")}


@dataclass(frozen=True)
class Account:
    """What the account has set up in Tencent's console: credentials, apps, approved templates (id -> number of
    parameters) and signature."""

    secret_id: str
    secret_key: str
    voice_app: str
    voice_templates: dict[str, int]
    sms_app: str
    sms_sign: str
    sms_templates: dict[str, int]


@dataclass
class Call:
    """One SendTtsVoice Tencent accepted."""

    call_id: str
    to: str
    template_id: str
    params: list[str]
    play_times: int | None
    session_context: str


@dataclass
class Message:
    """One SendSms Tencent accepted for one number."""

    serial: str
    to: str
    sign: str
    template_id: str
    params: list[str]
    session_context: str
    extend: str


@dataclass(frozen=True)
class Request:
    """One API request as it arrived: its action, the headers Tencent reads, the JSON body."""

    action: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    """One callback the emulator pushed: where, what, and the project's answer."""

    path: str
    payload: Any
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Failure:
    code: str
    message: str
    per_number: bool  # SendSms: in the number's SendStatusSet entry, not a top-level error


def national(e164: str) -> tuple[str, str]:
    """(nationcode, mobile) as Tencent's callbacks write a number: +8613900000001 -> ("86", "13900000001")."""
    assert e164.startswith("+86"), e164
    return "86", e164[3:]


class TencentEmulator(LoopbackEmulator):
    """Tencent's API on loopback, and the network that drives the project's callbacks at `hooks_url`."""

    def __init__(self, account: Account, hooks_url: str) -> None:
        self.account = account
        self.hooks_url = hooks_url.rstrip("/")  # http://127.0.0.1:PORT/hooks/tencent/<token>
        self.requests: list[Request] = []  # every authenticated API request, accepted or refused
        self.calls: list[Call] = []
        self.messages: list[Message] = []
        self.deliveries: list[Delivery] = []
        self.deliver_twice = False
        self._failures: dict[str, list[Failure]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=TIMEOUT)
        super().__init__(_ApiHandler, "tencent-emulator")

    # ---- lifecycle ---------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """host:port, as `voice_endpoint` and `sms_endpoint` (scheme http)."""
        return self.host_port

    def stop(self) -> None:
        super().stop()
        self._http.close()

    # ---- scripting ---------------------------------------------------------------------------------------

    def fail_next(self, to: str, code: str, message: str = "", *, per_number: bool = False) -> None:
        """The next request for `to` is refused with `code` (SendSms: `per_number`, inside its SendStatusSet)."""
        self._failures.setdefault(to, []).append(Failure(code, message or code, per_number))

    def calls_to(self, to: str) -> list[Call]:
        return [call for call in self.calls if call.to == to]

    def messages_to(self, to: str) -> list[Message]:
        return [message for message in self.messages if message.to == to]

    # ---- callbacks ---------------------------------------------------------------------------------------

    def press(self, call: Call, key: str) -> Delivery:
        """The person presses `key` while the template plays (voicekey_callback)."""
        nationcode, mobile = national(call.to)
        return self.post("voice", {"voicekey_callback": {
            "call_from": "", "callid": call.call_id, "keypress": key, "mobile": mobile, "nationcode": nationcode,
        }})

    def end(self, call: Call, result: str) -> Delivery:
        """The call ends (voiceprompt_callback): "0" answered, "1" not answered, "2" a call failure."""
        nationcode, mobile = national(call.to)
        start = int(time.time())
        answered = result == "0"
        return self.post("voice", {"voiceprompt_callback": {
            "result": result, "accept_time": str(start + 5) if answered else "0", "call_from": "",
            "callid": call.call_id, "end_calltime": str(start + 30), "fee": "1" if answered else "0",
            "mobile": mobile, "nationcode": nationcode, "start_calltime": str(start),
        }})

    def fail(self, call: Call, code: int, reason: str) -> Delivery:
        """Why the call never reached the person (voice_failure_callback: 2 通话中, 5 无人接听, 8 空号...)."""
        nationcode, mobile = national(call.to)
        return self.post("voice", {"voice_failure_callback": {
            "call_from": "075583763333", "callid": call.call_id, "failure_code": code, "failure_reason": reason,
            "mobile": mobile, "nationcode": nationcode,
        }})

    def answer(self, call: Call, *keys: str) -> list[Delivery]:
        """The person answers, presses `keys` one by one, and the call ends."""
        return [*(self.press(call, key) for key in keys), self.end(call, "0")]

    def report(self, *reports: tuple[Message, str, str, str]) -> Delivery:
        """短信下发状态: one request carrying (message, SUCCESS|FAIL, errmsg, description) for each report."""
        body = []
        for message, status, errmsg, description in reports:
            nationcode, mobile = national(message.to)
            body.append({"user_receive_time": time.strftime("%Y-%m-%d %H:%M:%S"), "nationcode": nationcode,
                         "mobile": mobile, "report_status": status, "errmsg": errmsg, "description": description,
                         "sid": message.serial})
        return self.post("sms", body)

    def reply(self, from_: str, text: str, *, when: int | None = None, extend: str = "") -> Delivery:
        """The person at `from_` replies `text` (回复短信)."""
        nationcode, mobile = national(from_)
        return self.post("sms", {"extend": extend, "mobile": mobile, "nationcode": nationcode,
                                 "sign": self.account.sms_sign, "text": text,
                                 "time": int(time.time()) if when is None else when})

    def post(self, kind: str, payload: Any, *, raw: bytes | None = None, url: str | None = None) -> Delivery:
        """POST a callback as Tencent does (JSON, UTF-8) to `<hooks_url>/<kind>`; `raw` sends those bytes
        instead, `url` another address (a forged or mistaken one)."""
        target = url or f"{self.hooks_url}/{kind}"
        content = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        delivery = None
        for _ in range(2 if self.deliver_twice else 1):
            response = self._http.post(target, content=content, headers={"Content-Type": "application/json"})
            delivery = Delivery(target, payload, response.status_code, response.text)
            self.deliveries.append(delivery)
        assert delivery is not None
        return delivery

    # ---- the API -----------------------------------------------------------------------------------------

    def api(self, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        """One API request: its `Response` object (an `Error` in it when refused)."""
        request_id = str(uuid.uuid4())
        action = headers.get("x-tc-action", "")
        refusal = self._authenticate(headers, body, action)
        if refusal is not None:
            return _error(*refusal, request_id)
        try:
            params = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _error("FailedOperation.JsonParseFail", "解析请求包体时候失败。", request_id)
        with self._lock:
            self.requests.append(Request(action, {k: v for k, v in headers.items() if k.startswith("x-tc-")},
                                         params))
        if action == "SendTtsVoice":
            return {**self._send_tts_voice(params), "RequestId": request_id}
        return {**self._send_sms(params), "RequestId": request_id}

    def _authenticate(self, headers: dict[str, str], body: bytes, action: str) -> tuple[str, str] | None:
        if action not in ACTIONS:
            return "InvalidAction", f"接口`{action}`不存在。"
        service, version = ACTIONS[action]
        if headers.get("x-tc-version") != version:
            return "NoSuchVersion", f"接口版本`{headers.get('x-tc-version')}`不存在。"
        if not headers.get("x-tc-region"):
            return "MissingParameter", "缺少参数`Region`。"
        if headers.get("content-type") != "application/json":
            return "InvalidParameter", "Content-Type 须为 application/json。"
        match = _AUTHORIZATION.fullmatch(headers.get("authorization", ""))
        if match is None or match["service"] != service:
            return "AuthFailure.SignatureFailure", "请求签名验证失败，请检查您的签名计算是否正确。"
        if match["id"] != self.account.secret_id:
            return "AuthFailure.SecretIdNotFound", "密钥不存在，请在控制台检查密钥是否已被删除或者禁用。"
        expected = tc3_signature(self.account.secret_key, headers, body, match["date"], service)
        if not hmac.compare_digest(expected, match["signature"]):
            return "AuthFailure.SignatureFailure", "请求签名验证失败，请检查您的签名计算是否正确。"
        return None

    def _failure_for(self, to: str) -> Failure | None:
        with self._lock:
            queued = self._failures.get(to)
            return queued.pop(0) if queued else None

    def _send_tts_voice(self, params: dict[str, Any]) -> dict[str, Any]:
        account = self.account
        for name in ("TemplateId", "CalledNumber", "VoiceSdkAppid"):
            if not isinstance(params.get(name), str) or not params[name]:
                return _refused("MissingParameter", f"缺少参数`{name}`。")
        if params["VoiceSdkAppid"] != account.voice_app:
            return _refused("InvalidParameterValue.SdkAppidNotExist", "SDK AppID 不存在。")
        template_params = params.get("TemplateParamSet") or []
        if account.voice_templates.get(params["TemplateId"]) != len(template_params):
            return _refused("FailedOperation.TemplateIncorrectOrUnapproved", "模板未审核或内容不匹配。")
        if params.get("PlayTimes") is not None and params["PlayTimes"] not in (1, 2, 3):
            return _refused("FailedOperation.InvalidParameters", "PlayTimes 只能取1、2或3。")
        to = params["CalledNumber"]
        if not E164.fullmatch(to):
            return _refused("InvalidParameterValue.CalledNumberVerifyFail", f"被叫手机号码 {to} 格式校验失败。")
        failure = self._failure_for(to)
        if failure is not None:
            return _refused(failure.code, failure.message.replace("{to}", to))
        call = Call(f"{uuid.uuid4()}", to, params["TemplateId"], list(template_params), params.get("PlayTimes"),
                    params.get("SessionContext", ""))
        with self._lock:
            self.calls.append(call)
        return {"SendStatus": {"CallId": call.call_id, "SessionContext": call.session_context}}

    def _send_sms(self, params: dict[str, Any]) -> dict[str, Any]:
        account = self.account
        numbers = params.get("PhoneNumberSet")
        if not isinstance(numbers, list) or not numbers:
            return _refused("MissingParameter.EmptyPhoneNumberSet", "传入的号码列表为空。")
        if params.get("SmsSdkAppId") != account.sms_app:
            return _refused("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId 不存在。")
        if params.get("SignName") != account.sms_sign:
            return _refused("FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误。")
        template_params = params.get("TemplateParamSet") or []
        expected = account.sms_templates.get(str(params.get("TemplateId")))
        if expected is None:
            return _refused("FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配。")
        if expected != len(template_params):
            return _refused("FailedOperation.TemplateParamSetNotMatchApprovedTemplate", "请求内容与模板不匹配。")
        statuses = []
        for to in numbers:
            failure = self._failure_for(to)
            if failure is not None and not failure.per_number:
                return _refused(failure.code, failure.message.replace("{to}", to))
            serial = f"2433:{next(self._ids):020d}"
            status = {"SerialNo": serial, "PhoneNumber": to, "Fee": 1, "SessionContext": params.get(
                "SessionContext", ""), "Code": "Ok", "Message": "send success", "IsoCode": "CN"}
            if not E164.fullmatch(str(to)):
                failure = Failure("InvalidParameterValue.IncorrectPhoneNumber", f"手机号 {to} 格式错误", True)
            if failure is not None:
                status.update(SerialNo="", Fee=0, Code=failure.code, Message=failure.message.replace("{to}", to))
            else:
                message = Message(serial, to, params["SignName"], str(params["TemplateId"]), list(template_params),
                                  params.get("SessionContext", ""), params.get("ExtendCode", "") or "")
                with self._lock:
                    self.messages.append(message)
            statuses.append(status)
        return {"SendStatusSet": statuses}


def tc3_signature(secret_key: str, headers: dict[str, str], body: bytes, day: str, service: str) -> str:
    """The TC3-HMAC-SHA256 signature of a POST to / with `headers` and `body`, as Tencent computes it."""
    canonical = "\n".join([
        "POST", "/", "", f"content-type:{headers.get('content-type', '')}\nhost:{headers.get('host', '')}\n",
        "content-type;host", hashlib.sha256(body).hexdigest(),
    ])
    to_sign = "\n".join(["TC3-HMAC-SHA256", headers.get("x-tc-timestamp", ""), f"{day}/{service}/tc3_request",
                         hashlib.sha256(canonical.encode("utf-8")).hexdigest()])

    def digest(key: bytes, text: str) -> bytes:
        return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()

    signing = digest(digest(digest(f"TC3{secret_key}".encode(), day), service), "tc3_request")
    return hmac.new(signing, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _refused(code: str, message: str) -> dict[str, Any]:
    return {"Error": {"Code": code, "Message": message}}


def _error(code: str, message: str, request_id: str) -> dict[str, Any]:
    return {"Error": {"Code": code, "Message": message}, "RequestId": request_id}


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        emulator: TencentEmulator = self.server.emulator  # type: ignore[attr-defined]
        headers = {name.lower(): value for name, value in self.headers.items()}
        if self.path != "/":
            response: dict[str, Any] = _error("InvalidAction", f"路径 {self.path} 不存在。", str(uuid.uuid4()))
        else:
            response = emulator.api(headers, body)
        data = json.dumps({"Response": response}, ensure_ascii=False).encode("utf-8")
        self.send_response(200)  # Tencent answers errors with 200 too: the SDK reads Response.Error
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass
