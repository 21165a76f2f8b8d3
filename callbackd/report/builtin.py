"""Built-in behaviour, registered as an ordinary plugin: the ranking export formats.

Marked `trylast` so that a plugin registering the same format name replaces the built-in one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from callbackd.api.formats import Exporter
from callbackd.api.hookspecs import hookimpl
from callbackd.measure.scoring import Ranking
from callbackd.report.exports import ExportContext, write_csv, write_html, write_json


@hookimpl(trylast=True)
def register_exporters(register: Callable[[Exporter], None]) -> None:
    """The xlsx, csv, html and json rankings."""
    for exporter in BUILTIN_EXPORTERS:
        register(exporter)


def write_xlsx(ranking: Ranking, path: Path, context: ExportContext) -> None:
    """A workbook with the ranking sheet 排名 (title, method, table, bar chart) and the per-question sheet 分项; see
    `callbackd.report.workbook`, which loads openpyxl only when a workbook is written."""
    from callbackd.report.workbook import write_ranking

    write_ranking(ranking, path, context)


BUILTIN_EXPORTERS: tuple[Exporter, ...] = (
    Exporter(
        "xlsx", "ranking", ".xlsx", "Excel workbook: ranking sheet with bar chart, per-question sheet", write_xlsx
    ),
    Exporter("csv", "ranking", ".csv", "ranking table, UTF-8 with BOM for Excel", write_csv),
    Exporter(
        "html", "ranking", ".html", "printable notice (通报), one self-contained page with a bar chart", write_html
    ),
    Exporter("json", "ranking", ".json", "the ranking as JSON", write_json),
)
