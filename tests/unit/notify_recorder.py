"""A notifier plugin for the tests: `recorder` writes each message it delivers as a line of JSON to the file
NOTIFY_RECORDER_FILE names, and the `notify` hook's notifications to NOTIFY_RECORDER_FILE + ".hook".

NOTIFY_RECORDER_FAIL makes it fail: "retry" (every delivery, retryable), "permanent", or "retry:N" (the first N
deliveries of this process). NOTIFY_RECORDER_SLEEP makes each delivery wait that many seconds before it records
(a deliverer killed meanwhile has sent nothing). Loaded with CALLBACKD_LOAD_PLUGINS=tests.unit.notify_recorder.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from callbackd.api import DeliveryError, Message, Notification, Settings, hookimpl

_failed = 0


class Recorder:
    name = "recorder"

    def deliver(self, address: str, message: Message, settings: Settings) -> None:
        global _failed
        fail = os.environ.get("NOTIFY_RECORDER_FAIL", "")
        if fail == "permanent":
            raise DeliveryError("the recorder refuses this address", permanent=True)
        if fail == "retry" or (fail.startswith("retry:") and _failed < int(fail.split(":")[1])):
            _failed += 1
            raise DeliveryError("the recorder is busy (HTTP 503)")
        time.sleep(float(os.environ.get("NOTIFY_RECORDER_SLEEP", "0")))
        _write(os.environ["NOTIFY_RECORDER_FILE"], {"address": address, "title": message.title,
                                                      "lines": list(message.lines), "link": message.link,
                                                      "text": message.text()})


def _write(path: str, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")


@hookimpl
def register_notifiers(register: Any) -> None:
    register(Recorder())


@hookimpl
def notify(notification: Notification) -> None:
    _write(os.environ["NOTIFY_RECORDER_FILE"] + ".hook", {
        "id": notification.id, "event": notification.event, "title": notification.message.title,
        "window": notification.window, "recipients": list(notification.recipients)})


def received(path: str) -> list[dict[str, Any]]:
    """What the recorder delivered so far."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
