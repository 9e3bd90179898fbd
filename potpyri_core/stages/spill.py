"""Frames kept on disk and read back a block of rows at a time.

A combine (the stack, a master calibration) needs every frame, but only a few rows of each
at once. Frames are written as ``.npy`` files (data, variance, mask) and reopened as
read-only memory maps, so that they remain ordinary arrays for any hook; the combines read
their rows with :func:`read_rows`, a plain file read into a fresh array, which never makes
the mapped pages resident, so the memory of a combine does not grow with the number of
frames.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from potpyri_core.frames import AmpFacts, Frame

BLOCK_BYTES = 32 * 2**20
"""Size of one float32 cube of a row block (all frames): a combine's working memory is about
ten of these, whatever the number or size of the frames."""

PLANES = ("data", "variance", "mask")
"""The arrays of a frame that are written to disk (and ``amp_map`` when the frame has one)."""


@dataclass(frozen=True)
class SpilledFrame:
    """A frame written to disk by :func:`spill`: picklable, small, reopened by :meth:`open`.

    Attributes
    ----------
    stem : Path
        Files are ``<stem>.<plane>.npy`` for every plane in :data:`PLANES`.
    header : fits.Header
        The frame's header.
    name : str
        The frame's name.
    meta : dict
        The frame's ``meta``.
    amps : list of AmpFacts
        The frame's amplifiers.
    has_amp_map : bool
        Whether an ``amp_map`` plane was written.
    """

    stem: Path
    header: fits.Header
    name: str
    meta: dict[str, Any] = field(default_factory=dict)
    amps: list[AmpFacts] = field(default_factory=list)
    has_amp_map: bool = False

    def path(self, plane: str) -> Path:
        """The file of one plane."""
        return self.stem.with_name(f"{self.stem.name}.{plane}.npy")

    def open(self) -> Frame:
        """The frame with its planes as read-only memory maps (nothing is read yet)."""
        planes = {plane: np.load(self.path(plane), mmap_mode="r") for plane in PLANES}
        amp_map = np.load(self.path("amp_map"), mmap_mode="r") if self.has_amp_map else None
        return Frame(data=planes["data"], variance=planes["variance"], mask=planes["mask"], header=self.header,
                     name=self.name, amps=list(self.amps), amp_map=amp_map, meta=dict(self.meta))


def spill(frame: Frame, stem: Path) -> SpilledFrame:
    """Write a frame's data, variance and mask under ``stem`` (directories made as needed).

    Parameters
    ----------
    frame : Frame
        The frame; its variance may be empty (a calibration frame), which is written as is.
    stem : Path
        Path prefix of the files.
    """
    stem.parent.mkdir(parents=True, exist_ok=True)
    spilled = SpilledFrame(stem=stem, header=frame.header, name=frame.name, meta=dict(frame.meta),
                           amps=list(frame.amps), has_amp_map=frame.amp_map is not None)
    for plane in (*PLANES, "amp_map") if spilled.has_amp_map else PLANES:
        np.save(spilled.path(plane), np.ascontiguousarray(getattr(frame, plane)))
    return spilled


def remove(directory: Path) -> None:
    """Delete a directory of spilled frames (nothing happens when it does not exist)."""
    shutil.rmtree(directory, ignore_errors=True)


def _whole_file(array: Any) -> bool:
    """True for a C-ordered memory map of a whole ``.npy`` file (not a view of one)."""
    return (isinstance(array, np.memmap) and array.filename is not None and array.flags.c_contiguous
            and array.offset + array.nbytes == os.path.getsize(array.filename))


def read_rows(array: Any, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of an array as a new in-memory array.

    A memory map made by :meth:`SpilledFrame.open` is read with a file read, so its pages are
    not mapped into the process; any other array is sliced and copied.
    """
    if not _whole_file(array):
        return np.array(array[start:stop])
    stop = min(stop, array.shape[0])
    start = min(start, stop)
    out = np.empty((stop - start, *array.shape[1:]), array.dtype)
    row_bytes = array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    with open(array.filename, "rb") as fh:
        fh.seek(array.offset + start * row_bytes)
        fh.readinto(out.reshape(-1).view(np.uint8))
    return out


def block_rows(n_frames: int, row_pixels: int, budget_bytes: int) -> int:
    """Rows per block so that one float32 cube of ``n_frames`` blocks takes ``budget_bytes``."""
    return max(1, budget_bytes // max(1, 4 * n_frames * row_pixels))
