"""The file list as text: ECSV that round-trips any value and stays editable by a person.

Rows are written with every text value quoted and the columns aligned, e.g.::

    File                       Target      ...  Type      ...  Reason
    "N20240410S0009 copy.fits" "SN2024abc" ...  "SCIENCE" ...  "-"

so blanks, quotes (doubled inside), commas, ``#``, unicode and empty strings need nothing
more. The few characters ECSV readers do not keep — control characters, a backslash, and
blanks at either end of a value — are written as ``\\xNN`` escapes (``\\\\`` for a
backslash) and decoded on reading. Lists written before ECSV (POTPyRI's whitespace
separated table) are still read.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import numpy as np
from astropy.io import ascii
from astropy.table import MaskedColumn, Table

COLUMNS = ["File", "Target", "TargType", "Filter", "Amp", "Binning", "Exp", "Type", "CalType", "Time", "Reason",
           "Coadds"]
FLOAT_COLUMNS = ("Exp", "Time")
INT_COLUMNS = ("Coadds",)
OPTIONAL_COLUMNS = {"Reason": "-", "Coadds": 1}
"""Columns a list may lack (POTPyRI's lists and lists written before the column): their value."""
NOTE = ("potpyri file list: one row per raw file. Edit Type (SCIENCE, FLAT, BIAS, DARK, SPEC, BAD) and rerun"
        " with --no-redo-sort. Text values are quoted; \\xNN, \\uNNNN are control characters or edge blanks, \\\\"
        " a backslash.")

_ESCAPE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\\\\]|^ +| +$")
r"""Characters an ECSV reader would not give back: controls (C0, C1; Python also splits lines
at \x1c-\x1e, \x85, \u2028, \u2029), surrogates (undecodable bytes of a file name), the
backslash itself, blanks at either end."""
_UNESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})")


def _escape_one(c: str) -> str:
    return "\\\\" if c == "\\" else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"


def escape(text: str) -> str:
    """Escape what an ECSV reader would not give back: control characters, backslashes and
    blanks at the start or end."""
    return _ESCAPE.sub(lambda m: "".join(_escape_one(c) for c in m.group()), text)


def unescape(text: str) -> str:
    """Inverse of :func:`escape`."""
    return _UNESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1)[1:], 16)), text)


def _header_lines(table: Table) -> list[str]:
    """ECSV header (``# %ECSV``, the YAML column types and the note) of ``table``."""
    empty = table[:0].copy()
    empty.meta = {"note": NOTE}
    buf = io.StringIO()
    empty.write(buf, format="ascii.ecsv")
    return [line for line in buf.getvalue().splitlines() if line.startswith("#")]


def _field(value: object, column: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=" ", quotechar='"', quoting=csv.QUOTE_ALL, lineterminator="")
    if column in FLOAT_COLUMNS:
        return repr(float(value))
    if column in INT_COLUMNS:
        return str(int(value))
    writer.writerow([escape(str(value))])
    return buf.getvalue()


def format_file_list(table: Table) -> str:
    """Return the text of the file list for ``table`` (columns :data:`COLUMNS`)."""
    rows = [[_field(r[c], c) for c in COLUMNS] for r in table]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(COLUMNS)]
    lines = _header_lines(table[COLUMNS])
    lines.append(" ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip())
    lines += [" ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def write_file_list(table: Table, path: Path) -> None:
    """Write the table atomically (temporary name, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(format_file_list(table), encoding="utf-8")
    os.replace(tmp, path)


def read_file_list(path: Path) -> Table:
    """Read a file list written by :func:`write_file_list` (possibly edited by a person), or
    an older whitespace-separated list.

    Raises
    ------
    ValueError
        If the file lacks a column of the file list.
    """
    with open(path, encoding="utf-8") as handle:
        ecsv = handle.readline().startswith("# %ECSV")
    if ecsv:
        table = Table.read(path, format="ascii.ecsv")
    else:  # values of the old format never contain blanks
        table = ascii.read(path, format="basic", delimiter=" ", guess=False)
    missing = [c for c in COLUMNS if c not in table.colnames and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"{path}: not a potpyri file list, missing columns {', '.join(missing)}")
    for column, value in OPTIONAL_COLUMNS.items():
        if column not in table.colnames:
            table[column] = [value] * len(table)
    for column in table.colnames:
        col = table[column]
        if column in FLOAT_COLUMNS:
            table[column] = np.asarray(col.filled(np.nan) if isinstance(col, MaskedColumn) else col, dtype=float)
        elif column in INT_COLUMNS:
            table[column] = np.asarray(col.filled(1) if isinstance(col, MaskedColumn) else col, dtype=int)
        else:
            values = col.filled("") if isinstance(col, MaskedColumn) else col
            table[column] = [unescape(str(v)) for v in values] if len(values) else np.array([], dtype=str)
    if not ecsv:
        table.meta.clear()
    return Table(table, masked=False)
