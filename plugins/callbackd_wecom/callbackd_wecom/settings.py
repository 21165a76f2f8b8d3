"""`[notify.wecom]`: the 企业微信 (or 政务微信) group robots' addresses and how long to wait for them.

A robot's address carries its key (`.../cgi-bin/webhook/send?key=...`): whoever holds it can post to the group, so
it is handled as a secret. `CALLBACKD_WECOM_WEBHOOK` gives the default robot from the environment (it wins over
`webhook`); a group's robot may likewise come from a variable (`{ webhook_env = "..." }`) instead of the file. No
message, error or listing shows a key: addresses are shown with `key=***`.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from callbackd.api import CaFile, NotifierSettings, check_webhook, masked_url

WEBHOOK_VARIABLE = "CALLBACKD_WECOM_WEBHOOK"
TOKEN = "key"  # the query parameter that holds the robot's key
EXAMPLE = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."


class Group(BaseModel):
    """One group's robot given as a table: its address, or the environment variable holding it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: str = ""
    webhook_env: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> Group:
        if bool(self.webhook) == bool(self.webhook_env):
            raise ValueError("give the robot's address as webhook, or the variable holding it as webhook_env")
        if self.webhook:
            check_address(self.webhook)
        return self


class WecomSettings(NotifierSettings):
    """`[notify.wecom]`."""

    section = "wecom"

    # the default robot (address ""), https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...
    webhook: str = ""
    # a group's name (the address in a route, "wecom:窗口一组") -> its robot: an address, or a table
    # { webhook = "..." } or { webhook_env = "VARIABLE" }
    groups: dict[str, Group] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0, le=120)  # seconds to wait for the robot's answer
    ca_file: CaFile = ""  # a PEM bundle to trust instead of the system's (a 政务微信 deployment's own CA)

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str) -> str:
        return check_address(value.strip()) if value.strip() else ""

    @field_validator("groups", mode="before")
    @classmethod
    def _groups(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        if any(not str(name).strip() for name in value):
            raise ValueError("a group's name must not be empty")
        # a group given as its address alone is the table { webhook = address }
        return {name: {"webhook": robot} if isinstance(robot, str) else robot for name, robot in value.items()}


def check_address(url: str) -> str:
    """`url` if it is a 企业微信 robot's whole address, with its `key`; a `ValueError` (the key masked) otherwise."""
    return check_webhook(url, TOKEN, EXAMPLE)


def masked(url: str) -> str:
    """`url` with its key shown as ***."""
    return masked_url(url, {TOKEN})


def group_robot(robot: Group) -> tuple[str, str]:
    """A group's robot as (address, where it comes from); the address is "" when its variable is not set."""
    if robot.webhook:
        return robot.webhook, "file"
    return os.environ.get(robot.webhook_env, "").strip(), robot.webhook_env
