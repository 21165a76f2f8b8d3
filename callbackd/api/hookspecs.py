"""Every callbackd hook, in one module. Plugins implement them with `@hookimpl`; `manager.py` loads them and calls
them through pluggy (`manager.hook.<name>`).

Registration hooks receive a `register` callable owned by a typed registry; calling it twice with the same
name is a start-up error naming both plugins. Event hooks receive plain values, never database rows: a plugin
never touches tables, it calls the core services it is handed (`callbackd.api.webhooks.WebhookServices`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from callbackd.api.channels import Channel
    from callbackd.api.events import AnswerEvent, CallbackEvent
    from callbackd.api.formats import Exporter, LedgerReader
    from callbackd.api.notifications import Notification, Notifier
    from callbackd.api.webhooks import WebhookServices

PROJECT = "callbackd"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---- registration --------------------------------------------------------------------------------------


@hookspec
def register_channels(register: Callable[[Channel], None]) -> None:
    """Offer channels: call `register(channel)` once for each `callbackd.api.channels.Channel`.

    :param register: adds one channel; a name another plugin already registered is a start-up error.
    """


@hookspec
def register_routes(router: Any, services: WebhookServices) -> None:
    """Add HTTP routes (webhooks) to `router`, a `fastapi.APIRouter` the web app mounts under `/hooks/<plugin>/`.

    Handlers call the core through `services`; the plugin that speaks a provider's protocol owns its webhooks.

    :param router: the plugin's own router (each plugin gets its own).
    :param services: the core services its handlers may call: settings, one unit of work per delivery (receipts,
        conversations, opt-outs), the opt-out words and the survey in force.
    """


@hookspec
def register_ledger_readers(register: Callable[[LedgerReader], None]) -> None:
    """Offer readers for more ledger file formats: call `register(reader)` for each `LedgerReader`.

    :param register: adds one reader, keyed by the file suffixes it reads.
    """


@hookspec
def register_exporters(register: Callable[[Exporter], None]) -> None:
    """Offer output formats: call `register(exporter)` for each `callbackd.api.formats.Exporter`.

    Built-in formats are registered by an ordinary plugin marked `trylast`, so a plugin may replace one by
    registering the same name first.

    :param register: adds one exporter; a duplicate name is a start-up error.
    """


@hookspec
def register_notifiers(register: Callable[[Notifier], None]) -> None:
    """Offer notifiers, which deliver messages to staff: call `register(notifier)` for each
    `callbackd.api.notifications.Notifier` (企业微信 and 钉钉 group robots, email).

    :param register: adds one notifier, keyed by its `name` (the first part of a route such as "wecom:窗口一组");
        a name another plugin already registered is a start-up error.
    """


# ---- events --------------------------------------------------------------------------------------------


@hookspec
def answer_recorded(answer: AnswerEvent) -> None:
    """Called once an answer recorded for a contact has been committed (never for a rolled-back one).

    :param answer: what was answered, by which source and window; no phone number.
    """


@hookspec
def callback_closed(callback: CallbackEvent) -> None:
    """Called once a callback's final state (completed, partial, unreachable, refused, opted_out, invalid) has been
    committed.

    :param callback: the callback's id, window, case, final state and reason; no phone number.
    """


@hookspec
def notify(notification: Notification) -> None:
    """Called once a notification written to the outbox has been committed (a rectification opened, due tomorrow,
    overdue or escalated, a round below its completion target, an indicator alert, a failed import or job), before
    the notifiers deliver it.

    :param notification: the event, its message (never an applicant's name or number, nor a confidential case)
        and the routes it goes to.
    """
