"""Sort a night: classify every raw file and keep the table in ``file_list.txt``.

The table has POTPyRI's columns (File, Target, TargType, Filter, Amp, Binning, Exp, Type,
CalType, Time) plus Reason (why a file is BAD or SPEC). Raw files are only read: never
moved, modified or deleted. Nothing matching the raw-file patterns is skipped silently:
unreadable and damaged files, dangling symbolic links, folders and duplicates (same content,
or the same name stem, whose products would collide) are rows of type BAD with the reason.

The list (name kept for POTPyRI compatibility) is ECSV (:mod:`potpyri_core.filelisttext`):
aligned columns a person can edit (e.g. set a frame to BAD) before re-running with
``--no-redo-sort``; the edits are honoured.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from astropy.table import Table

from potpyri_core.filelisttext import COLUMNS, read_file_list, write_file_list
from potpyri_core.frames import Classification
from potpyri_core.plugins import PluginSpec, plugins_for
from potpyri_core.rawio import RawReadError, content_digest
from potpyri_core.settings import InstrumentSettings
from potpyri_core.stages.classify import FINGERPRINT_KEY, N_DATA_KEY
from potpyri_core.workers import process_pool

__all__ = ["COLUMNS", "classify_files", "find_raw_entries", "find_raw_files", "mark_duplicates", "read_file_list",
           "select", "sort_night", "to_table", "write_file_list"]

log = logging.getLogger("potpyri")

_SUFFIXES = re.compile(r"(\.(fits|fit|fts))?(\.(gz|bz2|fz|z))*$", re.IGNORECASE)


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name.lower(), pattern.lower()) for pattern in patterns)


def find_raw_entries(data_path: Path, patterns: list[str]) -> list[Path]:
    """Every entry directly in ``data_path`` whose name matches the raw-file patterns
    (``InstrumentSettings.raw_glob``, case-insensitive): files, but also folders, dangling
    symbolic links and special files, so that they can be reported. Sorted by name."""
    return sorted(p for p in data_path.iterdir() if _matches(p.name, patterns))


def find_raw_files(data_path: Path, patterns: list[str]) -> list[Path]:
    """The regular files (or links to one) among :func:`find_raw_entries`."""
    return [p for p in find_raw_entries(data_path, patterns) if p.is_file()]


def not_a_file_reason(path: Path) -> str:
    """Why an entry matching the raw patterns cannot be read as a raw file."""
    if path.is_symlink() and not path.exists():
        return f"{path.name}: dangling symbolic link to {os.readlink(path)} (target missing)"
    if path.is_dir():
        return f"{path.name}: a folder, not a raw file"
    return f"{path.name}: not a regular file"


def _bad(name: str, reason: str) -> Classification:
    return Classification(name, "unknown", "?", "?", "?", math.nan, "BAD", math.nan, reason)


def _classify_one(args: tuple[PluginSpec, InstrumentSettings, Path]) -> tuple[Classification, str | None]:
    spec, instrument, path = args
    hook = plugins_for(spec).for_instrument(instrument.name)
    try:
        header = hook.potpyri_read_header(instrument=instrument, path=path)
    except RawReadError as exc:  # bad CRC, truncated, not FITS: the message says which and where
        return _bad(path.name, str(exc)), None
    except Exception as exc:  # unreadable for another reason: a BAD row, never a crash
        return _bad(path.name, f"{path.name}: unreadable FITS file: {type(exc).__name__}: {exc}"), None
    if header.get(N_DATA_KEY, 1) == 0:
        return _bad(path.name, f"{path.name}: truncated/no data: headers only, no image data"), None
    try:
        result = hook.potpyri_classify(instrument=instrument, header=header, path=path)
    except Exception as exc:  # a plugin's classifier failing on one file never stops the sort
        return _bad(path.name, f"{path.name}: classification failed: {type(exc).__name__}: {exc}"), None
    return result, header.get(FINGERPRINT_KEY)


def classify_files(instrument: InstrumentSettings, paths: list[Path], workers: int = 1,
                   plugins: PluginSpec = PluginSpec()) -> list[tuple[Classification, str | None]]:
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

    Returns
    -------
    list of (Classification, str or None)
        Each file's classification and content fingerprint (None when unreadable).
    """
    jobs = [(plugins, instrument, p) for p in paths]
    if workers <= 1 or len(paths) < 64:
        return [_classify_one(j) for j in jobs]
    with process_pool(workers) as pool:
        return list(pool.map(_classify_one, jobs, chunksize=32))


