"""Messages to staff (企业微信 and 钉钉 group robots, email) and the notifiers that deliver them.

The core writes each notification to a durable outbox in the transaction that caused it (a rectification opened,
one due tomorrow or overdue, an escalation, a round closed below its completion target, an indicator alert, a
failed import or job) and delivers it afterwards, once per recipient, through the notifier plugins registered
with `register_notifiers`: `callbackd notify --once` and the workers' tick do it, retrying with backoff. A message
never carries an applicant's name or number, nor, for a confidential case type (举报), the case.

A notifier delivers one `Message` to one address of its own kind: for a group robot, a group's name from its
settings table (`""`, the table's own `webhook`); for email, an address. It raises `DeliveryError` when the message
did not get through; `permanent=True` when trying again cannot help (a refused address, a robot's key revoked).
A group robot's address holds its key: `check_webhook`, `masked_url` and `is_loopback` are what robots share for
checking one and showing it without the key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import AfterValidator

from callbackd.api.settings import _PluginTable
from callbackd.core.settings import Settings

# What a notification is about, and its Chinese name (a digest groups by it).
EVENTS = {
    "rectification.opened": "整改新开",
    "rectification.due_tomorrow": "整改明日到期",
    "rectification.overdue": "整改逾期",
    "rectification.escalated": "整改上报",
    "rectification.follow_up_failed": "整改回访未成",
    "round.below_target": "回访完成率未达标",
    "indicator.alert": "指标预警",
    "job.failed": "任务失败",
}


@dataclass(frozen=True)
class Message:
    """One message as a person reads it: a short Chinese title, a few lines, and the console page it concerns
    (an absolute address, or "" when `[web] public_url` is not set)."""

    title: str
    lines: tuple[str, ...] = ()
    link: str = ""

    def text(self) -> str:
        """The message as plain text: title, lines, then the link."""
        parts = [self.title, *self.lines]
        if self.link:
            parts.append(f"详情：{self.link}")
        return "\n".join(parts)

    def markdown(self, max_bytes: int | None = None) -> str:
        """The message as the robots' markdown: a bold title, one line each, the link as a link. With `max_bytes`,
        in at most that many bytes of UTF-8: lines that do not fit are cut short, ending in "…"; the title and the
        link are kept (the title is cut only when it alone is too long, the link dropped only when it alone is)."""
        parts = [f"**{_markdown_text(self.title)}**", *(_markdown_text(line) for line in self.lines)]
        if self.link:
            parts.append(f"[在控制台查看]({self.link})")
        text = "\n\n".join(parts)
        if max_bytes is None or _size(text) <= max_bytes:
            return text
        return _fit(self, max_bytes)


def _markdown_text(text: str) -> str:
    # markdown must not turn a window's name into a link, a heading or bold text
    return "".join(f"\\{ch}" if ch in "\\`*_[]()#<>!|~" else ch for ch in text)


_ELLIPSIS = "…"


def _fit(message: Message, limit: int) -> str:
    # `message.markdown()` is longer than `limit` bytes: keep whole lines while they fit with "…" after them, then
    # the longest start of the next; failing that the title alone, cut; failing that the message without its link
    if _size(replace(message, lines=(_ELLIPSIS,)).markdown()) <= limit:
        kept: list[str] = []
        for line in message.lines:
            if _size(replace(message, lines=(*kept, line, _ELLIPSIS)).markdown()) > limit:
                kept.append(_longest_start(line, lambda part: replace(message, lines=(*kept, part)).markdown(), limit))
                return replace(message, lines=tuple(kept)).markdown()
            kept.append(line)
        return message.markdown()  # not reached: had every line fitted with "…" after it, the whole would have
    if _size(replace(message, title=_ELLIPSIS, lines=()).markdown()) <= limit:
        title = _longest_start(message.title, lambda part: replace(message, title=part, lines=()).markdown(), limit)
        return replace(message, title=title, lines=()).markdown()
    if message.link:  # a link longer than the limit cannot be shown; the message without it can
        return replace(message, link="").markdown(limit)
    return message.markdown().encode()[: limit - _size(_ELLIPSIS)].decode(errors="ignore") + _ELLIPSIS


def _longest_start(text: str, render: Callable[[str], str], limit: int) -> str:
    # the longest start of `text`, ending in "…", whose rendering fits in `limit` bytes ("…" alone at worst)
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if _size(render(text[:middle].rstrip() + _ELLIPSIS)) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + _ELLIPSIS


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


@dataclass(frozen=True)
class Notification:
    """An outbox entry as the `notify` hook hears it, once the transaction that wrote it has committed."""

    id: int
    event: str
    message: Message
    window: str | None
    created_at: datetime
    recipients: tuple[str, ...] = field(default_factory=tuple)  # "notifier:address" routes, e.g. "wecom:窗口一组"


class DeliveryError(Exception):
    """A message that did not get through; `permanent` when trying again cannot help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@runtime_checkable
