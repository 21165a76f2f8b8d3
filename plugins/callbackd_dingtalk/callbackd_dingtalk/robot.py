"""Posting one markdown message to a 钉钉 custom robot, signed (加签), and what its answer means.

With 加签, each request carries `timestamp` (milliseconds) and `sign`: HMAC-SHA256 keyed with the secret over
"{timestamp}\\n{secret}", in base64, URL-encoded, as 钉钉 documents; 钉钉 refuses a timestamp more than an hour
from its clock. The robot answers HTTP 200 with `{"errcode": 0, "errmsg": "ok"}` when the message was accepted, or
another errcode: 130101 and 410100 (more than 20 messages a minute to one robot) and -1 (system busy) pass, so they
are tried again; 310000 (sign, keyword or IP refused), 300001 (no such token) and the rest will not pass however
often they are sent. HTTP 5xx, 429 and network errors are tried again; other HTTP 4xx are not.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote_plus

from callbackd.api import Message, post_to_robot
from callbackd_dingtalk.settings import DingtalkSettings, Robot, masked

CONTENT_LIMIT = 20000  # bytes of UTF-8 in markdown.text
TITLE_LIMIT = 100  # characters of markdown.title (the chat list's preview)
RETRYABLE = {-1: "system busy", 130101: "rate limit: at most 20 messages a minute per robot",
             410100: "rate limit: at most 20 messages a minute per robot"}
REFUSED = {310000: "the 加签 sign, a keyword or the IP address was refused: check [notify.dingtalk] secret, the "
                   "robot's keywords and its IP list",
           300001: "no such robot: copy its address again", 400101: "no such robot: copy its address again",
           400102: "the robot is disabled"}
# 310000 from a robot sent without a secret
UNSIGNED = ("refused: the robot has 加签 (set [notify.dingtalk] secret or CALLBACKD_DINGTALK_SECRET), or the message "
            "lacks its keyword, or this server's IP is not on its list")
ELLIPSIS = "…"


def sign(secret: str, timestamp: int) -> str:
    """钉钉's 加签 for `timestamp` (milliseconds): base64 of HMAC-SHA256(secret, "{timestamp}\\n{secret}"),
    URL-encoded."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def signed(robot: Robot, now: float | None = None) -> str:
    """The robot's address with `timestamp` and `sign` added (unchanged for a robot without 加签)."""
    if not robot.secret:
        return robot.webhook
    timestamp = round((time.time() if now is None else now) * 1000)
    return f"{robot.webhook}&timestamp={timestamp}&sign={sign(robot.secret, timestamp)}"


def send(robot: Robot, message: Message, config: DingtalkSettings) -> None:
    """Post `message` as markdown to `robot`; `DeliveryError` when it was not accepted."""
    title = message.title if len(message.title) <= TITLE_LIMIT else message.title[: TITLE_LIMIT - 1] + ELLIPSIS
    text = message.markdown(max_bytes=CONTENT_LIMIT)
    payload = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    post_to_robot("钉钉 robot", signed(robot), payload, shown=masked(robot.webhook), timeout=config.timeout,
                  ca_file=config.ca_file, retryable=RETRYABLE,
                  refused=REFUSED if robot.secret_source else {**REFUSED, 310000: UNSIGNED})
