"""A Twilio emulator for end-to-end tests: the provider at its HTTP boundary, nothing of the project faked.

Twilio is the one component no test machine can reach, so this module plays it on loopback:

- **The REST API.** `TwilioEmulator.url` is an `http.server` on 127.0.0.1 that accepts what the real `twilio`
  library sends: `POST /2010-04-01/Accounts/{AccountSid}/Calls.json` and `.../Messages.json`, form-encoded, with
  HTTP basic auth (account sid and auth token, checked). It answers with Twilio-shaped JSON (201, a `CA…`/`SM…` sid,
  status `queued`), or with Twilio's error body (`{"code", "message", "more_info", "status"}`; HTTP 400, or 401 for
  bad credentials) so the library raises `TwilioRestException` with that code: for a missing parameter, a number
  that is not E.164, wrong credentials, or a failure a test scripted with `fail_next` (21211, 21610...).
  `GET .../Calls.json` is the Calls list, filtered by `To`, `Status` and `StartTime>` as Twilio documents them:
  `StartTime>` by the day ("on or after this date"), so a same-day call before the time asked for is listed too,
  and a call not yet dialed (queued) has no start time and is left out.
- **The telephone network and the people on it.** A call is not connected while the API request is open: real
  Twilio answers the API first and calls back seconds later, and the dispatcher commits its attempt only after the
  API answers. The test connects queued calls with `play()`, which drives the project's webhooks over HTTP as
  Twilio would: status callbacks (initiated, ringing, answered, completed, busy, no-answer...), the voice URL with
  `AnsweredBy` when machine detection is on, then the returned TwiML verb by verb (`<Say>`, `<Gather>`,
  `<Redirect>`, `<Pause>`, `<Record>`, `<Hangup/>`), pressing the keys a scripted `Person` presses. `text()` is an
  inbound SMS; the `<Message>` replies in the project's TwiML are recorded as messages sent. `report_message()`
  delivers a message's status callback (delivered, undelivered with an error code). `deliver_twice` sends every
  webhook twice, as Twilio's at-least-once delivery may; `redeliver()` repeats one. `end_unheard()` ends a call
  while none of its webhooks reaches the project (its web app was down): only the Calls list knows.
- **Signatures.** Every webhook is signed with `twilio.request_validator.RequestValidator(auth_token)` for the
  public URL Twilio would call (the project's `public_base_url` + path + query) and posted to the local server
  that stands behind that public address.

Everything is synchronous and bounded: one test thread drives the calls, every HTTP request has a timeout and a
call follows at most `MAX_FETCHES` TwiML documents.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urljoin

import httpx
from twilio.request_validator import RequestValidator

from tests.integration.loopback import LoopbackEmulator

API_VERSION = "2010-04-01"
MAX_FETCHES = 40  # TwiML documents one call may fetch: a project that loops forever fails the test instead
TIMEOUT = 10.0  # seconds for any one HTTP request to the project
SILENT = None  # a Person's "key" for staying silent through a <Gather>
E164 = re.compile(r"\+[1-9]\d{6,14}")
_API_PATH = re.compile(rf"/{API_VERSION}/Accounts/(?P<account>[^/]+)/(?P<resource>Calls|Messages)\.json")
# Twilio reports every final call status (busy, no-answer, failed, canceled too) on the "completed" event.
_EVENT_OF_STATUS = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}
_ERROR_MESSAGES = {
    21211: "The 'To' number {to} is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
}


class EmulatorError(AssertionError):
    """The project did something Twilio would refuse or the script did not expect."""


@dataclass(frozen=True)
class Person:
    """Who answers one call to a number, and how.

    `pickup`: "human" answers; "machine" is an answering machine (AnsweredBy=machine_start); "busy", "no-answer"
    and "failed" never answer. `keys`: what the person does at each <Gather>, in order: a digit string to press, or
    `SILENT` to let it time out ("123112" presses one key at each of six). When the keys run out while the project
    still asks, the person hangs up. At a <Record> the person says nothing.
    """

    pickup: str = "human"
    keys: Sequence[str | None] = ()

    def __post_init__(self) -> None:
        if self.pickup not in ("human", "machine", "busy", "no-answer", "failed"):
            raise ValueError(f"unknown pickup {self.pickup!r}")


@dataclass(frozen=True)
class Said:
    """One <Say> the person heard: its text, its language attribute, and whether it was inside a <Gather>."""

    text: str
    language: str | None
    in_gather: bool


@dataclass
class Call:
    """One call created through the API, and everything that happened on it once played."""

    sid: str
    to: str
    from_: str
    url: str
    status_callback: str | None
    events: list[str]
    machine_detection: str | None
    status: str = "queued"
    answered_by: str | None = None
    documents: list[ET.Element] = field(default_factory=list)  # every TwiML document the project returned
    said: list[Said] = field(default_factory=list)
    gathers: list[dict[str, str]] = field(default_factory=list)  # each <Gather>'s attributes, as heard
    pressed: list[str | None] = field(default_factory=list)
    ended_by: str = ""  # "project" (<Hangup/> or no verbs left), "person" (hung up), or "" when never answered
    callbacks_sent: int = 0  # status callbacks so far (Twilio's SequenceNumber)
    created_at: float = 0.0  # time.monotonic() when the API created it
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))
    start_time: datetime | None = None  # when it was dialed: None while queued

    @property
    def transcript(self) -> str:
        return "\n".join(said.text for said in self.said)


@dataclass
class Message:
    """One SMS sent to a person: through the API ("outbound-api") or as a TwiML reply ("outbound-reply")."""

    sid: str
    to: str
    from_: str
    body: str
    direction: str
    status_callback: str | None = None
    status: str = "queued"


@dataclass(frozen=True)
class Delivery:
    """One webhook request the emulator made: the public URL it signed, its form and the project's answer."""

    url: str
    params: dict[str, str]
    status: int
    body: str


