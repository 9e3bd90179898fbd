"""Combines over frames spilled to disk: the same numbers as in memory, and memory that does
not grow with the number of frames.

The memory figure is numpy's own allocations (``tracemalloc`` sees every array numpy makes),
so it is the working memory of the combine, independent of what else the process holds.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from potpyri_core.frames import Frame
from potpyri_core.maskbits import Bit
from potpyri_core.stages import spill
from potpyri_core.stages.calibrate import build_master
from potpyri_core.stages.stack import combine

SHAPE = (300, 200)
BLOCK = 256 * 1024  # small blocks, so that the test's frames span many of them


def _frames(n: int, seed: int = 3) -> list[Frame]:
    """Stack inputs with noise, an unflagged hit, flagged pixels and a NO_DATA corner."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        data = rng.normal(10.0, 2.0, SHAPE).astype(np.float32)
        mask = np.zeros(SHAPE, np.uint16)
        mask[:20, :30] = Bit.NO_DATA
        mask[100 + i, 50] = Bit.COSMIC_RAY
        data[150, 60 + i] = 1e4
        frame = Frame(data=data, variance=np.full(SHAPE, 4.0 * (1 + i % 3), np.float32), mask=mask,
                      header=fits.Header({"FRAME": i}), name=f"f{i}")
        frame.meta["exptime"] = 10.0 * (1 + i % 2)
        frames.append(frame)
    return frames


def _spilled(frames: list[Frame], directory: Path) -> list[Frame]:
    return [spill.spill(f, directory / f.name).open() for f in frames]


def test_read_rows_of_a_spilled_frame_equals_the_slice(tmp_path: Path) -> None:
    frame = _frames(1)[0]
    opened = spill.spill(frame, tmp_path / "one").open()
    assert isinstance(opened.data, np.memmap) and not opened.data.flags.writeable
    for start, stop in ((0, 7), (123, 300), (290, 400), (300, 310)):
        assert np.array_equal(spill.read_rows(opened.data, start, stop), frame.data[start:stop])
        assert np.array_equal(spill.read_rows(opened.mask, start, stop), frame.mask[start:stop])
    # a view of a memory map is sliced, not read from the file's start
    view = opened.data[10:]
    assert np.array_equal(spill.read_rows(view, 0, 5), frame.data[10:15])
    assert opened.header["FRAME"] == 0 and opened.name == "f0"


@pytest.mark.parametrize("method", ["sigclip_mean", "median"])
def test_stack_of_spilled_frames_equals_the_in_memory_stack(tmp_path: Path, method: str) -> None:
    frames = _frames(5)
    weights = [1.0, 0.5, 2.0, 1.0, 0.25]
    expected = combine([f.data for f in frames], [f.variance for f in frames], [f.mask for f in frames], weights,
                       method=method, block_bytes=64 * 2**20)  # one block: the whole image at once
    disk = _spilled(frames, tmp_path)
    got = combine([f.data for f in disk], [f.variance for f in disk], [f.mask for f in disk], weights,
                  method=method, block_bytes=BLOCK)
    for a, b in zip(expected, got, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert got[3][150, 62] == 4 and got[2][5, 5] & Bit.NO_DATA


@pytest.mark.parametrize("kind", ["bias", "dark", "flat"])
def test_master_of_spilled_frames_equals_the_in_memory_master(tmp_path: Path, kind: str) -> None:
    frames = _frames(5)
    if kind == "flat":
        for i, f in enumerate(frames):
            f.data *= np.float32(1000.0 * (1 + i))
    expected = build_master(kind, frames, 3, "g")
    got = build_master(kind, _spilled(frames, tmp_path), 3, "g")
    for plane in ("data", "variance", "mask"):
        assert np.array_equal(getattr(expected, plane), getattr(got, plane)), plane
    assert got.header["NCOMBINE"] == 5


def _peak_bytes(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_of_spilled_combines_does_not_grow_with_frames(tmp_path: Path) -> None:
    peaks = {}
    for n in (4, 16):
        disk = _spilled(_frames(n), tmp_path / str(n))
        weights = [1.0] * n
        peaks[("stack", n)] = _peak_bytes(lambda disk=disk, weights=weights: combine(
            [f.data for f in disk], [f.variance for f in disk], [f.mask for f in disk], weights, block_bytes=BLOCK))
        peaks[("master", n)] = _peak_bytes(lambda disk=disk: build_master("dark", disk, 3, "g", block_bytes=BLOCK))
    one_frame = SHAPE[0] * SHAPE[1] * 4
    for what in ("stack", "master"):
        # 12 more frames in memory would be 12 frames' worth more; allow one
        assert peaks[(what, 16)] - peaks[(what, 4)] < one_frame, (what, peaks)
