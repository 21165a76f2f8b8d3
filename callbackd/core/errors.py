"""Errors a user can cause. Each message says what to fix; the CLI prints it as one line and exits 1."""


class CallbackdError(Exception):
    """Base of every error that is the user's to fix, not a bug."""


class ConfigError(CallbackdError):
    """The settings file or environment is wrong."""


class DatabaseError(CallbackdError):
    """The database is missing, unreachable or behind the code's schema."""


class LedgerFileError(CallbackdError):
    """A ledger or result file cannot be read at all (missing, wrong format, required header missing)."""


class StrictImportError(CallbackdError):
    """`--strict` refused a file that has bad rows; `report` says which."""

    def __init__(self, message: str, report: object) -> None:
        super().__init__(message)
        self.report = report


class RoundError(CallbackdError):
    """A round cannot be opened, shown or verified as asked."""


class CalendarError(CallbackdError):
    """The working-day calendar cannot answer (a malformed holidays file)."""


class NotFoundError(CallbackdError):
    """A named window, round, case or callback does not exist."""
