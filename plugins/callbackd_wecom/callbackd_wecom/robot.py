"""Posting one markdown message to a 企业微信 group robot, and what its answer means.

The robot answers HTTP 200 with `{"errcode": 0, "errmsg": "ok"}` when the message was accepted, or another
errcode: 45009 (more than 20 messages a minute to one robot) and -1 (system busy) pass, so they are tried again;
93000 (no such robot: removed, or its key changed), 40xxx (a bad key or request) and the rest will not pass
however often they are sent. HTTP 5xx, 429 and network errors are tried again; other HTTP 4xx are not.
"""

from __future__ import annotations

from callbackd.api import Message, post_to_robot
from callbackd_wecom.settings import WecomSettings, masked

CONTENT_LIMIT = 4096  # bytes of UTF-8 in markdown.content
RETRYABLE = {-1: "system busy", 45009: "rate limit: at most 20 messages a minute per robot"}
_GONE = "the robot was removed or its key changed: copy its address again"
REFUSED = {93000: _GONE, 40001: _GONE}


def send(url: str, message: Message, config: WecomSettings) -> None:
    """Post `message` as markdown to the robot at `url`; `DeliveryError` when it was not accepted."""
    payload = {"msgtype": "markdown", "markdown": {"content": message.markdown(max_bytes=CONTENT_LIMIT)}}
    post_to_robot("企业微信 robot", url, payload, shown=masked(url), timeout=config.timeout, ca_file=config.ca_file,
                  retryable=RETRYABLE, refused=REFUSED)
