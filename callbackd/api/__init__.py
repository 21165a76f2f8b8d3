"""What plugins see: the hooks, the channel contract and the conversation protocol, the services webhooks call,
settings, the file formats they may add and the events they hear.

A plugin imports `callbackd.api` (this package and its modules) and nothing else of callbackd; `docs/plugins.md`
says what each name is for. An import-linter contract in `pyproject.toml` holds the bundled plugins to it.
"""

from callbackd.api.channels import (
    ENDINGS,
    FAILURES,
    FORMS,
    KINDS,
    Channel,
    InDoubt,
    LookupResult,
    NumberLimit,
    StartResult,
)
from callbackd.api.conversation import Choice, Conversation, Question, Scale, SmsReading, Survey
from callbackd.api.events import AnswerEvent, CallbackEvent
from callbackd.api.formats import Exporter, LedgerReader
from callbackd.api.hookspecs import hookimpl
from callbackd.api.notifications import (
    EVENTS,
    CaFile,
    DeliveryError,
    Message,
    Notification,
    Notifier,
    NotifierSettings,
    check_webhook,
    is_loopback,
    masked_url,
    post_to_robot,
)
from callbackd.api.settings import ChannelSettings, Settings
from callbackd.api.webhooks import WebhookScope, WebhookServices, path_token, same_token
from callbackd.core.errors import CallbackdError, ConfigError
from callbackd.core.phones import PhoneError, mask_in, normalise
from callbackd.core.vocabulary import LEVEL_NAMES
from callbackd.store.files import spreadsheet_text, write_atomically
from callbackd.store.printing import print_setup

__all__ = [
    "ENDINGS", "EVENTS", "FAILURES", "FORMS", "KINDS", "LEVEL_NAMES", "AnswerEvent", "CaFile", "CallbackEvent",
    "CallbackdError", "Channel", "ChannelSettings", "DeliveryError", "Choice", "ConfigError", "Conversation",
    "Exporter", "InDoubt", "LedgerReader",
    "LookupResult", "Message", "Notification", "Notifier", "NotifierSettings", "NumberLimit", "PhoneError",
    "Question", "Scale", "Settings", "SmsReading", "StartResult", "Survey", "WebhookScope", "WebhookServices",
    "check_webhook", "hookimpl", "is_loopback", "mask_in", "masked_url", "normalise", "path_token", "post_to_robot",
    "print_setup", "same_token", "spreadsheet_text", "write_atomically",
]
