"""`callbackd notify`: deliver what the outbox holds; `callbackd users notify`: where an account's notifications go.
Thin adapters over `callbackd.notify` and `callbackd.store.outbox`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from callbackd.app.cli.accounts import users_app
from callbackd.app.cli.common import JsonFlag, app, emit_json, err, out, session_scope
from callbackd.core.errors import CallbackdError

if TYPE_CHECKING:
    from callbackd.api.manager import Plugins
    from callbackd.core.settings import Settings
    from callbackd.notify.delivery import Report


@app.command("notify")
def notify(
    once: Annotated[bool, typer.Option("--once", help="Deliver what is due now, then stop.")] = False,
    test: Annotated[
        str | None, typer.Option("--test", metavar="ROUTE", help="Send a test message to ROUTE (wecom, "
                                 "dingtalk:窗口一组, email:li@example.gov.cn) and say whether it got through.")
    ] = None,
    every: Annotated[float, typer.Option("--every", help="Seconds between runs without --once.")] = 60.0,
    as_json: JsonFlag = False,
) -> None:
    """Deliver the notifications the outbox holds (企业微信, 钉钉, email): rectifications opened, due tomorrow,
    overdue or escalated, rounds below their completion target, indicator alerts, failed jobs. The workers' tick
    does the same; without --once this runs until interrupted."""
    from callbackd.api.manager import load_plugins
    from callbackd.core import clock
    from callbackd.core.settings import load_settings
    from callbackd.notify import delivery
    from callbackd.store.db import Database

    settings = load_settings()
    plugins = load_plugins()
    if test is not None:
        _send_test(settings, plugins, test, as_json)
        return
    database = Database(settings.database_url)
    try:
        database.ensure_schema()
        while True:
            report = delivery.run_once(database, settings, plugins, clock.now())
            if once:
                break
            if report.sent or report.failed or report.retried:
                out.print(_summary(report))
            try:
                time.sleep(every)
            except KeyboardInterrupt:
                return
    finally:
        database.dispose()
    if as_json:
        emit_json(report.as_dict())
    else:
        out.print(_summary(report))
    for error in report.errors:
        err.print(f"warning: {error}")


def _summary(report: Report) -> str:
    r = report.as_dict()
    return (f"notifications written {r['posted']}, sent {r['sent']}, to try again {r['retried']}, "
            f"failed {r['failed']}")


def _send_test(settings: Settings, plugins: Plugins, route: str, as_json: bool) -> None:
    from callbackd.api.manager import PluginError
    from callbackd.api.notifications import DeliveryError, Message
    from callbackd.core.settings import check_route

    try:
        check_route(route)
    except ValueError as exc:
        raise CallbackdError(str(exc)) from None
    kind, _, address = route.partition(":")
    message = Message(title="【测试】回访系统通知测试", lines=("收到此消息说明通知已配置成功。",))
    try:
        plugins.notifier(kind).deliver(address, message, settings)
    except PluginError as exc:
        raise CallbackdError(str(exc)) from None
    except DeliveryError as exc:
        raise CallbackdError(f"{route}: {exc.reason}" + ("" if exc.permanent else " (may work if tried again)")) \
            from None
    if as_json:
        emit_json({"route": route, "sent": True})
    else:
        out.print(f"sent a test message to {route}")


@users_app.command("notify")
def users_notify(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    route: Annotated[
        list[str] | None, typer.Option("--route", help="Where this account's notifications go (repeat for more): "
                                       "email:li@example.gov.cn, wecom, wecom:窗口一组, dingtalk:窗口一组.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Send this account nothing.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Set where an account's notifications go (replacing its routes). A window head hears of their windows'
    rectifications; supervisors of deadlines, escalations, rounds, alerts and failed jobs; leaders of
    escalations; administrators of failed jobs."""
    from callbackd.core.settings import check_route
    from callbackd.store import audit, outbox
    from callbackd.store.accounts import find_user

    routes = list(route or [])
    if not routes and not clear:
        raise CallbackdError("give --route (repeatable) or --clear")
    for each in routes:
        try:
            check_route(each)
        except ValueError as exc:
            raise CallbackdError(str(exc)) from None
    with session_scope() as (_, session):
        user = find_user(session, name)
        outbox.set_routes(session, user, routes)
        audit.record(session, "user.notify", user.name, routes=routes)
        saved = list(user.notify_routes)
    if as_json:
        emit_json({"name": name, "routes": saved})
    else:
        out.print(f"{name}: " + ("、".join(saved) if saved else "no notifications"))
