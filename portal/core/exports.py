"""Report rows as CSV, JSON, XLSX and a terminal table; text neutralised against spreadsheet formulas."""

from __future__ import annotations

import csv
import io
import json

from portal.core.reports import METRICS


def to_csv(rows: list[dict], by: list[str], metrics: tuple[str, ...] = METRICS) -> str:
    """CSV with the --by columns, the metrics, `suppressed` and `row`; text neutralised for spreadsheets."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*by, *metrics, "suppressed", "row"])
    for row in rows:
        writer.writerow([safe_cell(row[d]) if row[d] is not None else "" for d in by]
                        + ["" if row[m] is None else row[m] for m in metrics]
                        + ["true" if row["suppressed"] else "false", row["row"]])
    return out.getvalue()


def safe_cell(value: object) -> object:
    """Prefix text that a spreadsheet would run as a formula (=, +, -, @, tab, CR) with a quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_json(rows: list[dict]) -> str:
    """A JSON array of row objects."""
    return json.dumps(rows, ensure_ascii=False)


def to_xlsx(rows: list[dict], by: list[str], metrics: tuple[str, ...] = METRICS) -> bytes:
    """An XLSX workbook of the rows; text neutralised against formulas like CSV."""
    from openpyxl import Workbook
    book = Workbook(write_only=True)
    sheet = book.create_sheet("usage")
    sheet.append([*by, *metrics, "suppressed", "row"])
    for row in rows:
        sheet.append([safe_cell(row[d]) for d in by] + [row[m] for m in metrics] + [row["suppressed"], row["row"]])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def to_table(rows: list[dict], by: list[str], metrics: tuple[str, ...] = METRICS) -> str:
    """A plain-text table for the terminal."""
    header = [*by, *metrics]
    names = {"other": "(hidden cells)", "total": "(total)"}
    cells = [[names[r["row"]] if i == 0 and r["row"] in names else str(r[c]) if r[c] is not None else "·"
              for i, c in enumerate(header)] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(v.rjust(w) if i >= len(by) else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths)))
              for c in cells]
    return "\n".join(lines)


# --- Plain row lists (availability, the node list): the given columns, in order ------------------------

def rows_csv(rows: list[dict], columns: list[str]) -> str:
    """CSV of `columns`, text neutralised for spreadsheets; None is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else safe_cell(row[c]) for c in columns])
    return out.getvalue()


def rows_xlsx(rows: list[dict], columns: list[str], sheet_name: str) -> bytes:
    """An XLSX workbook of `columns`, text neutralised like CSV."""
    from openpyxl import Workbook
    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_name)
    sheet.append(columns)
    for row in rows:
        sheet.append([safe_cell(row.get(c)) for c in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def rows_table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table for the terminal; None shows as ·."""
    cells = [["·" if row.get(c) is None else str(row[c]) for c in columns] for row in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(columns)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip() for c in cells]
    return "\n".join(lines)
