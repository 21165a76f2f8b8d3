"""The outbox: notifications to staff, written in the transaction that caused them, delivered afterwards.

`post` writes a notification and one delivery per route of the people it is for, inside the caller's transaction:
a rolled-back import or a crash before the commit notifies nobody, and a committed one is delivered however long
after (`callbackd.notify.delivery`). A notification's `key` names its event once (a rectification's overdue notice,
once per due date): posting the same key again changes nothing.

Who it is for is decided here, when it is written: the accounts of the roles addressed (enabled ones; a window
head only for their own windows) by their own routes, and the routes `[notify] roles` gives each role. Routes are
`notifier[:address]`: "wecom" (the robot's own group), "dingtalk:窗口一组", "email:li@example.gov.cn". Two people on
one route (a group robot) get one message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callbackd.core.settings import Settings
from callbackd.store.models import Notification, NotificationDelivery, User, UserWindow

AUDIENCES = ("window", "supervisor", "leader", "admin")


@dataclass(frozen=True)
class Post:
    """A notification to write: its event (`callbackd.api.notifications.EVENTS`), its once-only key, the window it
    concerns, who it is for (roles; "window" means that window's heads), the message's title and lines, and the
    console page it concerns."""

    event: str
    key: str
    title: str
    lines: tuple[str, ...] = ()
    audience: tuple[str, ...] = ("supervisor",)
    window_id: int | None = None
    path: str = ""
    extra_routes: tuple[str, ...] = field(default_factory=tuple)


def post(session: Session, settings: Settings, what: Post, now: datetime) -> Notification | None:
    """Write `what` and its deliveries in the session's transaction; None when its key was posted before."""
    if session.scalar(select(Notification.id).where(Notification.key == what.key)) is not None:
        return None
    routes = routes_for(session, settings, what.audience, what.window_id) + list(what.extra_routes)
    digest = settings.notify.delivery == "digest" and what.event not in settings.notify.immediate
    try:
        with session.begin_nested():  # another process posting the same key at the same moment: one of them wins
            notification = Notification(
                event=what.event, key=what.key[:200], window_id=what.window_id, title=what.title[:200],
                lines=list(what.lines), path=what.path, created_at=now,
            )
            session.add(notification)
            session.flush()
            session.add_all(
                NotificationDelivery(notification_id=notification.id, route=route, status="pending", digest=digest,
                                     tries=0, due_at=now, error="")
                for route in dict.fromkeys(routes)
            )
            session.flush()
    except IntegrityError:
        return None
    return notification


def routes_for(session: Session, settings: Settings, audience: Iterable[str], window_id: int | None) -> list[str]:
    """The routes of everyone in `audience`: accounts' own routes, then `[notify] roles`, each route once."""
    routes: list[str] = []
    wanted = [role for role in audience if role in AUDIENCES]
    for role in wanted:
        query = select(User.notify_routes).where(User.role == role, User.disabled.is_(False)).order_by(User.id)
        if role == "window":
            if window_id is None:
                continue
            query = query.join(UserWindow, UserWindow.user_id == User.id).where(UserWindow.window_id == window_id)
        for own in session.scalars(query):
            routes.extend(own or [])
        routes.extend(settings.notify.roles.get(role, []))
    return list(dict.fromkeys(routes))


def set_routes(session: Session, user: User, routes: list[str]) -> None:
    """Replace an account's routes (already checked by `callbackd.core.settings.check_route`)."""
    user.notify_routes = list(dict.fromkeys(routes))