class Notifier(Protocol):
    """Delivers messages of one kind (`name`: "wecom", "dingtalk", "email"), registered by a plugin's
    `register_notifiers`. A notifier reads its own table `[notify.<name>]` (see `NotifierSettings`)."""

    name: str

    def deliver(self, address: str, message: Message, settings: Settings) -> None:
        """Send `message` to `address` (a group's name, "" for the table's own webhook; or an email address);
        raise `DeliveryError` when it did not get through."""
        ...


class NotifierSettings(_PluginTable):
    """A notifier plugin's table `[notify.<section>]`, validated. Subclasses set `section` and declare fields; a bad
    or unknown key is a `ConfigError` naming `[notify.<section>] <key>`."""

    prefix = "notify"

    @classmethod
    def _table(cls, settings: Settings) -> Mapping[str, Any]:
        return settings.notify.table(cls.section)


def _existing_file(value: str) -> str:
    if value and not Path(value).is_file():
        raise ValueError(f"no such file: {value}")
    return value


# A notifier table's `ca_file`: a PEM bundle to trust instead of the system's (a gateway or relay with the
# organisation's own CA), "" for the system's; a path that is no file is a `ConfigError` naming the key.
CaFile = Annotated[str, AfterValidator(_existing_file)]

_LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an IP address) names this machine."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def masked_url(url: str, secret_parameters: Collection[str]) -> str:
    """`url` with the values of its query parameters named in `secret_parameters` shown as ***."""
    try:
        parts = urlsplit(url)
        query = [(name, "***" if name in secret_parameters else value) for name, value in parse_qsl(parts.query)]
        return urlunsplit(parts._replace(query=urlencode(query, safe="*")))
    except ValueError:
        return "(an address that is not a URL)"


def post_to_robot(
    robot: str, url: str, payload: Mapping[str, Any], *, shown: str, timeout: float, ca_file: str,
    retryable: Mapping[int, str], refused: Mapping[int, str],
) -> None:
    """POST `payload` as JSON to a group robot that answers HTTP 200 with `{"errcode": 0, "errmsg": "ok"}` when it
    took the message (企业微信's and 钉钉's), else raise `DeliveryError`.

    HTTP 5xx and 429, a network error, an answer that is not the robot's JSON (a proxy's page) and an errcode in
    `retryable` (errcode -> why) are tried again; other HTTP 4xx and errcodes are not, with `refused` (errcode ->
    what to do) as a hint. `robot` names it in messages ("企业微信 robot"), `shown` is its address masked; the
    address's query (its key) never appears in one. `ca_file` is a PEM bundle to trust instead of the system's."""
    import ssl

    import httpx

    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    try:
        with httpx.Client(timeout=timeout, verify=verify, follow_redirects=False) as client:
            response = client.post(url, json=payload)
    except httpx.TransportError as exc:
        query = httpx.URL(url).query.decode()
        said = str(exc).replace(query, "***") if query else str(exc)
        raise DeliveryError(f"{robot} {shown} unreachable: {type(exc).__name__}: {said}", permanent=False) from None
    status = response.status_code
    if status >= 500 or status == 429:
        raise DeliveryError(f"{robot} {shown} answered HTTP {status}", permanent=False)
    if status >= 300:
        raise DeliveryError(f"{robot} {shown} refused the request: HTTP {status}", permanent=True)
    try:
        body: Any = response.json()
        code = int(body["errcode"])
    except (ValueError, KeyError, TypeError):
        raise DeliveryError(f"{robot} {shown} answered something that is not its JSON (HTTP {status})",
                            permanent=False) from None
    if code == 0:
        return
    detail = str(body.get("errmsg", ""))[:200]
    if code in retryable:
        raise DeliveryError(f"{robot} {shown}: errcode {code} ({retryable[code]}): {detail}", permanent=False)
    hint = f" ({refused[code]})" if code in refused else ""
    raise DeliveryError(f"{robot} {shown} refused the message: errcode {code}{hint}: {detail}", permanent=True)


def check_webhook(url: str, key: str, example: str, secret_parameters: Collection[str] = ()) -> str:
    """`url` if it is a robot's full address: https (http only to this machine, for a local relay or a test) with
    the query parameter `key` (the robot's key or token); otherwise a `ValueError` saying what is wrong, the address
    shown with `key` and `secret_parameters` masked and `example` (the robot's address, key elided) as a model."""
    shown = masked_url(url, {key, *secret_parameters})
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{shown} is not a robot's address ({example})")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"{shown} must use https (http is allowed only to 127.0.0.1, localhost or ::1)")
    if not dict(parse_qsl(parts.query)).get(key):
        raise ValueError(f"{shown} has no {key}: copy the robot's whole address, with ?{key}=...")
    return url
