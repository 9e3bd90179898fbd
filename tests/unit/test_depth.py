"""The depth of a dithered stack is measured where every frame contributes."""

from __future__ import annotations

import numpy as np

from potpyri_core.stages.photometry import empty_aperture_sigma, full_depth

RADIUS = 3.0
SIGMA_FULL = 1.0
"""Pixel noise where all 9 frames contribute; 3x that where one does (sqrt(9))."""


def _stack(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """White noise: 9 frames on the left 40% of the columns, 1 frame elsewhere, and 1% of
    the full-depth pixels with 8 (one value clipped)."""
    rng = np.random.default_rng(seed)
    shape = (400, 500)
    nframes = np.ones(shape, np.int16)
    nframes[:, :200] = 9
    clipped = (rng.random(shape) < 0.01) & (nframes == 9)
    nframes[clipped] = 8
    sigma = SIGMA_FULL * np.sqrt(9.0 / nframes)
    return rng.normal(0.0, sigma).astype(np.float32), (sigma**2).astype(np.float32), nframes


def test_full_depth_area_ignores_single_clipped_pixels():
    _, _, nframes = _stack()
    area = full_depth(nframes, 9, RADIUS)
    assert abs(area.mean() - 0.4) < 0.01
    assert area[:, 10:190].all() and not area[:, 210:].any()


def test_empty_apertures_measure_the_full_depth_noise():
    data, variance, nframes = _stack()
    bad = np.zeros(data.shape, bool)
    # the same estimator on a stack with all 9 frames everywhere (its edge pixels, partly in
    # the aperture, make the sum's noise below sqrt(pi r^2) sigma: compare like with like)
    uniform = np.random.default_rng(2).normal(0.0, SIGMA_FULL, data.shape).astype(np.float32)
    reference = empty_aperture_sigma(uniform, np.full(data.shape, SIGMA_FULL**2, np.float32), bad, RADIUS)
    deep = empty_aperture_sigma(data, variance, bad, RADIUS, nframes=nframes)
    assert deep.frames == 9 and abs(deep.fraction - 0.4) < 0.01
    assert abs(deep.sigma / reference.sigma - 1) < 0.08, (deep, reference)
    whole = empty_aperture_sigma(data, variance, bad, RADIUS)
    assert whole.frames == 1 and whole.fraction == 1.0
    assert whole.sigma > 1.3 * deep.sigma, (whole, deep)  # the shallow area dominates without the frame count


def test_depth_falls_back_to_the_deepest_area_with_room_for_apertures():
    data, variance, nframes = _stack()
    nframes[5:12, 5:12] = 10  # a 7 px patch with one more frame: too small for 30 apertures
    bad = np.zeros(data.shape, bool)
    result = empty_aperture_sigma(data, variance, bad, RADIUS, nframes=nframes)
    assert result.frames == 9
