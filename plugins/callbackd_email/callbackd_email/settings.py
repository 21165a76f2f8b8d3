"""`[notify.email]`: the SMTP server messages go through and the address they come from.

Credentials are never settings: CALLBACKD_SMTP_USER and CALLBACKD_SMTP_PASSWORD come from the environment only, and
callbackd logs in only when both are set.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.utils import parseaddr

from pydantic import ConfigDict, Field, field_validator

from callbackd.api import CaFile, NotifierSettings

USER_VARIABLE, PASSWORD_VARIABLE = "CALLBACKD_SMTP_USER", "CALLBACKD_SMTP_PASSWORD"
# an address as people write one: no spaces, quotes, brackets or separators; one @; a dotted domain
ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"\\]{1,64}@[^@\s<>()\[\],;:\"\\]+\.[^@\s<>()\[\],;:\"\\.]{2,}$")


class EmailSettings(NotifierSettings):
    """`[notify.email]`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    section = "email"

    host: str = ""  # the SMTP server (the organisation's relay); required to send
    port: int = Field(default=0, ge=0, le=65535)  # 0: 25, or 465 with ssl
    starttls: bool = True  # upgrade a plain connection with STARTTLS before sending (refused if not offered)
    ssl: bool = False  # implicit TLS from the first byte (SMTPS, port 465); starttls is then not used
    sender: str = Field(default="", alias="from")  # the From address, "name <address>" or "address"; required
    timeout: float = Field(default=30.0, gt=0, le=300)  # seconds for connecting and for each SMTP reply
    ca_file: CaFile = ""  # a PEM bundle to trust instead of the system's (a relay with the organisation's own CA)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if any(ch.isspace() or ch in "/@" for ch in value):
            raise ValueError("must be a host name or address, without a scheme, user or path")
        if value.count(":") == 1:  # one colon is host:port; an IPv6 address has several
            raise ValueError("must be a host name or address alone: give the port as `port`")
        return value

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        value = value.strip()
        if value:
            sender_address(value)
        return value

    @property
    def server_port(self) -> int:
        """The port in force: `port`, else 465 with implicit TLS and 25 without."""
        return self.port or (465 if self.ssl else 25)


def sender_address(text: str) -> Address:
    """`text` ("滨江区政务服务中心 <notice@example.gov.cn>" or an address alone) as a From address; a `ValueError`
    saying what is wrong otherwise."""
    name, address = parseaddr(text)
    if not valid_address(address):
        raise ValueError(f"{text!r} is not an address such as 回访系统 <notice@example.gov.cn>")
    user, domain = address.rsplit("@", 1)
    return Address(display_name=name, username=user, domain=domain)


def valid_address(address: str) -> bool:
    """Whether `address` is shaped like an email address (name@example.gov.cn)."""
    return bool(ADDRESS.match(address)) and len(address) <= 254
