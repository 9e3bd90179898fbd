"""Resampling through the ``reproject`` package: the ``resample.backend`` options
``reproject_interp`` (bilinear) and ``reproject_adaptive`` (anti-aliased, DeForest 2004).

An optional backend (``pip install reproject``) for comparison with the core's own
resampling (:mod:`potpyri_core.stages.resample`), which stays the default because of what
``reproject`` does not do:

- the variance is resampled like the data (weights ``w_i``, not ``w_i**2``), so the ERROR of
  a resampled frame is larger than its true per-pixel noise (bilinear: by up to 1.5 in the
  error at half-pixel shifts, ~1.2 typically);
- it has no mask bits: each bit present in the frame is resampled as its own 0/1 image and
  set where it contributes more than 1e-3 (as the core carries bits), one more reprojection
  per bit.

Unusable pixels are NaN on input, so they never leak into good output pixels; output pixels
that no good input pixel reaches are NO_DATA.
"""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS

from potpyri_core.maskbits import UNUSABLE, Bit

BACKENDS = ("reproject_interp", "reproject_adaptive")
"""The ``resample.backend`` values this module serves."""


def _function(backend: str):
    try:
        import reproject
    except ImportError as exc:
        raise RuntimeError(f"resample.backend={backend} needs the reproject package (pip install reproject)") from exc
    if backend == "reproject_interp":
        return lambda image, wcs, out_wcs, shape: reproject.reproject_interp(
            (image, wcs), out_wcs, shape_out=shape, order="bilinear")
    if backend == "reproject_adaptive":
        return lambda image, wcs, out_wcs, shape: reproject.reproject_adaptive(
            (image, wcs), out_wcs, shape_out=shape, conserve_flux=True, boundary_mode="ignore")
    raise ValueError(f"unknown resample backend {backend!r}; reproject backends: {', '.join(BACKENDS)}")


def resample(data: np.ndarray, variance: np.ndarray, mask: np.ndarray, in_wcs: WCS, out_wcs: WCS,
             shape: tuple[int, int], backend: str = "reproject_interp") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample one frame onto the output grid with ``reproject``.

    Parameters
    ----------
    data, variance, mask : ndarray
        The frame (data and variance in the output's units), uint16 bits.
    in_wcs, out_wcs : WCS
        Frame and grid WCS (the frame's SIP terms are used).
    shape : tuple of int
        Output ``(ny, nx)``.
    backend : str
        One of :data:`BACKENDS`.

    Returns
    -------
    data, variance, mask : ndarray
        float32, float32, uint16 on the output grid (see the module notes on the variance).
    """
    func = _function(backend)
    unusable = (mask & UNUSABLE) > 0
    out, footprint = func(np.where(unusable, np.nan, data).astype(np.float64), in_wcs, out_wcs, shape)
    out_var, _ = func(np.where(unusable, np.nan, variance).astype(np.float64), in_wcs, out_wcs, shape)
    out_mask = np.zeros(shape, np.uint16)
    for bit in (int(b) for b in Bit if (mask & int(b)).any()):
        plane, _ = func(((mask & bit) > 0).astype(np.float64), in_wcs, out_wcs, shape)
        out_mask |= np.where(np.nan_to_num(plane) > 1e-3, bit, 0).astype(np.uint16)
    # NaN (or no footprint) where an unusable pixel contributes, or off the frame: NO_DATA
    # unless a bit already says why
    lost = ~np.isfinite(out) | ~np.isfinite(out_var) | (footprint <= 0)
    out_mask[lost & ((out_mask & UNUSABLE) == 0)] |= int(Bit.NO_DATA)
    out = np.where(lost, 0.0, out)
    out_var = np.where(lost, 0.0, out_var)
    return out.astype(np.float32), out_var.astype(np.float32), out_mask
