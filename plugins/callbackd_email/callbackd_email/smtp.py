"""Sending one message over SMTP (the standard library's smtplib), and what the server's replies mean.

A 5xx reply (a refused recipient, sender or message, a refused login) will not change however often the message is
sent, so it is permanent; a 4xx reply (a full mailbox, greylisting, a server busy) and a network error are tried
again. TLS is required unless the settings turn it off: STARTTLS on a plain connection (refused, permanently, when
the server does not offer it) or TLS from the first byte (`ssl`); the server's certificate is verified against the
system's CAs or `ca_file`. A password is never sent over a connection without TLS, except to this machine.
"""

from __future__ import annotations

import ipaddress
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from callbackd.api import DeliveryError, Message
from callbackd_email.settings import (
    PASSWORD_VARIABLE,
    USER_VARIABLE,
    EmailSettings,
    sender_address,
    valid_address,
)


def send(address: str, message: Message, config: EmailSettings) -> None:
    """Send `message` to `address` through the configured server; `DeliveryError` when it was not accepted."""
    if not config.host:
        raise DeliveryError("no SMTP server: set [notify.email] host", permanent=True)
    if not config.sender:
        raise DeliveryError("no sender: set [notify.email] from", permanent=True)
    if not valid_address(address):
        raise DeliveryError(f"{address!r} is not an email address (name@example.gov.cn)", permanent=True)
    mail = compose(address, message, config)
    where = f"SMTP server {config.host}:{config.server_port}"
    context = ssl.create_default_context(cafile=config.ca_file or None)
    try:
        transact(mail, address, config, context, where)
    except DeliveryError:
        raise
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = exc.recipients.get(address, (550, b""))
        raise refused(f"{where} refused the recipient {address}", code, reply) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise refused(f"{where} refused the login of {USER_VARIABLE}/{PASSWORD_VARIABLE}", exc.smtp_code,
                      exc.smtp_error) from None
    except smtplib.SMTPResponseException as exc:  # the sender or the message refused, a greeting refusing us
        raise refused(f"{where} answered", exc.smtp_code, exc.smtp_error) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"{where}: {exc}", permanent=True) from None
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryError(f"{where}: its certificate is not trusted ({exc.verify_message}); if it is the "
                            f"organisation's own CA, name its PEM file as [notify.email] ca_file",
                            permanent=True) from None
    except ssl.SSLError as exc:
        raise DeliveryError(f"{where}: TLS failed ({exc.reason or exc}); check [notify.email] ssl (TLS from the "
                            f"first byte, port 465) against starttls (port 25 or 587)", permanent=True) from None
    except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timed out, disconnected: may pass later
        raise DeliveryError(f"{where} unreachable: {type(exc).__name__}: {exc}", permanent=False) from None


def transact(mail: EmailMessage, address: str, config: EmailSettings, context: ssl.SSLContext, where: str) -> None:
    """Connect, secure the connection, log in when credentials are set, and send."""
    credentials = login()
    port = config.server_port
    smtp = (smtplib.SMTP_SSL(config.host, port, timeout=config.timeout, context=context) if config.ssl
            else smtplib.SMTP(config.host, port, timeout=config.timeout))
    with smtp:
        smtp.ehlo()
        secure = config.ssl
        if not config.ssl and config.starttls:
            if not smtp.has_extn("starttls"):
                raise DeliveryError(f"{where} offers no STARTTLS: set [notify.email] starttls = false (only on a "
                                    f"network you trust), or ssl = true for a server that speaks TLS from the start",
                                    permanent=True)
            smtp.starttls(context=context)
            smtp.ehlo()
            secure = True
        if credentials:
            if not secure and not is_loopback(config.host):
                raise DeliveryError(f"{where}: {USER_VARIABLE}/{PASSWORD_VARIABLE} are set but the connection has "
                                    f"no TLS; set [notify.email] starttls or ssl, or unset them for a relay that "
                                    f"needs no login", permanent=True)
            smtp.login(*credentials)
        smtp.send_message(mail, to_addrs=[address])


def compose(address: str, message: Message, config: EmailSettings) -> EmailMessage:
    """The email: the message's title as subject (UTF-8), its text as body."""
    sender = sender_address(config.sender)
    mail = EmailMessage()
    mail["Subject"] = " ".join(message.title.split())  # a header holds no line break
    mail["From"] = sender
    mail["To"] = address
    mail["Date"] = formatdate(localtime=True)
    mail["Message-ID"] = make_msgid(domain=sender.domain)
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    mail.set_content(message.text(), charset="utf-8")
    return mail


def login() -> tuple[str, str] | None:
    """The SMTP login from the environment, when both variables are set."""
    user, password = os.environ.get(USER_VARIABLE, ""), os.environ.get(PASSWORD_VARIABLE, "")
    return (user, password) if user and password else None


def refused(what: str, code: int, reply: bytes | str) -> DeliveryError:
    """A refusal by SMTP reply `code`: 5xx is permanent, anything else may pass later."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return DeliveryError(f"{what}: {code} {' '.join(text.split())[:200]}", permanent=500 <= code < 600)


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
