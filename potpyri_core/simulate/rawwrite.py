"""Write simulated raw files as the archives deliver them: plain, gzip or bzip2, atomically.

The compression follows the file name (``.fits.gz``, ``.fits.bz2``), which comes from the
instrument's ``simulation.file_name`` pattern; :func:`with_compression` changes it (the
``--compression`` option of ``potpyri simulate``). Output is reproducible: gzip streams carry
no time stamp, so the same night gives the same bytes.
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
from pathlib import Path

COMPRESSIONS = ("none", "gz", "bz2")
"""Values of ``potpyri simulate --compression``."""
_SUFFIX = re.compile(r"\.(gz|bz2)$", re.IGNORECASE)


def with_compression(name: str, compression: str | None) -> str:
    """Return ``name`` with the compression suffix for ``compression``.

    Parameters
    ----------
    name : str
        A raw file name from the instrument's pattern (e.g. ``N20240410S0001.fits.bz2``).
    compression : str or None
        ``"none"``, ``"gz"``, ``"bz2"``, or None to keep the archive's choice in ``name``.
    """
    if compression is None:
        return name
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression {compression!r} is not one of {', '.join(COMPRESSIONS)}")
    plain = _SUFFIX.sub("", name)
    return plain if compression == "none" else f"{plain}.{compression}"


def compress_for(name: str, data: bytes) -> bytes:
    """Compress FITS bytes as the file name says (gzip level 6, bzip2 level 9, as the
    ``gzip`` and ``bzip2`` tools do by default); other names are returned unchanged."""
    lower = name.lower()
    if lower.endswith(".gz"):
        return gzip.compress(data, compresslevel=6, mtime=0)
    if lower.endswith(".bz2"):
        return bz2.compress(data, compresslevel=9)
    return data


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name in the same folder.

    An existing identical file is left; a different one is an error (a night is never
    overwritten with another one).

    Raises
    ------
    FileExistsError
        If ``path`` exists with different content.
    """
    if path.exists():
        if path.read_bytes() == data:
            return
        raise FileExistsError(f"{path} exists with different content; use a fresh directory")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_raw(path: Path, fits_bytes: bytes) -> None:
    """Compress (as the name says) and write one raw file atomically."""
    write_atomic(path, compress_for(path.name, fits_bytes))
