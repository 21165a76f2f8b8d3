"""An Alibaba Cloud (阿里云) emulator for end-to-end tests: the provider at its HTTP boundary, nothing of the project
faked.

- **The OpenAPI gateway.** `AliyunEmulator.url` is an `http.server` on 127.0.0.1 that accepts what the official
  SDKs (alibabacloud-dyvmsapi20170525, alibabacloud-dysmsapi20170525 over alibabacloud-tea-openapi) send: `POST /`
  with the parameters in the query string (`MenuKeyMap.1.Key` flattened), the action and version in `x-acs-action`
  and `x-acs-version`, and an `Authorization: ACS3-HMAC-SHA256 Credential=...,SignedHeaders=...,Signature=...`
  header, which is checked as Alibaba Cloud documents the V3 signature (canonical request, SHA-256 of the empty
  body in `x-acs-content-sha256`, every `x-acs-*` header and `host` signed). It answers in Alibaba Cloud's shape:
  `{"RequestId", "Code": "OK", "Message": "OK", "CallId"}` for IvrCall, `BizId` for SendSms; errors as
  `{"RequestId", "HostId", "Code", "Message", "Recommend"}`, with HTTP 404 for an unknown AccessKey
  (InvalidAccessKeyId.NotFound), 400 for a wrong signature (SignatureDoesNotMatch), and for business refusals
  either HTTP 400 (as the API error centre lists them) or HTTP 200 with the Code in the body (as SendSms answers):
  a test picks with `fail_next`. It checks what the real service checks: a known show number, an approved
  template and every one of its variables, a number in the mainland's format (no +86), OutId of at most 15 bytes,
  and the per-number flow control (语音 1/min, 5/h, 20/day; 短信通知 50/day) on the test's clock.
- **The network and the people on it.** Nothing rings while the API request is open. The test plays a placed
  call with `answer(call, ...)`, which pushes the receipts Alibaba Cloud pushes (回执消息, HTTP 批量推送) to the
  project's web app: a VoiceCallReport with status 300000 and the `dtmf` for a key, then the VoiceReport of the
  call's end (status_code per 呼叫状态码). `deliver(message, ...)` pushes an SmsReport, `reply(number, text)` an
  SmsUp. Each push is a JSON array POSTed as `application/json`; the answer must be HTTP 200 with a numeric
  `code`, as Alibaba Cloud checks. `redeliver` repeats a push byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit
from zoneinfo import ZoneInfo

import httpx

from tests.integration.loopback import LoopbackEmulator

VERSION = "2017-05-25"
TIMEOUT = 10.0
ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
DTMF = "300000"  # VoiceCallReport: a key was pressed
SHANGHAI = ZoneInfo("Asia/Shanghai")
CLOCK_SKEW = timedelta(minutes=15)  # how far x-acs-date may be from the gateway's clock
MOBILE = re.compile(r"1[3-9]\d{9}")
LANDLINE = re.compile(r"0[1-9]\d{8,10}")
VARIABLE = re.compile(r"\$\{(\w+)\}")
VOICE_LIMITS = ((1, 60), (5, 3600), (20, 86400))
SMS_LIMITS = ((50, 86400),)
STATUS_TEXT = {"200000": "用户听完语音", "200001": "用户提前挂机", "200002": "用户占线", "200003": "用户未接听",
               "200004": "用户号码不合法", "200008": "获取按键超时", "200010": "关机", "200011": "停机"}


class EmulatorError(AssertionError):
    """The project did something Alibaba Cloud would refuse or the script did not expect."""


@dataclass
class Call:
    """One IvrCall the gateway accepted."""

    call_id: str
    called: str
    show_number: str
    start_code: str
    tts_params: dict[str, str]
    menu: dict[str, str]  # key -> the template played for it
    play_times: int
    timeout_ms: int
    out_id: str
    prompt: str  # the prompt as the TTS template reads it
    receipts: list[Delivery] = field(default_factory=list)


@dataclass
class Message:
    """One SendSms the gateway accepted, and its text as the applicant reads it."""

    biz_id: str
    to: str
    sign_name: str
    template: str
    params: dict[str, str]
    out_id: str
    body: str


@dataclass(frozen=True)
class Delivery:
    """One push to the project: the URL, the JSON array sent, and the project's answer."""

    url: str
    items: tuple[dict[str, Any], ...]
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


