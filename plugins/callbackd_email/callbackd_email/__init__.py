"""Messages to staff by email over SMTP: notifier `email`.

The address of a route is the recipient (`email:li@example.gov.cn`). Each message goes through the server of
`[notify.email]` (the organisation's relay) with the message's title as its UTF-8 subject and its text as body,
from `[notify.email] from`. The login comes from the environment only (CALLBACKD_SMTP_USER and
CALLBACKD_SMTP_PASSWORD, used when both are set).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from callbackd.api import ConfigError, Message, Notifier, Settings, hookimpl
from callbackd_email.settings import PASSWORD_VARIABLE, USER_VARIABLE, EmailSettings

__all__ = ["EmailNotifier", "EmailSettings"]


class EmailNotifier:
    """Email through one SMTP server; an address is the recipient's email address."""

    name = "email"

    def deliver(self, address: str, message: Message, settings: Settings) -> None:
        """Send `message` to the email address `address`; `DeliveryError` when the server did not accept it
        (permanent for a malformed or refused address, missing settings, a server without STARTTLS)."""
        from callbackd_email.smtp import send

        send(address.strip(), message, EmailSettings.of(settings))

    def configuration(self, settings: Settings) -> dict[str, str]:
        """What is configured, for `callbackd plugins list`: the server and how it is secured, whether a sender
        and a login are set, never the login's values."""
        try:
            config = EmailSettings.of(settings)
        except ConfigError as exc:
            return {"settings": f"invalid: {exc}"}
        security = "TLS" if config.ssl else ("STARTTLS" if config.starttls else "no TLS")
        user, password = os.environ.get(USER_VARIABLE), os.environ.get(PASSWORD_VARIABLE)
        login = "configured (env)" if user and password else ("incomplete (env)" if user or password else "none")
        return {
            "server": f"{config.host}:{config.server_port} ({security})" if config.host else "not set",
            "from": "configured" if config.sender else "not set",
            "login": login,
            "timeout": f"{config.timeout:g}s",
        }


@hookimpl
def register_notifiers(register: Callable[[Notifier], None]) -> None:
    """The `email` notifier."""
    register(EmailNotifier())