def name_stem(name: str) -> str:
    """The name without FITS and compression suffixes: ``X.fits``, ``X.fits.gz`` -> ``X``."""
    return _SUFFIXES.sub("", name) or name


def mark_duplicates(data_path: Path, rows: list[tuple[Classification, str | None]]) -> list[str]:
    """Keep one file of each duplicate set; the others become BAD "duplicate of ...".

    Duplicates share a name stem (``X.fits`` and ``X.fits.gz`` would write the same
    products) or their decompressed content (checked with :func:`~potpyri_core.rawio.content_digest`
    for files whose header fingerprints agree). Files already BAD are left as they are.
    The kept file has the shortest name stem (then comes first in name order).

    Parameters
    ----------
    data_path : Path
        Folder of the files.
    rows : list of (Classification, fingerprint)
        From :func:`classify_files`; changed in place.

    Returns
    -------
    list of str
        One line per duplicate, for the log.
    """
    usable = [c for c, _ in rows if c.type != "BAD"]
    groups: dict[tuple[str, str], list[Classification]] = defaultdict(list)
    for c in usable:
        groups[("stem", name_stem(c.file))].append(c)
    by_fingerprint: dict[str, list[Classification]] = defaultdict(list)
    for c, fingerprint in rows:
        if c.type != "BAD" and fingerprint:
            by_fingerprint[fingerprint].append(c)
    for candidates in by_fingerprint.values():
        if len(candidates) > 1:
            for c in candidates:
                try:
                    groups[("content", content_digest(data_path / c.file))].append(c)
                except RawReadError as exc:
                    c.type, c.reason = "BAD", str(exc)
    messages = []
    for (how, _), members in sorted(groups.items()):
        members = [c for c in members if c.type != "BAD"]
        if len(members) < 2:
            continue
        keep, *others = sorted(members, key=lambda c: (len(name_stem(c.file)), c.file))
        why = "identical content" if how == "content" else "same name stem: their products would collide"
        for c in others:
            c.type, c.reason = "BAD", f"{c.file}: duplicate of {keep.file} ({why}); only {keep.file} is used"
            messages.append(c.reason)
    return messages


def to_table(rows: Iterable[Classification]) -> Table:
    """Build the file table from classifications, sorted by type then time."""
    data: dict[str, list] = {c: [] for c in COLUMNS}
    for r in rows:
        values = [r.file, r.target, r.targtype, r.filter, r.amp, r.binning, round(r.exptime, 3), r.type,
                  r.caltype, round(r.time, 6), r.reason or "-", r.coadds]
        for column, value in zip(COLUMNS, values, strict=True):
            data[column].append(value)
    table = Table(data, dtype=[str, str, str, str, str, str, float, str, str, float, str, int])
    if len(table):
        table.sort(["Type", "Time", "File"])
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
    entries = find_raw_entries(data_path, instrument.raw_glob)
    if not entries:
        raise FileNotFoundError(f"{data_path}: no raw files matching {', '.join(instrument.raw_glob)}")
    files = [p for p in entries if p.is_file()]
    rows = classify_files(instrument, files, workers, plugins)
    rows += [(_bad(p.name, not_a_file_reason(p)), None) for p in entries if not p.is_file()]
    problems = mark_duplicates(data_path, rows)
    problems += [c.reason for c, _ in rows if c.type == "BAD" and c.file not in {p.name for p in files}]
    for line in problems:
        log.warning("sort: %s", line)
    table = to_table(c for c, _ in rows)
    write_file_list(table, list_path)
    return table


def select(table: Table, include_bad: bool = False, target: str | None = None) -> Table:
    """Return the rows to reduce: no BAD/SPEC unless asked; one target (and all calibrations)."""
    keep = [include_bad or t not in ("BAD", "SPEC") for t in table["Type"]]
    if target is not None:
        keep = [k and (t != "SCIENCE" or tg == target) for k, t, tg in zip(keep, table["Type"], table["Target"], strict=True)]
    return table[keep]
