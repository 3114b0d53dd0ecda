"""Report rows as CSV, JSON, XLSX and a terminal table; text neutralised against spreadsheet formulas."""

from __future__ import annotations

import csv
import io
import json

from policies.messages import N_, gettext
from portal.core import labels
from portal.core.reports import METRICS

BOM = "\ufeff"     # Excel on Windows reads a CSV as UTF-8 only with it («México», not «MÃ©xico»)
# Each raw figure with its human unit beside it: (column, source, divisor, decimals).
HUMAN = {"seconds": [("hours", "seconds", 3600, 1), ("seconds", "seconds", 1, 0)],
         "bytes_down": [("gb_down", "bytes_down", 1e9, 3), ("bytes_down", "bytes_down", 1, 0)],
         "bytes_up": [("gb_up", "bytes_up", 1e9, 3), ("bytes_up", "bytes_up", 1, 0)],
         "bytes": [("gb", "bytes", 1e9, 3), ("bytes", "bytes", 1, 0)]}
YES_NO = {True: N_("sí"), False: N_("no")}


def _figure_columns(metrics: tuple[str, ...]) -> list[tuple[str, str, float, int]]:
    return [spec for m in metrics for spec in HUMAN.get(m, [(m, m, 1, 0)])]


def human(rows: list[dict], by: list[str], metrics: tuple[str, ...] = METRICS,
          language: str = "es") -> tuple[list[str], list[list]]:
    """Headings and cells as people read them: column names and codes as words, hours and GB beside
    seconds and bytes, the margin rows named; text neutralised for spreadsheets, None left empty."""
    figures = _figure_columns(metrics)
    header = [labels.column(c, language) for c in [*by, *(f[0] for f in figures), "suppressed", "row"]]
    body = []
    for row in rows:
        named = [safe_cell(labels.word(d, row[d], language)) if row[d] is not None else None for d in by]
        if row["row"] != "cell" and by:
            named[0] = labels.word("row", row["row"], language)
        values = [None if row[src] is None else round(row[src] / div, dec) if dec else row[src] // int(div)
                  for _name, src, div, dec in figures]
        body.append([*named, *values, gettext(YES_NO[bool(row["suppressed"])], language),
                     labels.word("row", row["row"], language)])
    return header, body


def to_csv(rows: list[dict], by: list[str], metrics: tuple[str, ...] = METRICS, language: str = "es") -> str:
    """CSV for a spreadsheet: UTF-8 BOM, headings in `language`, words for codes, hours and GB beside
    seconds and bytes, text neutralised against formulas."""
    header, body = human(rows, by, metrics, language)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in line] for line in body])
    return BOM + out.getvalue()


def safe_cell(value: object) -> object:
    """Prefix text that a spreadsheet would run as a formula (=, +, -, @, tab, CR, even after spaces)
    with a quote."""
    if isinstance(value, str) and value.lstrip(" ")[:1] in ("=", "+", "-", "@", "\t", "\r", "|"):
        return "'" + value
    return value


def to_json(rows: list[dict]) -> str:
    """A JSON array of row objects (the stable codes: what machines read)."""
    return json.dumps(rows, ensure_ascii=False)


def to_xlsx(rows: list[dict], by: list[str], metrics: tuple[str, ...] = METRICS, language: str = "es") -> bytes:
    """An XLSX workbook of the rows as people read them: bold headings, widths, number formats for hours,
    GB and counts; text neutralised against formulas like CSV."""
    header, body = human(rows, by, metrics, language)
    formats = [None] * len(by) + [_number_format(dec, div) for _n, _s, div, dec in _figure_columns(metrics)]
    return _workbook("uso", header, body, formats)


def _number_format(decimals: int, divisor: float) -> str:
    return "#,##0" if not decimals else "#,##0." + "0" * decimals


def _workbook(sheet_name: str, header: list[str], body: list[list], formats: list[str | None]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter
    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_name)
    for i, name in enumerate(header):
        sheet.column_dimensions[get_column_letter(i + 1)].width = max(12, min(40, len(name) + 2))
    sheet.freeze_panes = "A2"
    heading = []
    for name in header:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = Font(bold=True)
        heading.append(cell)
    sheet.append(heading)
    for line in body:
        cells = []
        for i, value in enumerate(line):
            cell = WriteOnlyCell(sheet, value=safe_cell(value))
            if isinstance(value, str):
                cell.data_type = "s"      # never a formula, whatever the text
            elif i < len(formats) and formats[i]:
                cell.number_format = formats[i]
            cells.append(cell)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def to_table(rows: list[dict], by: list[str], metrics: tuple[str, ...] = METRICS, language: str = "es") -> str:
    """A plain-text table for the terminal, as people read it; a hidden figure shows as ·."""
    header, body = human(rows, by, metrics, language)
    header, body = header[:-2], [line[:-2] for line in body]      # hidden and row are said by the ·
    cells = [["·" if v is None else str(v) for v in line] for line in body]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(v.rjust(w) if i >= len(by) else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths))).rstrip()
              for c in cells]
    return "\n".join(lines)


# --- Plain row lists (availability, the node list): the given columns, in order ------------------------

def rows_csv(rows: list[dict], columns: list[str], language: str = "es") -> str:
    """CSV of `columns` with the UTF-8 BOM and headings in `language` (codes stay codes: the README names
    them), text neutralised for spreadsheets; None is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([labels.column(c, language) for c in columns])
    for row in rows:
        writer.writerow(["" if row.get(c) is None else safe_cell(_said(c, row[c], language)) for c in columns])
    return BOM + out.getvalue()


def _said(column: str, value: object, language: str) -> object:
    return labels.word(column, value, language) if column in labels.WORDS else value


def rows_xlsx(rows: list[dict], columns: list[str], sheet_name: str, language: str = "es") -> bytes:
    """An XLSX workbook of `columns` with headings in `language`, text neutralised like CSV."""
    body = [[_said(c, row.get(c), language) if row.get(c) is not None else None for c in columns] for row in rows]
    return _workbook(sheet_name, [labels.column(c, language) for c in columns], body, [])


def rows_table(rows: list[dict], columns: list[str], language: str = "es") -> str:
    """A plain-text table for the terminal with headings in `language`; None shows as ·."""
    cells = [["·" if row.get(c) is None else str(_said(c, row[c], language)) for c in columns] for row in rows]
    header = [labels.column(c, language) for c in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip() for c in cells]
    return "\n".join(lines)
