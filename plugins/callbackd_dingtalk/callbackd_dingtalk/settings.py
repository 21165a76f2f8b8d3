"""`[notify.dingtalk]`: the 钉钉 custom robots' addresses and 加签 secrets, and how long to wait for them.

A robot's address carries its access_token (`.../robot/send?access_token=...`) and its 加签 secret (`SEC...`) signs
each request: both are handled as secrets. CALLBACKD_DINGTALK_WEBHOOK and CALLBACKD_DINGTALK_SECRET give the default
robot's from the environment (they win over `webhook` and `secret`); a group's robot may likewise name variables
(`webhook_env`, `secret_env`) instead of writing them into the file. No message, error or listing shows either:
addresses are shown with `access_token=***`.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from callbackd.api import CaFile, NotifierSettings, check_webhook, masked_url

WEBHOOK_VARIABLE = "CALLBACKD_DINGTALK_WEBHOOK"
SECRET_VARIABLE = "CALLBACKD_DINGTALK_SECRET"
TOKEN = "access_token"
SECRET_PARAMETERS = {"access_token", "sign"}
EXAMPLE = "https://oapi.dingtalk.com/robot/send?access_token=..."


class Group(BaseModel):
    """One group's robot: its address and 加签 secret, each written here or named by an environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: str = ""
    webhook_env: str = ""
    secret: str = ""
    secret_env: str = ""

    @model_validator(mode="after")
    def _sources(self) -> Group:
        if bool(self.webhook) == bool(self.webhook_env):
            raise ValueError("give the robot's address as webhook, or the variable holding it as webhook_env")
        if self.secret and self.secret_env:
            raise ValueError("give the 加签 secret as secret or secret_env, not both")
        if self.webhook:
            check_address(self.webhook)
        if self.secret:
            check_secret(self.secret)
        return self

    def robot(self) -> Robot:
        """The address and secret in force ("" for a variable that is not set)."""
        webhook = self.webhook or os.environ.get(self.webhook_env, "").strip()
        secret = self.secret or (os.environ.get(self.secret_env, "").strip() if self.secret_env else "")
        return Robot(webhook=webhook, secret=secret, webhook_source=self.webhook_env or "file",
                     secret_source=self.secret_env or ("file" if self.secret else ""))


class Robot(BaseModel):
    """A robot to post to: its address, its 加签 secret ("" for a robot secured by keywords or IP only), and
    where each came from ("file", or a variable's name)."""

    model_config = ConfigDict(frozen=True)

    webhook: str
    secret: str
    webhook_source: str
    secret_source: str


class DingtalkSettings(NotifierSettings):
    """`[notify.dingtalk]`."""

    section = "dingtalk"

    # the default robot (address ""): https://oapi.dingtalk.com/robot/send?access_token=... and its SEC... secret
    webhook: str = ""
    secret: str = ""
    # a group's name (the address in a route, "dingtalk:窗口一组") -> { webhook, secret } (or webhook_env, secret_env)
    groups: dict[str, Group] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0, le=120)  # seconds to wait for the robot's answer
    ca_file: CaFile = ""  # a PEM bundle to trust instead of the system's (a gateway with its own CA)

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str) -> str:
        return check_address(value.strip()) if value.strip() else ""

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        return check_secret(value.strip()) if value.strip() else ""

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: dict[str, Group]) -> dict[str, Group]:
        if any(not name.strip() for name in value):
            raise ValueError("a group's name must not be empty")
        return value


def check_address(url: str) -> str:
    """`url` if it is a 钉钉 robot's whole address, with its access_token; a `ValueError` (the token and any sign
    masked) otherwise."""
    return check_webhook(url, TOKEN, EXAMPLE, SECRET_PARAMETERS)


def check_secret(secret: str) -> str:
    """`secret` if it is shaped like a 加签 secret (SEC and 64 hex digits as 钉钉 shows it; any SEC... accepted)."""
    if not secret.startswith("SEC") or len(secret) < 10 or any(ch.isspace() for ch in secret):
        raise ValueError("is not a 加签 secret: copy the SEC... text shown under the robot's security settings")
    return secret


def masked(url: str) -> str:
    """`url` with its access_token (and a sign) shown as ***."""
    return masked_url(url, SECRET_PARAMETERS)
