"""Messages to staff through 钉钉 (DingTalk) custom group robots with 加签 security: notifier `dingtalk`.

A custom robot (自定义机器人) is added to a group chat in the 钉钉 client with the security setting 加签; its
address (`https://oapi.dingtalk.com/robot/send?access_token=...`) takes a JSON POST signed with its secret
(`SEC...`). The default robot (route `dingtalk`, address "") is `[notify.dingtalk] webhook` and `secret`, or
CALLBACKD_DINGTALK_WEBHOOK and CALLBACKD_DINGTALK_SECRET; other addresses are group names from
`[notify.dingtalk] groups` (route `dingtalk:窗口一组`). Each message goes as markdown with its title.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from callbackd.api import ConfigError, DeliveryError, Message, Notifier, Settings, hookimpl
from callbackd_dingtalk.settings import (
    SECRET_VARIABLE,
    WEBHOOK_VARIABLE,
    DingtalkSettings,
    Robot,
    check_address,
    check_secret,
)

__all__ = ["DingtalkNotifier", "DingtalkSettings"]


class DingtalkNotifier:
    """钉钉 custom robots: address "" is the default robot, any other a group of `[notify.dingtalk] groups`."""

    name = "dingtalk"

    def deliver(self, address: str, message: Message, settings: Settings) -> None:
        """Post `message`, signed, to the robot `address` names; `DeliveryError` when it did not get through
        (permanent when no robot is configured for it, or the robot refuses it for good: a wrong secret)."""
        from callbackd_dingtalk.robot import send

        config = DingtalkSettings.of(settings)
        send(robot_for(config, address), message, config)

    def configuration(self, settings: Settings) -> dict[str, str]:
        """What is configured, for `callbackd plugins list`: where the default robot's address and secret come
        from and the groups' names, never a value."""
        try:
            config = DingtalkSettings.of(settings)
        except ConfigError as exc:
            return {"settings": f"invalid: {exc}"}
        default = default_robot(config, strict=False)
        shown = {"webhook": described(default.webhook, default.webhook_source),
                 "secret": described(default.secret, default.secret_source)}
        groups = []
        for name, group in config.groups.items():
            robot = group.robot()
            missing = [source for value, source in ((robot.webhook, robot.webhook_source),
                                                    (robot.secret, robot.secret_source)) if source and not value]
            groups.append(f"{name} (not set: {', '.join(missing)})" if missing else name)
        return {**shown, "groups": ", ".join(groups) or "none", "timeout": f"{config.timeout:g}s"}


def described(value: str, source: str) -> str:
    if value:
        return f"configured ({'file' if source == 'file' else 'env'})"
    return "not set"


def default_robot(config: DingtalkSettings, *, strict: bool = True) -> Robot:
    """The default robot: the environment's address and secret, else the file's; checked when `strict`."""
    webhook = os.environ.get(WEBHOOK_VARIABLE, "").strip()
    secret = os.environ.get(SECRET_VARIABLE, "").strip()
    if strict:
        webhook = webhook and checked(webhook, check_address, WEBHOOK_VARIABLE)
        secret = secret and checked(secret, check_secret, SECRET_VARIABLE)
    return Robot(webhook=webhook or config.webhook, secret=secret or config.secret,
                 webhook_source=WEBHOOK_VARIABLE if webhook else "file",
                 secret_source=SECRET_VARIABLE if secret else ("file" if config.secret else ""))


def robot_for(config: DingtalkSettings, address: str) -> Robot:
    """The robot for `address`; `DeliveryError` (permanent) when none is configured for it."""
    if not address:
        robot = default_robot(config)
        if not robot.webhook:
            raise DeliveryError(f"no 钉钉 robot: set [notify.dingtalk] webhook or {WEBHOOK_VARIABLE}",
                                permanent=True)
        return robot
    group = config.groups.get(address)
    if group is None:
        known = ", ".join(config.groups) or "none"
        raise DeliveryError(f"no 钉钉 group {address!r} in [notify.dingtalk] groups (groups: {known})",
                            permanent=True)
    robot = group.robot()
    for value, source, check in ((robot.webhook, robot.webhook_source, check_address),
                                 (robot.secret, robot.secret_source, check_secret)):
        if source and source != "file":
            if not value:
                raise DeliveryError(f"the robot of 钉钉 group {address!r} needs {source}, which is not set",
                                    permanent=True)
            checked(value, check, source)
    return robot


def checked(value: str, check: Callable[[str], str], variable: str) -> str:
    """A value from the environment variable `variable`, checked like the file's."""
    try:
        return check(value)
    except ValueError as exc:
        raise ConfigError(f"{variable}: {exc}") from None


@hookimpl
def register_notifiers(register: Callable[[Notifier], None]) -> None:
    """The `dingtalk` notifier."""
    register(DingtalkNotifier())
