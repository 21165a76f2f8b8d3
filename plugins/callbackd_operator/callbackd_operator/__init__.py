"""The operator channel: callbacks placed by staff from a call sheet, their results entered afterwards.

`start` hands the attempt to the operators: it stays in progress until `callbackd results import FILE
--source operator` records what the applicant said. The call sheet (`callbackd callsheet`) is the one view
with full phone numbers; writing one is recorded in the audit trail. Its answer columns are the operator
result file's columns, so a filled-in sheet imports as it is.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callbackd.api import (
    Channel,
    Conversation,
    Exporter,
    StartResult,
    hookimpl,
    print_setup,
    spreadsheet_text,
    write_atomically,
)


class OperatorChannel:
    """Staff call the applicant; results come back through the operator result file."""

    name = "operator"
    kind = "operator"

    def start(self, conversation: Conversation) -> StartResult:
        return StartResult.placed(f"OP-{conversation.attempt_id}")


def write_callsheet_xlsx(sheet: dict[str, Any], path: Path, _context: Any) -> None:
    """The call sheet as a workbook: one row per callback, the script beside it, answer columns to fill."""
    # here, not at the top: openpyxl is slow to import, and every command loads this plugin
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    def write(target: Path) -> None:
        book = Workbook()
        ws = book.active
        ws.title = "回访清单"
        ws.append([sheet["title"]])
        ws["A1"].font = Font(bold=True, size=14)
        ws.append(sheet["header"])
        for cell in ws[2]:
            cell.font = Font(bold=True)
        for row in sheet["rows"]:
            ws.append([spreadsheet_text(cell) for cell in row])
        for index, column in enumerate(sheet["header"], start=1):
            width = 60 if column == "回访话术" else max(10, len(column) * 2 + 4)
            ws.column_dimensions[get_column_letter(index)].width = width
        script_column = sheet["header"].index("回访话术") + 1
        for row in ws.iter_rows(min_row=3, min_col=script_column, max_col=script_column):
            row[0].alignment = Alignment(wrap_text=True, vertical="top")
        ws.freeze_panes = "A3"
        print_setup(ws, header_rows=(2, 2), heading=sheet["title"])
        book.save(target)

    write_atomically(path, write, private=True)  # applicants' names and numbers


def write_callsheet_csv(sheet: dict[str, Any], path: Path, _context: Any) -> None:
    """The call sheet as UTF-8 CSV with a BOM, so spreadsheet programs read the Chinese correctly."""

    def write(target: Path) -> None:
        with target.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(sheet["header"])
            writer.writerows([spreadsheet_text(cell) for cell in row] for row in sheet["rows"])

    write_atomically(path, write, private=True)  # applicants' names and numbers


@hookimpl
def register_channels(register: Callable[[Channel], None]) -> None:
    """The `operator` channel."""
    register(OperatorChannel())


@hookimpl
def register_exporters(register: Callable[[Exporter], None]) -> None:
    """Call sheets for operators, as xlsx and csv."""
    register(Exporter("callsheet-xlsx", "callsheet", ".xlsx", "回访清单 (operators' call sheet)",
                      write_callsheet_xlsx))
    register(Exporter("callsheet-csv", "callsheet", ".csv", "回访清单 (operators' call sheet)",
                      write_callsheet_csv))
