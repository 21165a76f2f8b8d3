"""Emulators for the notifiers' far ends, at their network boundary: nothing of the project is faked.

- **The group robots.** `RobotEmulator` is an `http.server` on 127.0.0.1 answering as 企业微信's group robots
  (`POST /cgi-bin/webhook/send?key=...`) and 钉钉's custom robots (`POST /robot/send?access_token=...&timestamp=
  ...&sign=...`) do: HTTP 200 and `{"errcode": 0, "errmsg": "ok"}`, or their errcodes. It knows each robot's key
  or token (and a 钉钉 robot's 加签 secret) and checks what they check: an unknown key is 93000, an unknown token
  300001; a 钉钉 request's `sign` is recomputed with the robot's secret (base64 of HMAC-SHA256 over
  "{timestamp}\\n{secret}") and its timestamp must be within an hour of now, else 310000; the body must be JSON
  of the kind sent (`msgtype` markdown, 企业微信's content at most 4,096 bytes). Each accepted message is kept,
  parsed, under its group's name (`received(group)`); `fail_next(n, ...)` makes the next n requests fail with an
  HTTP status or an errcode.
- **The mail server.** `SmtpServer` is aiosmtpd on 127.0.0.1, keeping each message it accepts (parsed with the
  email package) with its envelope; it can offer STARTTLS (a self-signed certificate made with `cryptography`,
  whose PEM file the client names as `ca_file`), require AUTH LOGIN/PLAIN with one user and password, and refuse
  chosen recipients with 550.

The fixtures `robots` and `smtp_server` (re-exported by tests/integration/conftest.py) start one of each for a test.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer  # noqa: N811 (aiosmtpd's name)
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.integration.loopback import LoopbackEmulator

TIMEOUT = 10.0
WECOM_LIMIT = 4096  # bytes of markdown.content 企业微信 accepts
DINGTALK_SKEW_MS = 3600 * 1000  # how far a 钉钉 timestamp may be from the server's clock
WECOM_PATH, DINGTALK_PATH = "/cgi-bin/webhook/send", "/robot/send"


@dataclass
class Received:
    """One request a robot accepted or refused: which robot, the group it belongs to, the query and the JSON body,
    and what it answered."""

    robot: str  # "wecom" or "dingtalk"
    group: str | None  # None: no robot has that key or token
    query: dict[str, str]
    body: Any
    status: int
    answer: dict[str, Any]


@dataclass
class _Failure:
    robot: str | None
    status: int
    errcode: int | None
    errmsg: str


class RobotEmulator(LoopbackEmulator):
    """企业微信 and 钉钉 group robots on loopback. `add_wecom(group)` and `add_dingtalk(group)` create a robot and
    return its address (and secret); the test configures callbackd with them."""

    def __init__(self) -> None:
        self.wecom_keys: dict[str, str] = {}  # key -> group
        self.dingtalk_tokens: dict[str, tuple[str, str]] = {}  # token -> (group, 加签 secret; "" for none)
        self.requests: list[Received] = []
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        super().__init__(_RobotHandler, "robot-emulator")

    # ---- lifecycle ---------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"

    # ---- robots ------------------------------------------------------------------------------------------

    def add_wecom(self, group: str, key: str | None = None) -> str:
        """A 企业微信 robot in `group`; its address."""
        key = key or str(uuid.uuid4())
        self.wecom_keys[key] = group
        return self.wecom_url(key)

    def add_dingtalk(self, group: str, token: str | None = None, secret: str | None = None) -> tuple[str, str]:
        """A 钉钉 robot in `group` with 加签 (`secret=""`: without); its address and secret."""
        token = token or secrets.token_hex(32)
        secret = ("SEC" + secrets.token_hex(32)) if secret is None else secret
        self.dingtalk_tokens[token] = (group, secret)
        return self.dingtalk_url(token), secret

    def wecom_url(self, key: str) -> str:
        return f"{self.url}{WECOM_PATH}?key={key}"

    def dingtalk_url(self, token: str) -> str:
        return f"{self.url}{DINGTALK_PATH}?access_token={token}"

    # ---- what the test reads and scripts -----------------------------------------------------------------

    def received(self, group: str | None = None, robot: str | None = None) -> list[Any]:
        """The JSON bodies the robots accepted, in order: those of `group` (and of `robot`, "wecom" or
        "dingtalk") when given."""
        with self._lock:
            return [r.body for r in self.requests if r.answer.get("errcode") == 0 and r.status == 200
                    and (group is None or r.group == group) and (robot is None or r.robot == robot)]

    def fail_next(self, n: int = 1, *, robot: str | None = None, status: int = 200, errcode: int | None = None,
                  errmsg: str = "") -> None:
        """The next `n` requests (to `robot` only, when given) fail: with HTTP `status` (500 and no robot's body
        when `errcode` is None), or with HTTP 200 and `errcode`."""
        if errcode is None and status == 200:
            status = 500
        with self._lock:
            self._failures += [_Failure(robot, status, errcode, errmsg) for _ in range(n)]

    # ---- the robots' side --------------------------------------------------------------------------------

    def handle(self, path: str, query: dict[str, str], body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
        robot = {WECOM_PATH: "wecom", DINGTALK_PATH: "dingtalk"}.get(path)
        if robot is None:
            return 404, {"errcode": 404, "errmsg": "not found"}
        try:
            parsed: Any = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            parsed = None
        with self._lock:
            group, (status, answer) = self._answer(robot, query, parsed, content_type)
            self.requests.append(Received(robot, group, query, parsed, status, answer))
        return status, answer

    def _answer(self, robot: str, query: dict[str, str], body: Any, content_type: str
                ) -> tuple[str | None, tuple[int, dict[str, Any]]]:
        failure = next((f for f in self._failures if f.robot in (None, robot)), None)
        if robot == "wecom":
            group = self.wecom_keys.get(query.get("key", ""))
        else:
            group = self.dingtalk_tokens.get(query.get("access_token", ""), (None, ""))[0]
        if failure is not None:
            self._failures.remove(failure)
            if failure.errcode is None:
                return group, (failure.status, {"error": "internal server error"})
            return group, (failure.status, {"errcode": failure.errcode, "errmsg": failure.errmsg or "failed"})
        if robot == "wecom":
            return group, self._wecom(query, body, content_type)
        return group, self._dingtalk(query, body, content_type)

    def _wecom(self, query: dict[str, str], body: Any, content_type: str) -> tuple[int, dict[str, Any]]:
        hint = f", hint: [{int(time.time())}_{secrets.token_hex(8)}], from ip: 127.0.0.1, more info at " \
               "https://open.work.weixin.qq.com/devtool/query?e="
        if query.get("key", "") not in self.wecom_keys:
            return 200, {"errcode": 93000, "errmsg": f"invalid webhook url{hint}93000"}
        if "application/json" not in content_type or not isinstance(body, dict):
            return 200, {"errcode": 40035, "errmsg": f"invalid parameter{hint}40035"}
        if body.get("msgtype") != "markdown":
            return 200, {"errcode": 40008, "errmsg": f"invalid message type{hint}40008"}
        content = (body.get("markdown") or {}).get("content")
        if not isinstance(content, str) or not content:
            return 200, {"errcode": 44004, "errmsg": f"empty content{hint}44004"}
        if len(content.encode("utf-8")) > WECOM_LIMIT:
            return 200, {"errcode": 40058, "errmsg": f"markdown.content exceed max length {WECOM_LIMIT}{hint}40058"}
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _dingtalk(self, query: dict[str, str], body: Any, content_type: str) -> tuple[int, dict[str, Any]]:
        known = self.dingtalk_tokens.get(query.get("access_token", ""))
        if known is None:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        _, secret = known
        if secret:
            try:
                timestamp = int(query.get("timestamp", ""))
            except ValueError:
                return 200, {"errcode": 310000, "errmsg": "sign not match, more: [https://ding-doc.dingtalk.com/doc#/"
                                                          "serverapi2/qf2nxq]"}
            if abs(timestamp - time.time() * 1000) > DINGTALK_SKEW_MS:
                return 200, {"errcode": 310000, "errmsg": "invalid timestamp"}
            expected = dingtalk_sign(secret, timestamp)
            if not hmac.compare_digest(query.get("sign", "").encode(), expected.encode()):
                return 200, {"errcode": 310000, "errmsg": "sign not match, more: [https://ding-doc.dingtalk.com/doc#/"
                                                          "serverapi2/qf2nxq]"}
        if "application/json" not in content_type or not isinstance(body, dict):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 json"}
        markdown = body.get("markdown") or {}
        if body.get("msgtype") != "markdown" or not markdown.get("title") or not markdown.get("text"):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 markdown.title 或 markdown.text"}
        return 200, {"errcode": 0, "errmsg": "ok"}


def dingtalk_sign(secret: str, timestamp: int) -> str:
    """The sign 钉钉 expects (before URL-encoding; the query the emulator reads is decoded)."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class _RobotHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        emulator: RobotEmulator = self.server.emulator  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        # parse_qs decodes, as the robots' servers do: the sign arrives URL-encoded and is compared decoded
        query = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        status, payload = emulator.handle(parts.path, query, body, self.headers.get("Content-Type", ""))
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: the test output is the record


