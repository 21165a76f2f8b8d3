"""What plugins see: the hooks, the channel contract, the file formats they may add and the events they hear.

A plugin imports `callbackd.api` and nothing else of callbackd (`docs/plugins.md`).
"""

from callbackd.api.channels import FAILURES, KINDS, Channel, StartResult
from callbackd.api.events import AnswerEvent, CallbackEvent
from callbackd.api.formats import Exporter, LedgerReader
from callbackd.api.hookspecs import hookimpl
from callbackd.store.files import write_atomically

__all__ = [
    "FAILURES", "KINDS", "AnswerEvent", "CallbackEvent", "Channel", "Exporter", "LedgerReader", "StartResult",
    "hookimpl", "write_atomically",
]
