"""Incremental re-runs: a product is up to date when the signature of what made it matches.

Each stage writes a signature card into its product (``CALKEY`` masters, ``FRMKEY`` /
``SKYKEY`` / ``ASTKEY`` calibrated frames, ``STKKEY`` / ``PHOKEY`` stacks): a digest of the
checksums of its inputs (raw files, masters, the previous stage's signature, the reference
catalog), the step parameters and run options that change its result, and the code version.
A re-run skips a product whose card equals the signature it would write; ``--force`` redoes
everything. So reducing a night again after adding one frame reduces one frame (plus the
stack it joins), and an unchanged night re-runs in seconds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from potpyri_core import __version__


def signature(*parts: Any) -> str:
    """Digest (16 hex digits) of ``parts`` (JSON-able values) and the potpyri-core version."""
    text = json.dumps([__version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def table_digest(table: Any, columns: tuple[str, ...] = ("ra", "dec")) -> str:
    """Digest of a catalog's positions (what a solution depends on)."""
    digest = hashlib.sha256()
    for column in columns:
        if column in table.colnames:
            digest.update(np.ascontiguousarray(np.asarray(table[column], float)).tobytes())
    digest.update(str(len(table)).encode())
    return digest.hexdigest()[:16]


def card(path: Path, key: str) -> str | None:
    """The signature card ``key`` of a product (None when the file or the card is missing)."""
    try:
        return fits.getval(path, key)
    except (OSError, KeyError):
        return None


def is_current(path: Path, key: str, wanted: str, force: bool) -> bool:
    """True when ``path`` exists with signature card ``key`` equal to ``wanted`` (never with
    ``force``)."""
    return not force and card(path, key) == wanted
