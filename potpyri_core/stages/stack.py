"""Combine resampled frames: inverse-variance weighted, sigma-clipped mean."""

from __future__ import annotations

import warnings

import numpy as np

from potpyri_core.maskbits import UNUSABLE, Bit


def frame_weight(variance: np.ndarray, mask: np.ndarray) -> float:
    """Weight of a frame: inverse of its median sky variance (per pixel).

    One weight per frame (not per pixel) so that Poisson noise of sources does not bias the
    mean toward low values.
    """
    good = ((mask & UNUSABLE) == 0) & (variance > 0)
    return 1.0 / float(np.median(variance[good])) if good.any() else 0.0


def combine(
    datas: list[np.ndarray], variances: list[np.ndarray], masks: list[np.ndarray], weights: list[float],
    sigma: float = 3.0, snoise: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted mean with per-pixel clipping against the median of the frames.

    A value is rejected when it differs from the per-pixel median by more than ``sigma``
    times its own error, with a "sensitivity noise" ``snoise`` times the median added in
    quadrature (as IRAF's ccdclip), so that the cores of stars, whose peaks differ between
    frames through sub-pixel sampling and seeing, are not clipped (3 or more frames only);
    masked pixels never contribute.

    Returns
    -------
    data, variance, mask, nframes : ndarray
        The stack, its variance, the OR of the bits where no frame contributed (or NO_DATA),
        and the number of frames used per pixel.
    """
    cube = np.stack(datas)
    var = np.stack(variances)
    bits = np.stack(masks)
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
    data = (w * cube).sum(axis=0) / safe
    variance = (w * w * var).sum(axis=0) / safe**2
    nframes = (w > 0).sum(axis=0).astype(np.int16)
    mask = np.where(ok, 0, np.bitwise_or.reduce(bits, axis=0) | int(Bit.NO_DATA)).astype(np.uint16)
    # a pixel saturated in any frame is flagged in the stack (its value is from the others)
    mask |= (np.bitwise_or.reduce(bits, axis=0) & int(Bit.SATURATED)).astype(np.uint16)
    data[~ok] = 0.0
    variance[~ok] = 0.0
    return data.astype(np.float32), variance.astype(np.float32), mask, nframes
