"""Saved catalogs given with ``--catalog``, remembered for ``--stages`` re-runs of a night.

A run with ``--catalog FILE`` writes the absolute paths to ``DATA_PATH/red/catalogs/given.json``;
a later run of some stages only (``--stages photometry``) without ``--catalog`` uses them
again instead of going online. A full run without ``--catalog`` queries the online sources
as usual, and a run with ``--catalog`` replaces what was remembered.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from potpyri_core.catalogs.cache import catalog_cache_dir
from potpyri_core.options import STAGES

log = logging.getLogger("potpyri")

GIVEN_FILE = "given.json"


def given_path(data_path: Path | str) -> Path:
    """Where the catalogs given with ``--catalog`` are remembered: ``red/catalogs/given.json``."""
    return catalog_cache_dir(data_path) / GIVEN_FILE


def remember_catalogs(data_path: Path | str, paths: Sequence[Path | str]) -> Path:
    """Remember the saved catalogs of a run (absolute paths), atomically.

    Parameters
    ----------
    data_path : Path
        The night's directory.
    paths : sequence of Path
        The files given with ``--catalog``.

    Returns
    -------
    Path
        The ``given.json`` written.
    """
    target = given_path(data_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    record = {"catalogs": [str(Path(p).resolve()) for p in paths],
              "given_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")}
    fd, tmp_name = tempfile.mkstemp(prefix=".given.", suffix=".json.tmp", dir=target.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
    os.replace(tmp_name, target)
    return target


def remembered_catalogs(data_path: Path | str) -> tuple[Path, ...]:
    """The saved catalogs remembered for a night, or ``()``.

    Nothing is remembered when ``given.json`` is absent, unreadable, or names a file that
    is gone (logged as a warning naming the file: the run then goes online).
    """
    path = given_path(data_path)
    if not path.exists():
        return ()
    try:
        paths = tuple(Path(p) for p in json.loads(path.read_text(encoding="utf-8"))["catalogs"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s is unreadable (%s): the catalogs given before are not used", path, exc)
        return ()
    gone = [str(p) for p in paths if not p.is_file()]
    if gone:
        log.warning("catalogs remembered in %s are gone (%s): not used; pass --catalog again",
                    path, ", ".join(gone))
        return ()
    return paths


def catalogs_for_run(data_path: Path | str, given: Sequence[Path], stages: Sequence[str]) -> tuple[Path, ...]:
    """The saved catalogs a run uses: those given now (then remembered), else, for a run of
    some stages only, those remembered from an earlier run; ``()`` means go online.

    Parameters
    ----------
    data_path : Path
        The night's directory.
    given : sequence of Path
        The run's ``--catalog`` files.
    stages : sequence of str
        The run's stages (``--stages``).
    """
    if given:
        remember_catalogs(data_path, given)
        return tuple(Path(p) for p in given)
    if set(stages) >= set(STAGES):
        return ()
    remembered = remembered_catalogs(data_path)
    if remembered:
        log.info("using the catalogs given with --catalog before (%s): %s", given_path(data_path),
                 ", ".join(p.name for p in remembered))
    return remembered