class TwilioEmulator(LoopbackEmulator):
    """Twilio's REST API on loopback, and the network that drives the project's webhooks.

    `public_base_url` is the address the project told Twilio to call; `app_url` is where that address is served
    locally (the uvicorn under test). `sms_url` is the messaging webhook configured on the sending number.
    """

    def __init__(self, account_sid: str, auth_token: str, from_number: str, public_base_url: str, app_url: str,
                 sms_url: str) -> None:
        self.account_sid, self.auth_token, self.from_number = account_sid, auth_token, from_number
        self.public_base_url, self.app_url, self.sms_url = public_base_url.rstrip("/"), app_url.rstrip("/"), sms_url
        self.calls: list[Call] = []
        self.messages: list[Message] = []
        self.deliveries: list[Delivery] = []
        # (resource, form) of every authenticated API request, whether it created something or was refused
        self.api_requests: list[tuple[str, dict[str, list[str]]]] = []
        # at-least-once delivery: every webhook is sent twice, and the call goes on with the second answer (as
        # when Twilio retries a request whose response it lost)
        self.deliver_twice = False
        # a provider under load answers each API request this many seconds after it arrives
        self.api_delay = 0.0
        self.arrived = 0  # API requests received, counted before `api_delay`: a client may be stopped mid-request
        self._autoplay: tuple[Person, float, ThreadPoolExecutor] | None = None
        self.failures: list[str] = []  # what went wrong on calls connected by `autoplay`
        self._people: dict[str, list[Person]] = {}
        self._failures: dict[str, list[tuple[int, int]]] = {}
        self._played: set[str] = set()
        self._sids = itertools.count(1)
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=TIMEOUT)
        super().__init__(_ApiHandler, "twilio-emulator")

    # ---- lifecycle ---------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API base URL to give the twilio client (`api_base_url`)."""
        return f"http://{self.host_port}"

    def stop(self) -> None:
        if self._autoplay is not None:
            self._autoplay[2].shutdown(wait=True, cancel_futures=True)
        super().stop()
        self._http.close()

    # ---- scripting ---------------------------------------------------------------------------------------

    def script(self, to: str, *people: Person) -> None:
        """Who answers the next calls to `to`, one Person per call, in order."""
        self._people.setdefault(to, []).extend(people)

    def fail_next(self, to: str, code: int, status: int = 400) -> None:
        """The next API request (a call or a message) to `to` is refused with Twilio error `code`."""
        self._failures.setdefault(to, []).append((code, status))

    def end_unheard(self, call: Call, status: str) -> None:
        """Dial `call` and end it with `status` (completed, busy, no-answer, failed, canceled) while none of its
        webhooks reaches the project, as when its web app is down: only the Calls list shows what happened."""
        with self._lock:
            self._played.add(call.sid)
        call.start_time = call.start_time or datetime.now(UTC)
        call.status = status

    def calls_to(self, to: str) -> list[Call]:
        return [call for call in self.calls if call.to == to]

    def messages_to(self, to: str) -> list[Message]:
        return [message for message in self.messages if message.to == to]

    # ---- the network -------------------------------------------------------------------------------------

    def play(self) -> list[Call]:
        """Connect every queued call by its number's script, in the order the calls were created."""
        with self._lock:
            queued = [call for call in self.calls if call.sid not in self._played]
            self._played.update(call.sid for call in queued)
        for call in queued:
            people = self._people.get(call.to)
            if not people:
                raise EmulatorError(f"call {call.sid}: no Person scripted for this number")
            self._connect(call, people.pop(0))
        return queued

    def autoplay(self, person: Person, *, after: float = 0.5, threads: int = 32) -> None:
        """From now on connect every call `after` seconds once the API created it, each on a thread of its own,
        all answered by `person`: the network under load, for benchmarks (`play` drives one call at a time)."""
        self._autoplay = (person, after, ThreadPoolExecutor(threads, thread_name_prefix="twilio-call"))

    def _connect_later(self, call: Call, person: Person, after: float) -> None:
        time.sleep(max(0.0, call.created_at + after - time.monotonic()))
        try:
            self._connect(call, person)
        except Exception as exc:  # kept for the caller to report: a pool thread has nobody to raise to
            with self._lock:
                self.failures.append(f"call {call.sid}: {type(exc).__name__}: {exc}")

    def text(self, from_: str, body: str) -> list[str]:
        """The person at `from_` sends an SMS to the project's number; returns the bodies of its <Message> replies."""
        sid = self._sid("SM")
        params = {
            "AccountSid": self.account_sid, "ApiVersion": API_VERSION, "MessageSid": sid, "SmsMessageSid": sid,
            "SmsSid": sid, "SmsStatus": "received", "From": from_, "To": self.from_number, "Body": body,
            "NumMedia": "0", "NumSegments": "1", "FromCountry": "CN", "ToCountry": "CN",
        }
        return self._replies(self.post(self.sms_url, params), from_)

    def report_message(self, message: Message, status: str, error_code: int | None = None) -> Delivery | None:
        """A delivery report (sent, delivered, undelivered, failed) for a message, to its StatusCallback."""
        message.status = status
        if not message.status_callback:
            return None
        params = {
            "AccountSid": self.account_sid, "ApiVersion": API_VERSION, "MessageSid": message.sid,
            "SmsSid": message.sid, "MessageStatus": status, "SmsStatus": status, "From": message.from_,
            "To": message.to,
        }
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return self.post(message.status_callback, params)

    def post(self, public_url: str, params: dict[str, str], *, headers: dict[str, str] | None = None) -> Delivery:
        """POST a webhook as Twilio does: signed for `public_url`, sent to the local server behind that address.

        `headers` replaces the signature header (a forgery: `{}` sends none).
        """
        if not public_url.startswith(self.public_base_url + "/"):
            raise EmulatorError(f"webhook URL {public_url} is not under the public base URL {self.public_base_url}")
        if headers is None:
            headers = {"X-Twilio-Signature": RequestValidator(self.auth_token).compute_signature(public_url, params)}
        local = self.app_url + public_url[len(self.public_base_url):]
        for _ in range(2 if self.deliver_twice else 1):
            response = self._http.post(local, data=params, headers=headers)
            delivery = Delivery(public_url, dict(params), response.status_code, response.text)
            self.deliveries.append(delivery)
        return delivery

    def redeliver(self, delivery: Delivery) -> Delivery:
        """The same webhook again, byte for byte (Twilio retries and duplicates deliveries)."""
        return self.post(delivery.url, delivery.params)

    # ---- calls -------------------------------------------------------------------------------------------

    def _connect(self, call: Call, person: Person) -> None:
        self._status(call, "initiated")
        if person.pickup == "busy":
            return self._status(call, "busy")
        self._status(call, "ringing")
        if person.pickup in ("no-answer", "failed"):
            return self._status(call, person.pickup)
        if call.machine_detection:
            call.answered_by = "machine_start" if person.pickup == "machine" else "human"
        self._status(call, "in-progress")
        keys = list(person.keys)
        url, extra = call.url, {}
        for _ in range(MAX_FETCHES):
            document = self._twiml(self.post(url, {**self._call_params(call), **extra}))
            call.documents.append(document)
            next_request = self._execute(call, document, keys, url)
            if next_request is None:
                break
            url, extra = next_request
        else:
            raise EmulatorError(f"call {call.sid}: more than {MAX_FETCHES} TwiML documents")
        self._status(call, "completed")

    def _execute(self, call: Call, document: ET.Element, keys: list[str | None],
                 url: str) -> tuple[str, dict[str, str]] | None:
        """Run one TwiML document; the next request to make (URL and extra parameters), or None when the call ends."""
        for verb in document:
            if verb.tag == "Say":
                call.said.append(Said(verb.text or "", verb.get("language"), False))
            elif verb.tag == "Pause":
                continue
            elif verb.tag == "Gather":
                call.gathers.append(dict(verb.attrib))
                for inner in verb:
                    if inner.tag != "Say":
                        raise EmulatorError(f"call {call.sid}: <{inner.tag}> inside <Gather> is not emulated")
                    call.said.append(Said(inner.text or "", inner.get("language"), True))
                if not keys:
                    call.ended_by = "person"  # nothing more to say: the person hangs up while asked
                    return None
                key = keys.pop(0)
                call.pressed.append(key)
                if key is SILENT:
                    continue  # the Gather times out: Twilio goes on with the next verb
                self._require_post(call, verb)
                digits = key[: int(verb.get("numDigits", len(key)))]  # Twilio stops listening after numDigits
                return urljoin(url, verb.get("action", url)), {"Digits": digits, "FinishedOnKey": ""}
            elif verb.tag == "Redirect":
                self._require_post(call, verb)
                return urljoin(url, (verb.text or "").strip()), {}
            elif verb.tag == "Record":
                continue  # the person says nothing: no recording, Twilio goes on with the next verb
            elif verb.tag == "Hangup":
                call.ended_by = "project"
                return None
            else:
                raise EmulatorError(f"call {call.sid}: <{verb.tag}> is not emulated")
        call.ended_by = "project"  # no verbs left: Twilio hangs up
        return None

    def _call_params(self, call: Call) -> dict[str, str]:
        params = {
            "AccountSid": self.account_sid, "ApiVersion": API_VERSION, "CallSid": call.sid, "CallStatus": call.status,
            "Direction": "outbound-api", "From": call.from_, "To": call.to, "Caller": call.from_, "Called": call.to,
        }
        if call.answered_by:
            params["AnsweredBy"] = call.answered_by
        return params

    def _status(self, call: Call, status: str) -> None:
        call.status = status
        call.start_time = call.start_time or datetime.now(UTC)  # dialed
        event = _EVENT_OF_STATUS.get(status, "completed")
        if call.status_callback and (event == "completed" or event in call.events):
            params = {**self._call_params(call), "CallbackSource": "call-progress-events",
                      "SequenceNumber": str(call.callbacks_sent),
                      "Timestamp": format_datetime(datetime.now(UTC), usegmt=True)}
            if event == "completed":
                params["CallDuration"] = params["Duration"] = "0" if status != "completed" else "42"
            call.callbacks_sent += 1
            self._expect_ok(self.post(call.status_callback, params))

    @staticmethod
    def _require_post(call: Call, verb: ET.Element) -> None:
        if verb.get("method", "POST").upper() != "POST":
            raise EmulatorError(f"call {call.sid}: <{verb.tag} method={verb.get('method')}> is not emulated")

    def _twiml(self, delivery: Delivery) -> ET.Element:
        self._expect_ok(delivery)
        root = ET.fromstring(delivery.body)
        if root.tag != "Response":
            raise EmulatorError(f"{delivery.url}: TwiML must have <Response> at its root, not <{root.tag}>")
        return root

    @staticmethod
    def _expect_ok(delivery: Delivery) -> None:
        if not 200 <= delivery.status < 300:
            raise EmulatorError(f"{delivery.url} answered {delivery.status}: {delivery.body[:300]}")

    # ---- messages ----------------------------------------------------------------------------------------

    def _replies(self, delivery: Delivery, to: str) -> list[str]:
        if delivery.status == 204 or not delivery.body.strip():
            return []
        bodies = []
        for verb in self._twiml(delivery):
            if verb.tag != "Message":
                raise EmulatorError(f"{delivery.url}: <{verb.tag}> in a messaging response is not emulated")
            body = "".join(verb.itertext())
            recipient = verb.get("to", to)
            self.messages.append(Message(self._sid("SM"), recipient, self.from_number, body, "outbound-reply"))
            bodies.append(body)
        return bodies

    # ---- the REST API (called from the server thread) ----------------------------------------------------

    def _sid(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._sids):032x}"

    def api(self, path: str, authorization: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        """One REST request: (HTTP status, JSON body)."""
        match = _API_PATH.fullmatch(path)
        if match is None:
            return 404, _error(20404, f"The requested resource {path} was not found", 404)
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if authorization != expected:
            return 401, _error(20003, "Authenticate", 401)
        if match["account"] != self.account_sid:
            return 404, _error(20404, f"The requested resource {path} was not found", 404)
        with self._lock:
            self.arrived += 1
        if self.api_delay:
            time.sleep(self.api_delay)  # what was asked is done whether or not the client is still there to hear
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        one = {key: values[-1] for key, values in form.items()}
        with self._lock:
            self.api_requests.append((match["resource"], form))
        to, from_ = one.get("To", ""), one.get("From", "")
        if not to:
            return 400, _error(21201 if match["resource"] == "Calls" else 21604, "A 'To' phone number is required.")
        if not from_:
            return 400, _error(21213 if match["resource"] == "Calls" else 21603, "A 'From' phone number is required.")
        if not E164.fullmatch(to):
            return 400, _error(21211, _ERROR_MESSAGES[21211].format(to=to))
        with self._lock:
            failures = self._failures.get(to)
            failure = failures.pop(0) if failures else None
        if failure is not None:
            code, status = failure
            return status, _error(code, _ERROR_MESSAGES.get(code, "Error").format(to=to), status)
        if match["resource"] == "Calls":
            return self._create_call(form, one)
        return self._create_message(one)

    def _create_call(self, form: dict[str, list[str]], one: dict[str, str]) -> tuple[int, dict[str, Any]]:
        url = one.get("Url", "")
        if not url.startswith(("http://", "https://")):
            return 400, _error(21205, "Url parameter is required and must be an absolute URL.")
        events = form.get("StatusCallbackEvent", [])
        if set(events) - {"initiated", "ringing", "answered", "completed"}:
            return 400, _error(21626, f"Invalid StatusCallbackEvent {events}.")
        detection = one.get("MachineDetection")
        if detection not in (None, "Enable", "DetectMessageEnd"):
            return 400, _error(21218, f"Invalid MachineDetection {detection}.")
        call = Call(self._sid("CA"), one["To"], one["From"], url, one.get("StatusCallback"), events, detection,
                    created_at=time.monotonic())
        with self._lock:
            self.calls.append(call)
            if self._autoplay is not None:
                person, after, pool = self._autoplay
                self._played.add(call.sid)
                pool.submit(self._connect_later, call, person, after)
        return 201, self._call_resource(call)

    def _call_resource(self, call: Call) -> dict[str, Any]:
        def rfc2822(when: datetime | None) -> str | None:
            return None if when is None else format_datetime(when, usegmt=True)

        return {**self._resource("Calls", call.sid, {
            "to": call.to, "to_formatted": call.to, "from": call.from_, "from_formatted": call.from_,
            "status": call.status, "direction": "outbound-api", "answered_by": call.answered_by,
            "start_time": rfc2822(call.start_time), "end_time": None, "duration": None, "price": None,
            "parent_call_sid": None, "caller_name": None, "forwarded_from": None, "group_sid": None,
            "trunk_sid": None, "queue_time": "0",
        }), "date_created": rfc2822(call.date_created)}

    def list_calls(self, path: str, authorization: str | None, query: str) -> tuple[int, dict[str, Any]]:
        """`GET .../Calls.json`: the Calls list, newest first, filtered by `To`, `Status` and `StartTime>` (by the
        day, as Twilio documents it: a call started on or after that date; a call not yet dialed has no start
        time and is left out). One page holds every match."""
        match = _API_PATH.fullmatch(path)
        if match is None or match["resource"] != "Calls":
            return 405, _error(20004, "Method not allowed", 405)
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if authorization != expected:
            return 401, _error(20003, "Authenticate", 401)
        if match["account"] != self.account_sid:
            return 404, _error(20404, f"The requested resource {path} was not found", 404)
        one = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
        with self._lock:
            self.api_requests.append(("Calls.list", {key: [value] for key, value in one.items()}))
            calls = list(self.calls)
        if "To" in one:
            calls = [call for call in calls if call.to == one["To"]]
        if "Status" in one:
            calls = [call for call in calls if call.status == one["Status"]]
        if "StartTime>" in one:
            day = date.fromisoformat(one["StartTime>"][:10])
            calls = [call for call in calls if call.start_time is not None and call.start_time.date() >= day]
        calls.sort(key=lambda call: call.date_created, reverse=True)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls.json"
        return 200, {"calls": [self._call_resource(call) for call in calls], "end": max(len(calls) - 1, 0),
                     "first_page_uri": uri, "next_page_uri": None, "page": 0, "page_size": int(one.get("PageSize", 50)),
                     "previous_page_uri": None, "start": 0, "uri": uri}

    def _create_message(self, one: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not one.get("Body"):
            return 400, _error(21602, "Message body is required.")
        message = Message(self._sid("SM"), one["To"], one["From"], one["Body"], "outbound-api",
                          one.get("StatusCallback"))
        with self._lock:
            self.messages.append(message)
        return 201, self._resource("Messages", message.sid, {
            "to": message.to, "from": message.from_, "body": message.body, "status": "queued",
            "direction": "outbound-api", "num_segments": "1", "num_media": "0", "price": None, "error_code": None,
            "error_message": None, "date_sent": None, "messaging_service_sid": None,
        })

    def _resource(self, kind: str, sid: str, fields: dict[str, Any]) -> dict[str, Any]:
        now = format_datetime(datetime.now(UTC), usegmt=True)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/{kind}/{sid}.json"
        return {"sid": sid, "account_sid": self.account_sid, "api_version": API_VERSION, "date_created": now,
                "date_updated": now, "price_unit": "USD", "uri": uri, "subresource_uris": {}, **fields}


def _error(code: int, message: str, status: int = 400) -> dict[str, Any]:
    """Twilio's error body; the twilio library raises TwilioRestException(code=...) from it."""
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        emulator: TwilioEmulator = self.server.emulator  # type: ignore[attr-defined]
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            status, payload = 400, _error(20001, "Requests must be application/x-www-form-urlencoded")
        else:
            status, payload = emulator.api(self.path, self.headers.get("Authorization"), body)
        self._send(status, payload)

    def do_GET(self) -> None:  # noqa: N802
        emulator: TwilioEmulator = self.server.emulator  # type: ignore[attr-defined]
        path, _, query = self.path.partition("?")
        self._send(*emulator.list_calls(path, self.headers.get("Authorization"), query))

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")  # no idle keep-alive thread outlives the test
        self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: the test output is the record
