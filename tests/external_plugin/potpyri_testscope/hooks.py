"""TESTCAM's own steps: the core calls these only when TESTCAM is reduced.

- ``potpyri_subtract_sky``: the field is small (2.5 arcmin), too small for a background
  mesh to tell the sky from the wings of bright stars, so the sky is a plane fitted to the
  pixels that are not flagged and not near a source.
- ``potpyri_stages``: a ``column_pattern`` stage after ``sky`` that removes the
  column-to-column offsets a small CCD's readout leaves, with its own parameters
  (``[params.column_pattern]`` in the TOML, ``-p column_pattern.clip_sigma=...``).

Only :mod:`potpyri_core.api` is imported from the core.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from pydantic import Field
from scipy.ndimage import maximum_filter

from potpyri_core.api import (
    UNUSABLE,
    Bit,
    Frame,
    InstrumentSettings,
    Pipeline,
    SkyParams,
    Stage,
    StepParams,
    atomic_write,
    hookimpl,
)


# ---------------------------------------------------------------- an overridden step
@hookimpl
def potpyri_subtract_sky(instrument: InstrumentSettings, frames: list[Frame], params: SkyParams
                         ) -> list[Frame] | None:
    """Subtract a plane sky from each frame; a dithered sky (``sky.method = "dither"``) is
    left to the core (returning None hands the call to the next implementation)."""
    if params.method != "2d":
        return None
    return [subtract_plane_sky(frame, params) for frame in frames]


def subtract_plane_sky(frame: Frame, params: SkyParams, iterations: int = 4) -> Frame:
    """Fit ``a + b x + c y`` to the sky pixels of a frame and subtract it.

    Pixels with an unusable mask bit are left out; so are pixels within
    ``params.source_dilate`` of a pixel more than ``params.source_sigma`` above the current
    fit, which is refitted ``iterations`` times.

    Parameters
    ----------
    frame : Frame
        A calibrated frame (e-), changed in place.
    params : SkyParams
        The sky step's parameters (``source_sigma``, ``source_dilate``).
    iterations : int
        Fits after the first.

    Returns
    -------
    Frame
        The frame, with ``SKYLEVEL``, ``SKYSIG`` and ``SKYMODEL`` header cards.
    """
    usable = (frame.mask & UNUSABLE) == 0
    ny, nx = frame.data.shape
    v, u = np.mgrid[0:ny, 0:nx].astype(np.float32)
    u, v = u / nx - 0.5, v / ny - 0.5
    keep = usable
    for _ in range(iterations + 1):
        design = np.column_stack([np.ones(int(keep.sum()), np.float32), u[keep], v[keep]])
        coef = np.linalg.lstsq(design, frame.data[keep], rcond=None)[0]
        sky = coef[0] + coef[1] * u + coef[2] * v
        residual = frame.data - sky
        sigma = 1.4826 * float(np.median(np.abs(residual[keep])))
        near_source = maximum_filter(residual > params.source_sigma * sigma, size=params.source_dilate)
        keep = usable & ~near_source
    frame.header["SKYLEVEL"] = (float(np.median(sky[usable])), "median sky subtracted (e-)")
    frame.header["SKYSIG"] = (sigma, "sky noise (e-)")
    frame.header["SKYMODEL"] = ("plane", "TESTCAM sky: a clipped plane fit")
    no_data = (frame.mask & Bit.NO_DATA) > 0
    frame.data = np.where(no_data, frame.data, residual).astype(np.float32)
    return frame


# ---------------------------------------------------------------- an extra stage
class ColumnPatternParams(StepParams):
    """Removing column-to-column offsets from sky-subtracted frames."""

    clip_sigma: float = Field(default=3.0, gt=0)
    """Pixels further than this many robust sigma from the frame's median are not used."""
    min_pixels: int = Field(default=32, ge=1)
    """Columns with fewer usable pixels are left as they are."""


def remove_column_pattern(frame: Frame, params: ColumnPatternParams) -> float:
    """Subtract each column's clipped median of its usable pixels.

    Parameters
    ----------
    frame : Frame
        A sky-subtracted frame (e-), changed in place.
    params : ColumnPatternParams
        Clipping threshold and the fewest pixels per column.

    Returns
    -------
    float
        RMS (e-) of the removed column offsets.
    """
    usable = (frame.mask & UNUSABLE) == 0
    level = float(np.median(frame.data[usable]))
    sigma = 1.4826 * float(np.median(np.abs(frame.data[usable] - level)))
    good = usable & (np.abs(frame.data - level) < params.clip_sigma * sigma)
    counts = good.sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # columns without a good pixel
        offsets = np.nanmedian(np.where(good, frame.data, np.nan), axis=0) - level
    offsets = np.where(counts >= params.min_pixels, offsets, 0.0).astype(np.float32)
    no_data = (frame.mask & Bit.NO_DATA) > 0
    frame.data = np.where(no_data, frame.data, frame.data - offsets[None, :]).astype(np.float32)
    return float(np.sqrt(np.mean(offsets[counts >= params.min_pixels] ** 2)))


def run_column_pattern(p: Pipeline) -> None:
    """The ``column_pattern`` stage: every calibrated science frame, in the main process."""
    params: ColumnPatternParams = p.params.step("column_pattern")
    for row in p.rows("SCIENCE"):
        path = p.workspace_path(row["File"])
        if not path.exists():
            continue  # reported by the frames stage
        start = time.perf_counter()
        try:
            frame = Frame.from_file(path)
            rms = remove_column_pattern(frame, params)
            frame.header["COLPATRN"] = (rms, "rms of the column pattern removed (e-)")
            frame.header["COLPSIG"] = (params.clip_sigma, "column_pattern.clip_sigma")
            atomic_write(frame.to_hdul(), path)
            p.record(row["File"], True, time.perf_counter() - start, f"column pattern rms {rms:.2f} e-")
        except Exception as exc:  # one bad frame never stops the others
            p.record(row["File"], False, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")


@hookimpl
def potpyri_stages() -> list[Stage]:
    """The ``column_pattern`` stage, after ``sky``."""
    return [Stage("column_pattern", run_column_pattern, "frame", (), "red/workspace (sky-subtracted)",
                  "red/workspace (COLPATRN card)", after="sky", params=("column_pattern", ColumnPatternParams))]