class AliyunEmulator(LoopbackEmulator):
    """The voice and SMS OpenAPI on loopback, and the network that pushes receipts to `voice_url` and `sms_url`
    (the receipt addresses configured in the console). `voice_templates` and `sms_templates` are the approved
    templates (code -> text with ${variables}); `show_numbers` the numbers bought; `sign_names` the approved SMS
    signatures. `clock` is the time the flow control counts in (the test's clock)."""

    def __init__(self, key_id: str, secret: str, *, voice_url: str, sms_url: str, show_numbers: set[str],
                 voice_templates: dict[str, str], sms_templates: dict[str, str], sign_names: set[str],
                 clock: Callable[[], datetime]) -> None:
        self.key_id, self.secret = key_id, secret
        self.voice_url, self.sms_url = voice_url, sms_url
        self.show_numbers, self.sign_names = show_numbers, sign_names
        self.voice_templates, self.sms_templates = voice_templates, sms_templates
        self.clock = clock
        self.calls: list[Call] = []
        self.messages: list[Message] = []
        self.deliveries: list[Delivery] = []
        # every API request whose signature was checked: (action, parameters, HTTP status answered)
        self.requests: list[tuple[str, dict[str, str], int]] = []
        self.signed_headers: list[str] = []  # each request's SignedHeaders
        self._failures: dict[str, list[tuple[str, int, str]]] = {}
        self._placed: dict[tuple[str, str], list[datetime]] = {}  # (product, number) -> accepted at (test clock)
        self._ids = itertools.count(1)
        self._sequence = itertools.count(880001)
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=TIMEOUT)
        super().__init__(_GatewayHandler, "aliyun-emulator")

    # ---- lifecycle ---------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """host:port, the SDK's `endpoint` (with protocol http)."""
        return self.host_port

    def stop(self) -> None:
        super().stop()
        self._http.close()

    # ---- scripting ---------------------------------------------------------------------------------------

    def fail_next(self, number: str, code: str, *, status: int = 400, message: str = "") -> None:
        """The next request (a call or a message) to `number` (as sent: national digits) is refused with `code`,
        in HTTP `status` (200: a business refusal in the body)."""
        self._failures.setdefault(number, []).append((code, status, message or f"{code} (emulated)"))

    def calls_to(self, number: str) -> list[Call]:
        return [call for call in self.calls if call.called == number]

    def messages_to(self, number: str) -> list[Message]:
        return [message for message in self.messages if message.to == number]

    def actions(self) -> list[str]:
        return [action for action, _, _ in self.requests]

    # ---- the network -------------------------------------------------------------------------------------

    def answer(self, call: Call, key: str | None = None, *, status: str = "", ends: str = "") -> list[Delivery]:
        """The call is answered (or not): with `key`, a VoiceCallReport of the key pressed (300000), then the
        VoiceReport of the call's end, `ends` (by default 200000 after a key, 200008 when none was pressed);
        `status` instead: a call that ended with that 呼叫状态码 (200002 busy, 200003 unanswered, ...)."""
        pushed = []
        if key is not None:
            pushed.append(self.push("voice", [self.call_progress(call, DTMF, key)]))
        final = status or ends or ("200000" if key is not None else "200008")
        pushed.append(self.push("voice", [self.call_report(call, final, dtmf=key or "")]))
        call.receipts.extend(pushed)
        return pushed

    def call_progress(self, call: Call, status: str, dtmf: str = "") -> dict[str, Any]:
        """A VoiceCallReport (呼叫中间状态), as documented."""
        item = {"status_code": status, "smart_status_code": "ANSWERED", "status_time": self._time(),
                "out_id": call.out_id, "call_id": call.call_id}
        if dtmf:
            item["dtmf"] = dtmf
        return item

    def call_report(self, call: Call, status: str, dtmf: str = "") -> dict[str, Any]:
        """A VoiceReport (呼叫记录), as documented: it names both numbers."""
        answered = status in ("200000", "200001", "200008")
        return {
            "call_id": call.call_id, "originate_time": self._time(), "ring_time": self._time(),
            "start_time": self._time() if answered else "", "end_time": self._time(),
            "caller": call.show_number, "callee": call.called, "duration": "23" if answered else "0",
            "status_code": status, "hangup_direction": "用户" if answered else "", "dtmf": dtmf,
            "status_msg": STATUS_TEXT.get(status, "执行完成"), "out_id": call.out_id, "voice_type": "voice",
            "toll_type": "LOCAL", "early_media_code": "", "dialog_id": "",
        }

    def deliver(self, message: Message, *, success: bool = True, err_code: str = "DELIVERED",
                err_msg: str = "用户接收成功") -> Delivery:
        """An SmsReport for `message`."""
        return self.push("sms", [self.sms_report(message, success=success, err_code=err_code, err_msg=err_msg)])

    def sms_report(self, message: Message, *, success: bool, err_code: str, err_msg: str) -> dict[str, Any]:
        return {"phone_number": message.to, "send_time": self._time(), "report_time": self._time(),
                "success": success, "err_code": err_code, "err_msg": err_msg, "sms_size": "1",
                "biz_id": message.biz_id, "out_id": message.out_id}

    def reply(self, number: str, content: str) -> Delivery:
        """An SmsUp: the person at `number` (national digits) replies `content` to the project's sign name."""
        item = {"phone_number": number, "content": content, "send_time": self._time(),
                "dest_code": "1234", "sequence_id": str(next(self._sequence)),
                "sign_name": next(iter(sorted(self.sign_names)))}
        return self.push("sms", [item])

    def push(self, kind: str, items: list[dict[str, Any]], *, url: str | None = None,
             raw: bytes | None = None) -> Delivery:
        """POST a JSON array (or `raw` bytes) to the voice or sms receipt address (or `url`)."""
        target = url or (self.voice_url if kind == "voice" else self.sms_url)
        body = raw if raw is not None else json.dumps(items, ensure_ascii=False).encode()
        response = self._http.post(target, content=body,
                                   headers={"Content-Type": "application/json;charset=utf-8"})
        delivery = Delivery(target, tuple(items), response.status_code, response.text)
        self.deliveries.append(delivery)
        return delivery

    def redeliver(self, delivery: Delivery) -> Delivery:
        """The same push again (Alibaba Cloud pushes again whenever it did not get HTTP 200 in time)."""
        kind = "voice" if delivery.url == self.voice_url else "sms"
        return self.push(kind, list(delivery.items), url=delivery.url)

    def _time(self) -> str:
        return self.clock().astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")

    # ---- the gateway (called from the server thread) -----------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """One OpenAPI request: (HTTP status, JSON body)."""
        path, _, query = target.partition("?")
        params = dict(parse_qsl(query, keep_blank_values=True))
        refused = self._authenticate(method, path, params, headers, body)
        if refused is not None:
            return refused
        action = headers.get("x-acs-action", "")
        status, answer = self._act(action, params)
        with self._lock:
            self.requests.append((action, params, status))
        return status, answer

    def _authenticate(self, method: str, path: str, params: dict[str, str], headers: dict[str, str],
                      body: bytes) -> tuple[int, dict[str, Any]] | None:
        match = re.fullmatch(rf"{ALGORITHM} Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{{64}})",
                             headers.get("authorization", ""))
        if match is None:
            return 400, _error("IncompleteSignature", "The request signature does not conform to Aliyun standards.")
        key_id, signed, signature = match.groups()
        if key_id != self.key_id:
            return 404, _error("InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        names = signed.split(";")
        with self._lock:
            self.signed_headers.append(signed)
        unsigned = [name for name in headers if name.startswith("x-acs-") and name not in names]
        if "host" not in names or unsigned or names != sorted(names):
            return 400, _error("IncompleteSignature", f"headers {unsigned or ['host']} must be signed")
        if headers.get("x-acs-content-sha256") != hashlib.sha256(body).hexdigest():
            return 400, _error("InvalidParameter", "x-acs-content-sha256 is not the body's")
        sent = datetime.strptime(headers.get("x-acs-date", "1970-01-01T00:00:00Z"), "%Y-%m-%dT%H:%M:%SZ")
        if abs(sent.replace(tzinfo=UTC) - datetime.now(UTC)) > CLOCK_SKEW:
            return 400, _error("InvalidTimeStamp.Expired", "x-acs-date is too far from the server's time")
        if headers.get("x-acs-version") != VERSION:
            return 400, _error("InvalidVersion", f"version {headers.get('x-acs-version')} is not {VERSION}")
        expected = v3_signature(self.secret, method, path, params, {n: headers.get(n, "") for n in names},
                                headers["x-acs-content-sha256"])
        if not hmac.compare_digest(expected, signature):
            return 400, _error("SignatureDoesNotMatch", "Specified signature does not match our calculation.")
        return None

    def _act(self, action: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if action == "IvrCall":
            return self._ivr_call(params)
        if action == "SendSms":
            return self._send_sms(params)
        return 400, _error("InvalidAction.NotFound", f"Specified api {action} is not found.")

    def _ivr_call(self, p: dict[str, str]) -> tuple[int, dict[str, Any]]:
        for name in ("CalledNumber", "CalledShowNumber", "StartCode"):
            if not p.get(name):
                return 400, _error("MissingParameter", f"{name} is mandatory for this action.")
        menu = _menu(p)
        if not menu:
            return 400, _error("isv.INVALID_PARAMETERS", "MenuKeyMap is mandatory")
        number = p["CalledNumber"]
        if not (MOBILE.fullmatch(number) or LANDLINE.fullmatch(number)):
            return 400, _error("isv.MOBILE_NUMBER_ILLEGAL", "号码格式非法")
        if p["CalledShowNumber"] not in self.show_numbers:
            return 400, _error("isv.DISPLAY_NUMBER_ILLEGAL", "号显不合法")
        templates = [p["StartCode"], *menu.values()]
        if any(code not in self.voice_templates for code in templates):
            return 400, _error("isv.TTS_TEMPLATE_ILLEGAL", "TTS模板不合法")
        refused = self._checks(p, "voice", number, self.voice_templates[p["StartCode"]], "StartTtsParams")
        if refused is not None:
            return refused
        play_times, timeout = int(p.get("PlayTimes") or 1), int(p.get("Timeout") or 0)
        if not 1 <= play_times <= 3:
            return 400, _error("isv.INVALID_PARAMETERS", "PlayTimes must be 1 to 3")
        tts = json.loads(p.get("StartTtsParams") or "{}")
        n = next(self._ids)
        call = Call(f"{116012354100 + n}^{102813780000 + n}", number, p["CalledShowNumber"], p["StartCode"], tts,
                    menu, play_times, timeout, p.get("OutId", ""), _render(self.voice_templates[p["StartCode"]], tts))
        with self._lock:
            self.calls.append(call)
        return 200, {"RequestId": _request_id(), "Code": "OK", "Message": "OK", "CallId": call.call_id}

    def _send_sms(self, p: dict[str, str]) -> tuple[int, dict[str, Any]]:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not p.get(name):
                return 400, _error("MissingParameter", f"{name} is mandatory for this action.")
        number = p["PhoneNumbers"]
        if not MOBILE.fullmatch(number):
            return 200, _error("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if p["SignName"] not in self.sign_names:
            return 200, _error("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        if p["TemplateCode"] not in self.sms_templates:
            return 200, _error("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        refused = self._checks(p, "sms", number, self.sms_templates[p["TemplateCode"]], "TemplateParam")
        if refused is not None:
            return refused
        values = json.loads(p.get("TemplateParam") or "{}")
        biz_id = f"{900619746936498 + next(self._ids)}^0"
        text = f"【{p['SignName']}】{_render(self.sms_templates[p['TemplateCode']], values)}"
        with self._lock:
            self.messages.append(Message(biz_id, number, p["SignName"], p["TemplateCode"], values,
                                         p.get("OutId", ""), text))
        return 200, {"RequestId": _request_id(), "Code": "OK", "Message": "OK", "BizId": biz_id}

    def _checks(self, p: dict[str, str], product: str, number: str, template: str,
                variables_param: str) -> tuple[int, dict[str, Any]] | None:
        """What both APIs check after the basics: a scripted failure, OutId, the template's variables, and the
        per-number flow control (the request is counted once accepted)."""
        with self._lock:
            failures = self._failures.get(number)
            failure = failures.pop(0) if failures else None
        if failure is not None:
            code, status, message = failure
            return status, _error(code, message)
        if len(p.get("OutId", "").encode()) > 15:
            return 400, _error("isv.INVALID_PARAMETERS", "OutId is longer than 15 bytes")
        try:
            values = json.loads(p.get(variables_param) or "{}")
        except ValueError:
            return 400, _error("isv.INVALID_JSON_PARAM", f"{variables_param} is not JSON")
        wanted = set(VARIABLE.findall(template))
        if not isinstance(values, dict) or not wanted <= set(values) or not all(
                isinstance(v, str) for v in values.values()):
            return 400, _error("isv.TEMPLATE_MISSING_PARAMETERS", f"模板变量缺少对应参数值 {sorted(wanted)}")
        return self._flow_control(product, number)

    def _flow_control(self, product: str, number: str) -> tuple[int, dict[str, Any]] | None:
        now = self.clock()
        with self._lock:
            placed = self._placed.setdefault((product, number), [])
            for count, seconds in VOICE_LIMITS if product == "voice" else SMS_LIMITS:
                if sum(1 for t in placed if now - t < timedelta(seconds=seconds)) >= count:
                    return 200 if product == "sms" else 400, _error(
                        "isv.BUSINESS_LIMIT_CONTROL", f"触发号码流控 Permits:{count}/{seconds}s")
            placed.append(now)
        return None


def v3_signature(secret: str, method: str, path: str, params: dict[str, str], headers: dict[str, str],
                 payload_hash: str) -> str:
    """Alibaba Cloud's V3 request signature (ACS3-HMAC-SHA256), as its documentation defines it."""
    query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(params.items()))
    canonical_headers = "".join(f"{name}:{value.strip()}\n" for name, value in sorted(headers.items()))
    canonical = "\n".join([method, path or "/", query, canonical_headers, ";".join(sorted(headers)), payload_hash])
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def _encode(value: str) -> str:
    return quote(value, safe="~")  # RFC 3986: space %20, ~ kept


def _menu(p: dict[str, str]) -> dict[str, str]:
    """MenuKeyMap.n.Key / .Code, as the SDK flattens the list."""
    menu, n = {}, 1
    while f"MenuKeyMap.{n}.Key" in p:
        menu[p[f"MenuKeyMap.{n}.Key"]] = p.get(f"MenuKeyMap.{n}.Code", "")
        n += 1
    return menu


def _render(template: str, values: dict[str, str]) -> str:
    return VARIABLE.sub(lambda m: str(values.get(m[1], m[0])), template)


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _error(code: str, message: str) -> dict[str, Any]:
    request_id = _request_id()
    return {"RequestId": request_id, "HostId": "dyvmsapi.aliyuncs.com", "Code": code, "Message": message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=Dyvmsapi&requestId={request_id}"}


class _GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        emulator: AliyunEmulator = self.server.emulator  # type: ignore[attr-defined]
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, payload = emulator.handle("POST", urlsplit(self.path).path + "?" + urlsplit(self.path).query,
                                          headers, body)
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: the test output is the record

