"""Messages to staff through 企业微信 (WeCom, or its government edition 政务微信) group robots: notifier `wecom`.

A group robot (群机器人) is added to a group chat in the 企业微信 client; its address
(`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`, or the same path on a 政务微信 deployment's own host)
takes a JSON POST. The default robot (route `wecom`, address "") is `[notify.wecom] webhook` or
CALLBACKD_WECOM_WEBHOOK; other addresses are group names from `[notify.wecom] groups` (route `wecom:窗口一组`),
for the window heads' groups. Each message goes as markdown (`message.markdown()`), cut to the robot's 4,096 bytes
with its title and link kept.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from callbackd.api import ConfigError, DeliveryError, Message, Notifier, Settings, hookimpl
from callbackd_wecom.settings import WEBHOOK_VARIABLE, WecomSettings, check_address, group_robot

__all__ = ["WecomNotifier", "WecomSettings"]


class WecomNotifier:
    """企业微信 group robots: address "" is the default robot, any other a group of `[notify.wecom] groups`."""

    name = "wecom"

    def deliver(self, address: str, message: Message, settings: Settings) -> None:
        """Post `message` to the robot `address` names; `DeliveryError` when it did not get through (permanent
        when no robot is configured for it, or the robot refuses it for good)."""
        from callbackd_wecom.robot import send

        config = WecomSettings.of(settings)
        send(robot_address(config, address), message, config)

    def configuration(self, settings: Settings) -> dict[str, str]:
        """What is configured, for `callbackd plugins list`: where the default robot comes from and the groups'
        names, never an address (it holds the key)."""
        try:
            config = WecomSettings.of(settings)
        except ConfigError as exc:
            return {"settings": f"invalid: {exc}"}
        if os.environ.get(WEBHOOK_VARIABLE, "").strip():
            webhook = "configured (env)"
        else:
            webhook = "configured (file)" if config.webhook else "not set"
        groups = []
        for name, robot in config.groups.items():
            url, source = group_robot(robot)
            groups.append(name if url else f"{name} (not set: {source})")
        return {"webhook": webhook, "groups": ", ".join(groups) or "none", "timeout": f"{config.timeout:g}s"}


def robot_address(config: WecomSettings, address: str) -> str:
    """The robot's address for `address`; `DeliveryError` (permanent) when none is configured for it."""
    if not address:
        from_environment = os.environ.get(WEBHOOK_VARIABLE, "").strip()
        if from_environment:
            return checked(from_environment, WEBHOOK_VARIABLE)
        if config.webhook:
            return config.webhook
        raise DeliveryError(f"no 企业微信 robot: set [notify.wecom] webhook or {WEBHOOK_VARIABLE}", permanent=True)
    robot = config.groups.get(address)
    if robot is None:
        known = ", ".join(config.groups) or "none"
        raise DeliveryError(f"no 企业微信 group {address!r} in [notify.wecom] groups (groups: {known})",
                            permanent=True)
    url, source = group_robot(robot)
    if not url:
        raise DeliveryError(f"the robot of 企业微信 group {address!r} comes from {source}, which is not set",
                            permanent=True)
    return checked(url, source) if source != "file" else url


def checked(url: str, variable: str) -> str:
    """A robot's address from the environment variable `variable`, checked like the file's."""
    try:
        return check_address(url)
    except ValueError as exc:
        raise ConfigError(f"{variable}: {exc}") from None


@hookimpl
def register_notifiers(register: Callable[[Notifier], None]) -> None:
    """The `wecom` notifier."""
    register(WecomNotifier())

