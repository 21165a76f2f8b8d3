"""Posting one markdown message to a 企业微信 group robot, and what its answer means.

The robot answers HTTP 200 with `{"errcode": 0, "errmsg": "ok"}` when the message was accepted, or another
errcode: 45009 (more than 20 messages a minute to one robot) and -1 (system busy) pass, so they are tried again;
93000 (no such robot: removed, or its key changed), 40xxx (a bad key or request) and the rest will not pass
however often they are sent. HTTP 5xx, 429 and network errors are tried again; other HTTP 4xx are not.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from callbackd.api import DeliveryError, Message
from callbackd_wecom.settings import WecomSettings, masked

CONTENT_LIMIT = 4096  # bytes of UTF-8 in markdown.content
RETRYABLE = {-1: "system busy", 45009: "rate limit: at most 20 messages a minute per robot"}


def send(url: str, message: Message, config: WecomSettings) -> None:
    """Post `message` as markdown to the robot at `url`; `DeliveryError` when it was not accepted."""
    payload = {"msgtype": "markdown", "markdown": {"content": message.markdown(max_bytes=CONTENT_LIMIT)}}
    shown = masked(url)
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=config.ca_file) if config.ca_file else True
    try:
        with httpx.Client(timeout=config.timeout, verify=verify, follow_redirects=False) as client:
            response = client.post(url, json=payload)
    except httpx.TransportError as exc:
        raise DeliveryError(f"企业微信 robot {shown} unreachable: {type(exc).__name__}: {scrub(str(exc), url)}",
                            permanent=False) from None
    verdict(response, shown)


def verdict(response: httpx.Response, shown: str) -> None:
    """Raise `DeliveryError` unless `response` says the robot accepted the message."""
    status = response.status_code
    if status >= 500 or status == 429:
        raise DeliveryError(f"企业微信 robot {shown} answered HTTP {status}", permanent=False)
    if status >= 300:
        raise DeliveryError(f"企业微信 robot {shown} refused the request: HTTP {status}", permanent=True)
    try:
        body: Any = response.json()
        code = int(body["errcode"])
    except (ValueError, KeyError, TypeError):
        # a proxy's or gateway's page instead of the robot's answer: most likely passing
        raise DeliveryError(f"企业微信 robot {shown} answered something that is not its JSON (HTTP {status})",
                            permanent=False) from None
    if code == 0:
        return
    detail = str(body.get("errmsg", ""))[:200]
    if code in RETRYABLE:
        raise DeliveryError(f"企业微信 robot {shown}: errcode {code} ({RETRYABLE[code]}): {detail}", permanent=False)
    hint = " (the robot was removed or its key changed: copy its address again)" if code in (93000, 40001) else ""
    raise DeliveryError(f"企业微信 robot {shown} refused the message: errcode {code}{hint}: {detail}",
                        permanent=True)


def scrub(text: str, url: str) -> str:
    """`text` (an exception's message) without the address's query, which holds the key."""
    query = httpx.URL(url).query.decode()
    return text.replace(query, "***") if query else text
