"""Sort a night: classify every raw file and keep the table in ``file_list.txt``.

The table has POTPyRI's columns (File, Target, TargType, Filter, Amp, Binning, Exp, Type,
CalType, Time) plus Reason (why a file is BAD or SPEC). Raw files are only read: never
moved, modified or deleted. A person may edit the table (e.g. set a frame to BAD) and
re-run with ``--no-redo-sort``; the edits are honoured.
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from astropy.io import ascii
from astropy.table import Table

from potpyri_core.frames import Classification
from potpyri_core.plugins import PluginSpec, plugins_for
from potpyri_core.settings import InstrumentSettings

COLUMNS = ["File", "Target", "TargType", "Filter", "Amp", "Binning", "Exp", "Type", "CalType", "Time", "Reason"]


def find_raw_files(data_path: Path, patterns: list[str]) -> list[Path]:
    """Return the files directly in ``data_path`` matching the instrument's raw-file
    patterns (``InstrumentSettings.raw_glob``, case-insensitive), sorted."""
    return sorted(
        p for p in data_path.iterdir()
        if p.is_file() and any(fnmatch.fnmatch(p.name.lower(), pattern.lower()) for pattern in patterns)
    )


def _classify_one(args: tuple[PluginSpec, InstrumentSettings, Path]) -> Classification:
    spec, instrument, path = args
    hook = plugins_for(spec).for_instrument(instrument.name)
    try:
        header = hook.potpyri_read_header(instrument=instrument, path=path)
    except Exception as exc:  # unreadable, truncated, not FITS: a BAD row, never a crash
        reason = f"unreadable FITS file: {type(exc).__name__}: {exc}".replace("\n", " ")
        return Classification(path.name, "unknown", "?", "?", "?", math.nan, "BAD", math.nan, reason)
    return hook.potpyri_classify(instrument=instrument, header=header, path=path)


def classify_files(instrument: InstrumentSettings, paths: list[Path], workers: int = 1,
                   plugins: PluginSpec = PluginSpec()) -> list[Classification]:
    """Classify files, in ``workers`` processes when there are many.

    Parameters
    ----------
    instrument : InstrumentSettings
        The instrument's settings.
    paths : list of Path
        Raw files.
    workers : int
        Number of processes; 1 classifies in this process.
    plugins : PluginSpec
        The plugin set whose read-header and classify hooks are used.
    """
    jobs = [(plugins, instrument, p) for p in paths]
    if workers <= 1 or len(paths) < 64:
        return [_classify_one(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_classify_one, jobs, chunksize=32))


def to_table(rows: Iterable[Classification]) -> Table:
    """Build the file table from classifications, sorted by type then time."""
    data = {c: [] for c in COLUMNS}
    for r in rows:
        values = [r.file, r.target, r.targtype, r.filter, r.amp, r.binning, round(r.exptime, 3), r.type,
                  r.caltype, round(r.time, 6), (r.reason or "-").replace(" ", "_")]
        for column, value in zip(COLUMNS, values, strict=True):
            data[column].append(value)
    table = Table(data, dtype=[str, str, str, str, str, str, float, str, str, float, str])
    if len(table):
        table.sort(["Type", "Time", "File"])
    return table


def write_file_list(table: Table, path: Path) -> None:
    """Write the table atomically (temporary name, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    ascii.write(table, tmp, format="fixed_width", delimiter=" ", bookend=False, overwrite=True)
    os.replace(tmp, path)


def read_file_list(path: Path) -> Table:
    """Read a file list written by :func:`write_file_list` (possibly edited by a person)."""
    # values never contain blanks, so whitespace splitting reads aligned and hand-edited lists alike
    table = ascii.read(path, format="basic", delimiter=" ", guess=False)
    missing = [c for c in COLUMNS[:-1] if c not in table.colnames]
    if missing:
        raise ValueError(f"{path}: not a potpyri file list, missing columns {', '.join(missing)}")
    for column in ("File", "Target", "TargType", "Filter", "Amp", "Binning", "Type", "CalType"):
        table[column] = table[column].astype(str)
    return table


def sort_night(
    instrument: InstrumentSettings,
    data_path: Path,
    file_list_name: str = "file_list.txt",
    redo: bool = True,
    workers: int = 1,
    plugins: PluginSpec = PluginSpec(),
) -> Table:
    """Classify a night and write (or reuse) its file list.

    Parameters
    ----------
    instrument : InstrumentSettings
        The instrument's settings.
    data_path : Path
        Folder with the raw files; the list is written there.
    file_list_name : str
        Name of the list file.
    redo : bool
        False reuses an existing list as it is (``--no-redo-sort``).
    workers : int
        Processes used to read headers.
    plugins : PluginSpec
        The plugin set whose read-header and classify hooks are used.

    Returns
    -------
    astropy.table.Table
        The file table, with every row (BAD and SPEC included).
    """
    list_path = data_path / file_list_name
    if not redo and list_path.exists():
        return read_file_list(list_path)
    paths = find_raw_files(data_path, instrument.raw_glob)
    if not paths:
        raise FileNotFoundError(f"{data_path}: no raw files matching {', '.join(instrument.raw_glob)}")
    table = to_table(classify_files(instrument, paths, workers, plugins))
    write_file_list(table, list_path)
    return table


def select(table: Table, include_bad: bool = False, target: str | None = None) -> Table:
    """Return the rows to reduce: no BAD/SPEC unless asked; one target (and all calibrations)."""
    keep = [include_bad or t not in ("BAD", "SPEC") for t in table["Type"]]
    if target is not None:
        keep = [k and (t != "SCIENCE" or tg == target) for k, t, tg in zip(keep, table["Type"], table["Target"], strict=True)]
    return table[keep]