# ---- SMTP -------------------------------------------------------------------------------------------------


@dataclass
class Mail:
    """One message the server accepted: the envelope and the message, parsed (`policy.default`: headers decoded)."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    tls: bool  # whether the session had switched to TLS
    login: str | None  # the user that logged in, if any


class _Mailbox:
    """aiosmtpd's handler: refuses the chosen recipients, keeps what it accepts."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        if address in self.server.refuse:
            return self.server.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or b""
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.server.messages.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), parsed, raw,
                                         session.ssl is not None, login))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    """aiosmtpd on 127.0.0.1 (`host`, `port`): `messages` it accepted. `tls_cert` (a PEM file, the client's
    `ca_file`) makes it offer STARTTLS; `user`/`password` make it require a login; `refuse` maps an address to
    the reply refusing it ("550 5.1.1 ...")."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Mail] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    tls_cert: Path | None = None
    user: str = ""
    password: str = ""
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, accepted) of every AUTH tried
    _controller: Controller | None = None

    def start(self, tls: ssl.SSLContext | None = None) -> SmtpServer:
        self.port = free_port()
        auth = bool(self.user)
        self._controller = Controller(
            _Mailbox(self), hostname=self.host, port=self.port, ready_timeout=TIMEOUT,
            server_hostname="mail.example.test",
            tls_context=tls, require_starttls=False,
            authenticator=self._authenticate if auth else None, auth_required=auth,
            auth_require_tls=tls is not None,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def _authenticate(self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode()
        ok = hmac.compare_digest(user.encode(), self.user.encode()) and hmac.compare_digest(
            auth_data.password, self.password.encode())
        self.logins.append((user, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by its own key: (certificate PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callbackd test mail server")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def start_smtp(folder: Path, *, starttls: bool = False, user: str = "", password: str = "",
               refuse: dict[str, str] | None = None) -> SmtpServer:
    """An SMTP server on loopback, started: with STARTTLS (its certificate in `folder`, as `tls_cert`), a required
    login, refused recipients, as asked."""
    server = SmtpServer(refuse=dict(refuse or {}), user=user, password=password)
    context = None
    if starttls:
        cert, key = self_signed(folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        server.tls_cert = cert
    return server.start(context)


# ---- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture
def robots() -> Iterator[RobotEmulator]:
    """企业微信 and 钉钉 robots on loopback (add robots with `add_wecom`/`add_dingtalk`)."""
    emulator = RobotEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """A plain SMTP server on loopback, no TLS, no login (`starttls = false` in `[notify.email]`)."""
    server = start_smtp(tmp_path)
    try:
        yield server
    finally:
        server.stop()
