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
from callbackd.api.settings import ChannelSettings, Settings
from callbackd.api.webhooks import WebhookScope, WebhookServices, path_token, same_token
from callbackd.core.errors import CallbackdError, ConfigError
from callbackd.core.phones import PhoneError, mask_in, normalise
from callbackd.core.vocabulary import LEVEL_NAMES
from callbackd.store.files import spreadsheet_text, write_atomically

__all__ = [
    "ENDINGS", "FAILURES", "FORMS", "KINDS", "LEVEL_NAMES", "AnswerEvent", "CallbackEvent", "CallbackdError", "Channel",
    "ChannelSettings", "Choice", "ConfigError", "Conversation", "Exporter", "InDoubt", "LedgerReader",
    "LookupResult", "NumberLimit", "PhoneError",
    "Question", "Scale", "Settings", "SmsReading", "StartResult", "Survey", "WebhookScope", "WebhookServices",
    "hookimpl", "mask_in", "normalise", "path_token", "same_token", "spreadsheet_text", "write_atomically",
]
