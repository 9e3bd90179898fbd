"""Near-infrared array facts: reference pixels per output channel, coadds, non-linearity.

HAWAII-2 / H2RG arrays have no overscan: rows of reference pixels (not light-sensitive) at
the bottom and top of the array follow the bias of each output channel. Frames may sum
several coadds, each read and saturating on its own.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from potpyri_core.settings import Detector


def coadds(detector: Detector, header: Any) -> int:
    """Number of coadds summed into a frame (``detector.coadds_keyword``; 1 without)."""
    key = detector.coadds_keyword
    return max(int(header[key]), 1) if key and key in header else 1


def reference_level(raw: np.ndarray, data_y: slice, data_x: slice, rows: int, channels: int) -> np.ndarray:
    """Bias level of each data column from the reference rows of its output channel.

    Parameters
    ----------
    raw : ndarray
        The raw amplifier image (ADU).
    data_y, data_x : slice
        The data section in ``raw``.
    rows : int
        Reference rows at the bottom and at the top of ``raw``.
    channels : int
        Equal-width output channels across the data columns.

    Returns
    -------
    ndarray
        Shape ``(1, ncols)``: the median of the reference rows of each column's channel
        (one level per channel, so the pixel noise of the level is that of many pixels).
    """
    reference = np.concatenate([raw[:rows, data_x], raw[raw.shape[0] - rows:, data_x]])
    ncols = reference.shape[1]
    edges = np.linspace(0, ncols, channels + 1).round().astype(int)
    level = np.empty(ncols, np.float32)
    for lo, hi in itertools.pairwise(edges):
        level[lo:hi] = np.median(reference[:, lo:hi])
    return level[None, :]


def linearise(adu: np.ndarray, coefficients: list[float], n_coadds: int) -> np.ndarray:
    """Correct reference-subtracted counts for the published non-linearity.

    ``true = raw (1 + c2 raw + c3 raw^2 + ...)`` with ``raw`` the counts per coadd (the
    correction applies to each read, so a sum of coadds is corrected per coadd).

    Parameters
    ----------
    adu : ndarray
        Counts (ADU) above the reference level, summed over ``n_coadds``.
    coefficients : list of float
        ``c2, c3, ...``; empty: returned unchanged.
    n_coadds : int
        Coadds in the sum.
    """
    if not coefficients:
        return adu
    per = adu / n_coadds
    factor = np.ones_like(per)
    power = np.ones_like(per)
    for c in coefficients:
        power = power * per
        factor = factor + c * power
    return (per * factor * n_coadds).astype(np.float32)
