"""How every worksheet callbackd writes prints: as the html notice does, on A4 landscape, fitted to the page's width
(as many pages down as needed), the table's header row repeated on each page, narrow margins, centred, the sheet's
title above and the page number below. A chart goes on a page of its own after the table, sized to one page, so
it is never cut in two.

One set-up for the ranking workbook (`callbackd.report.workbook`) and plugins' sheets alike (`callbackd.api`
re-exports `print_setup`; the operators' call sheet uses it), which is why it lives here rather than in `report/`.
It sets attributes and imports openpyxl only inside its functions, so importing it costs nothing.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

# A4 landscape (29.7 × 21 cm) less Excel's "narrow" margins: 0.25 in left and right, 0.75 in top and bottom.
PAGE_WIDTH_CM, PAGE_HEIGHT_CM = 28.4, 17.1
# room on a chart's page for the repeated header row and a spare row, so the chart still fits beside them
CHART_MAX_HEIGHT_CM = 15.0
FOOTER = "第 &P 页，共 &N 页"
# a default row (15 pt) and a default column (8.43 characters, 64 px) as spreadsheet programs draw them
ROW_CM, DEFAULT_COLUMN_CHARS, PX_PER_CM = 15 / 72 * 2.54, 8.43, 96 / 2.54
_CELL = re.compile(r"^([A-Z]+)(\d+)$")


def print_setup(sheet: Worksheet, *, header_rows: tuple[int, int] | None, heading: str | None = None) -> None:
    """Give `sheet` the one print set-up of every xlsx callbackd writes. `header_rows` (first, last) are the rows
    repeated at the top of each printed page (None for a sheet without one table header); `heading`, the page
    header (the sheet's name when not given). Call it last: the print area is the used range and every chart."""
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4  # the paper of Chinese offices
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight = 1, 0  # one page wide, as many down as needed
    margins = sheet.page_margins
    margins.left = margins.right = 0.25
    margins.top = margins.bottom = 0.75
    margins.header = margins.footer = 0.3
    sheet.print_options.horizontalCentered = True
    if header_rows is not None:
        sheet.print_title_rows = f"{header_rows[0]}:{header_rows[1]}"
    # '&' starts a code in a page header; the whole header may hold at most 255 characters
    sheet.oddHeader.center.text = (heading or sheet.title).replace("&", "&&")[:120]
    sheet.oddFooter.center.text = FOOTER
    last_row, last_column = sheet.max_row, sheet.max_column
    for chart in getattr(sheet, "_charts", []):  # openpyxl keeps a sheet's charts there, and nowhere public
        row, column = chart_extent(sheet, chart)
        last_row, last_column = max(last_row, row), max(last_column, column)
    from openpyxl.utils import get_column_letter

    sheet.print_area = f"A1:{get_column_letter(last_column)}{last_row}"


def chart_page(sheet: Worksheet, chart: Any, after_row: int) -> None:
    """Put `chart` on a page of its own below the table that ends at `after_row`: a manual page break after that
    row, the chart anchored two rows below it, and no taller or wider than one printed page."""
    from openpyxl.worksheet.pagebreak import Break

    sheet.row_breaks.append(Break(id=after_row))
    chart.height = min(chart.height, CHART_MAX_HEIGHT_CM)
    chart.width = min(chart.width, PAGE_WIDTH_CM - 1)
    sheet.add_chart(chart, f"A{after_row + 2}")


def chart_extent(sheet: Worksheet, chart: Any) -> tuple[int, int]:
    """The last row and column a chart anchored at a cell covers, from its size and the sheet's column widths."""
    from openpyxl.utils import column_index_from_string, get_column_letter

    anchor = chart.anchor if isinstance(chart.anchor, str) else "A1"
    found = _CELL.match(anchor)
    if found is None:
        return 1, 1
    first_column, first_row = column_index_from_string(found[1]), int(found[2])
    rows = math.ceil(chart.height / ROW_CM)
    column, covered = first_column, 0.0
    while True:
        # .get, not [..]: looking a column up by index would add a dimension to the sheet
        dimension = sheet.column_dimensions.get(get_column_letter(column))
        width = dimension.width if dimension is not None and dimension.customWidth else DEFAULT_COLUMN_CHARS
        covered += (width * 7 + 5) / PX_PER_CM  # a column of n characters is about 7n + 5 pixels wide
        if covered >= chart.width:
            return first_row + rows, column
        column += 1
