"""Combine resampled frames: inverse-variance weighted, sigma-clipped mean."""

from __future__ import annotations

import warnings

import numpy as np

from potpyri_core.maskbits import UNUSABLE, Bit
from potpyri_core.stages.spill import BLOCK_BYTES, block_rows, read_rows


def frame_weight(variance: np.ndarray, mask: np.ndarray) -> float:
    """Weight of a frame: inverse of its median sky variance (per pixel).

    One weight per frame (not per pixel) so that Poisson noise of sources does not bias the
    mean toward low values.
    """
    good = ((mask & UNUSABLE) == 0) & (variance > 0)
    return 1.0 / float(np.median(variance[good])) if good.any() else 0.0


def combine(
    datas: list[np.ndarray], variances: list[np.ndarray], masks: list[np.ndarray], weights: list[float],
    sigma: float = 3.0, snoise: float = 0.1, method: str = "sigclip_mean", block_bytes: int = BLOCK_BYTES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted mean with per-pixel clipping against the median of the frames, or a median.

    ``method="median"`` (the instrument's ``stacking.method``) returns the per-pixel median
    of the usable values, with variance pi/2 times that of their unweighted mean.

    A value is rejected when it differs from the per-pixel median by more than ``sigma``
    times its own error, with a "sensitivity noise" ``snoise`` times the median added in
    quadrature (as IRAF's ccdclip), so that the cores of stars, whose peaks differ between
    frames through sub-pixel sampling and seeing, are not clipped (3 or more frames only);
    masked pixels never contribute. Works on blocks of rows whose cube of all frames takes
    ``block_bytes``, read with :func:`~potpyri_core.stages.spill.read_rows`, so that with
    frames spilled to disk the memory is the output and one block, whatever the number of
    frames.

    Returns
    -------
    data, variance, mask, nframes : ndarray
        The stack, its variance, the OR of the bits where no frame contributed (or NO_DATA),
        and the number of frames used per pixel.
    """
    shape = datas[0].shape
    data = np.zeros(shape, np.float32)
    variance = np.zeros(shape, np.float32)
    mask = np.zeros(shape, np.uint16)
    nframes = np.zeros(shape, np.int16)
    rows = block_rows(len(datas), int(np.prod(shape[1:])), block_bytes)
    for start in range(0, shape[0], rows):
        block, stop = slice(start, start + rows), start + rows
        data[block], variance[block], mask[block], nframes[block] = _combine_block(
            np.stack([read_rows(d, start, stop) for d in datas]),
            np.stack([read_rows(v, start, stop) for v in variances]),
            np.stack([read_rows(m, start, stop) for m in masks]), weights, sigma, snoise, method)
    return data, variance, mask, nframes


def _combine_block(cube: np.ndarray, var: np.ndarray, bits: np.ndarray, weights: list[float], sigma: float,
                   snoise: float, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`combine` on a block of rows (frames along axis 0)."""
    usable = ((bits & UNUSABLE) == 0) & (var > 0)
    w = np.asarray(weights, np.float32)[:, None, None] * usable
    if cube.shape[0] >= 3:
        masked = np.where(usable, cube, np.float32(np.nan))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pixels no frame covers
            med = np.nanmedian(masked, axis=0)
        keep = usable & (np.abs(cube - med) <= sigma * np.sqrt(var + (snoise * med) ** 2 + 1e-12))
        # never reject everything: fall back to all usable values
        none_kept = ~keep.any(axis=0)
        keep = np.where(none_kept[None], usable, keep)
        w = w * keep
    wsum = w.sum(axis=0)
    ok = wsum > 0
    safe = np.where(ok, wsum, 1.0)
    nframes = (w > 0).sum(axis=0).astype(np.int16)
    if method == "median":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pixels no frame covers
            data = np.nan_to_num(np.nanmedian(np.where(usable, cube, np.float32(np.nan)), axis=0))
        used = np.maximum(usable.sum(axis=0), 1)
        variance = (np.pi / 2) * np.where(usable, var, 0).sum(axis=0) / used**2
    else:
        data = (w * cube).sum(axis=0) / safe
        variance = (w * w * var).sum(axis=0) / safe**2
    mask = np.where(ok, 0, np.bitwise_or.reduce(bits, axis=0) | int(Bit.NO_DATA)).astype(np.uint16)
    # a pixel saturated in any frame is flagged in the stack (its value is from the others)
    mask |= (np.bitwise_or.reduce(bits, axis=0) & int(Bit.SATURATED)).astype(np.uint16)
    data[~ok] = 0.0
    variance[~ok] = 0.0
    return data.astype(np.float32), variance.astype(np.float32), mask, nframes
