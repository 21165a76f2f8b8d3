"""What plugins see: the hooks, the channel contract and the conversation protocol, the services webhooks call,
settings, the file formats they may add and the events they hear.

A plugin imports `callbackd.api` (this package and its modules) and nothing else of callbackd; `docs/plugins.md`
says what each name is for. An import-linter contract in `pyproject.toml` holds the bundled plugins to it.
"""

from callbackd.api.channels import ENDINGS, FAILURES, KINDS, Channel, InDoubt, LookupResult, StartResult
from callbackd.api.conversation import Choice, Conversation, Question, Scale, SmsReading, Survey
from callbackd.api.events import AnswerEvent, CallbackEvent
from callbackd.api.formats import Exporter, LedgerReader
from callbackd.api.hookspecs import hookimpl
from callbackd.api.settings import ChannelSettings, Settings
from callbackd.api.webhooks import WebhookScope, WebhookServices
from callbackd.core.errors import CallbackdError, ConfigError
from callbackd.core.phones import PhoneError, mask_in, normalise
from callbackd.core.vocabulary import LEVEL_NAMES
from callbackd.store.files import spreadsheet_text, write_atomically

__all__ = [
    "ENDINGS", "FAILURES", "KINDS", "LEVEL_NAMES", "AnswerEvent", "CallbackEvent", "CallbackdError", "Channel",
    "ChannelSettings", "Choice", "ConfigError", "Conversation", "Exporter", "InDoubt", "LedgerReader",
    "LookupResult", "PhoneError",
    "Question", "Scale", "Settings", "SmsReading", "StartResult", "Survey", "WebhookScope", "WebhookServices",
    "hookimpl", "mask_in", "normalise", "spreadsheet_text", "write_atomically",
]
