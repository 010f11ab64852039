"""Attribute tables as stewards hold them in CSV, the way a spreadsheet saves it (comma,
semicolon or tab; decimal point or comma; UTF-8 with or without BOM, or Windows-1252).
Each becomes rows of ``{column: value}`` with numbers as numbers; how a file was read goes
to the report. The tables GDAL reads (XLSX, ODS, a GeoPackage table) are opened with the
other GDAL sources (``readers.read_rows``).
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from oup.catalog import Source

_DELIMITERS = ",;\t|"
_SAMPLE = 64 * 1024
_DECIMAL_COMMA = re.compile(r"-?\d+,\d+")
_DECIMAL_POINT = re.compile(r"-?\d*\.\d+")


class TableError(ValueError):
    """A table cannot be read: the message names the file, and the row where known."""


def _text(path: Path, report) -> str:
    raw = path.read_bytes()
    if not raw.strip():
        raise TableError(f"{path.name} is empty")
    try:
        return raw.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as exc:
        # what Excel saves as plain "CSV" on a Dutch Windows: read it, and say so
        report.notes.append(f"{path.name} is not UTF-8 (byte {raw[exc.start]:#x} at "
                            f"{exc.start}): read as Windows-1252")
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            raise TableError(f"{path.name} is not text in UTF-8 or Windows-1252 "
                             f"(byte {raw[exc.start]:#x} at {exc.start})") from None


def dialect(text: str, source: Source) -> tuple[str, str]:
    """(delimiter, decimal mark): as the source says, else as the file's first lines show."""
    sample = text[:_SAMPLE]
    delimiter = source.delimiter
    if delimiter is None:
        first = sample.split("\n", 1)[0]
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
        except csv.Error:  # one column, or a sniffer in doubt: the header decides
            delimiter = max(_DELIMITERS, key=first.count)
        if first.count(delimiter) == 0 and any(first.count(d) for d in _DELIMITERS):
            delimiter = max(_DELIMITERS, key=first.count)
    decimal = source.decimal
    if decimal is None:
        decimal = "."
        if delimiter != ",":
            cells = [c.strip().strip('"') for line in sample.splitlines()[1:200]
                     for c in line.split(delimiter)]
            commas = sum(bool(_DECIMAL_COMMA.fullmatch(c)) for c in cells)
            points = sum(bool(_DECIMAL_POINT.fullmatch(c)) for c in cells)
            decimal = "," if commas > points else "."
    return delimiter, decimal


def cell(value: str, decimal: str = "."):
    """A CSV cell as a number where it is one, else the text; '' is no value."""
    if value == "":
        return None
    text = value.replace(",", ".") if decimal == "," and _DECIMAL_COMMA.fullmatch(value) \
        else value
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return value


def read_csv_rows(path: Path, source: Source, report) -> tuple[list[str], list[dict]]:
    """The header and the rows of a CSV file."""
    text = _text(path, report)
    delimiter, decimal = dialect(text, source)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, [])
        if not any(h.strip() for h in header):
            raise TableError(f"{path.name}: the first line must name the columns")
        rows = []
        for n, values in enumerate(reader, start=2):
            if not any(values):
                continue
            if len(values) > len(header):
                raise TableError(f"{path.name}: row {n}: {len(values)} values for "
                                 f"{len(header)} columns (delimiter {delimiter!r})")
            rows.append({k: cell(v, decimal) for k, v in zip(header, values)})
    except csv.Error as exc:
        raise TableError(f"{path.name}: line {reader.line_num}: {exc}") from None
    return header, rows

