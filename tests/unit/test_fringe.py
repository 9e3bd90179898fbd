"""Fringe frame and its least-squares scale on synthetic images (expectations computed here)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from scipy.ndimage import gaussian_filter

from potpyri_core.frames import Frame
from potpyri_core.params import FringeParams, SkyParams
from potpyri_core.stages import fringe

SHAPE = (160, 240)


def _pattern(shape=SHAPE, period=18.0) -> np.ndarray:
    """Curved fringes, zero-mean on large scales."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    phase = 2 * np.pi * (xx / period + 0.6 * np.sin(yy / 40.0) + 0.3 * np.cos(xx / 55.0))
    return np.cos(phase)


def _stars(rng: np.random.Generator, shape=SHAPE, n=40, flux=(2e4, 2e5)) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    out = np.zeros(shape)
    for _ in range(n):
        x0, y0 = rng.uniform(5, shape[1] - 5), rng.uniform(5, shape[0] - 5)
        out += rng.uniform(*flux) / (2 * np.pi * 1.5**2) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.5**2))
    return out


def _frame(rng: np.random.Generator, sky: float, fringe_e: float, pattern: np.ndarray) -> Frame:
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    model = sky * (1 + 0.02 * (xx / SHAPE[1] - 0.5) - 0.01 * (yy / SHAPE[0])) + fringe_e * pattern + _stars(rng)
    data = rng.normal(model, np.sqrt(model)).astype(np.float32)
    return Frame(data=data, variance=model.astype(np.float32), mask=np.zeros(SHAPE, np.uint16), header=fits.Header())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fit_scale_recovers_the_strength_within_its_error(seed):
    rng = np.random.default_rng(seed)
    pattern = _pattern()
    true = 85.0
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    data = 1000.0 + 40.0 * xx / SHAPE[1] - 25.0 * yy / SHAPE[0] + true * pattern + rng.normal(0, 30.0, SHAPE)
    hide = np.zeros(SHAPE, bool)
    hide[50:60, 100:130] = True
    data[hide] += 5e4  # hidden pixels must not count
    fit = fringe.fit_scale(data, pattern, hide)
    # expected error of the slope: noise / sqrt(sum of the pattern's squares), ~0.12 here
    expected = 30.0 / np.sqrt(np.sum(pattern[~hide] ** 2))
    assert fit.error == pytest.approx(expected, rel=0.1)
    assert abs(fit.scale - true) < 4 * fit.error
    assert fit.n_pixels > 0.98 * (~hide).sum()


def test_fit_scale_rejects_outliers_it_was_not_told_about():
    rng = np.random.default_rng(4)
    pattern = _pattern()
    data = 500.0 + 20.0 * pattern + rng.normal(0, 10.0, SHAPE)
    data[::37, ::23] += 3000.0  # cosmic-ray-like hits, not hidden
    fit = fringe.fit_scale(data, pattern, np.zeros(SHAPE, bool))
    assert abs(fit.scale - 20.0) < 4 * fit.error


def test_fringe_frame_from_dithered_frames_and_subtraction():
    """Five frames with different sky levels and fringe strengths (stars moving between
    them): the fringe frame matches the pattern per unit sky, each frame's scale its true
    strength, and the fringe left after subtraction is < 3% of the fringe."""
    rng = np.random.default_rng(7)
    pattern = _pattern()
    skies = [20000.0, 22000.0, 19000.0, 21000.0, 20500.0]
    strengths = [0.030, 0.027, 0.033, 0.029, 0.031]  # fringe peak / sky
    frames = [_frame(rng, s, s * a, pattern) for s, a in zip(skies, strengths, strict=True)]
    params, sky = FringeParams(box=64), SkyParams()
    built = fringe.build_fringe_frame(frames, params, sky)
    inner = (slice(10, -10), slice(10, -10))
    # the smoothing (params.smooth px) attenuates fringes of this spacing by a known factor
    attenuation = np.sum(gaussian_filter(pattern, params.smooth)[inner] * pattern[inner]) / np.sum(pattern[inner] ** 2)
    slope = np.sum(built.data[inner] * pattern[inner]) / np.sum(pattern[inner] ** 2)
    assert slope == pytest.approx(np.mean(strengths) * attenuation, rel=0.02)
    # unsmoothed: pixel noise ~1/sqrt(5 x 2e4) = 0.0032 against the fringe's rms 0.021 -> 0.989
    assert np.corrcoef(built.data[inner].ravel(), pattern[inner].ravel())[0, 1] > 0.97
    # a pixel is unknown (0, variance 0) only where it is hidden in every frame
    assert built.n_frames == 5 and np.mean(built.variance[inner] > 0) > 0.99
    # unsmoothed, a frame's own pixel has weight 1 / (frames combined there, 1 to 5)
    known = built.self_weight[inner] > 0
    count = 1 / built.self_weight[inner][known]
    assert np.allclose(count, np.round(count), atol=1e-4) and count.min() >= 1 and count.max() == pytest.approx(5)
    for frame, s, a in zip(frames, skies, strengths, strict=True):
        truth = s * a * pattern
        before = frame.data.copy()
        fit = fringe.subtract_fringe(frame, built, params, sky)
        assert fit.scale * slope == pytest.approx(s * a, rel=0.03)
        removed = before - frame.data
        left = np.sum((truth - removed)[inner] * pattern[inner]) / np.sum(truth[inner] * pattern[inner])
        assert abs(left) < 0.03


def test_too_few_frames_is_an_error_that_names_the_way_out():
    rng = np.random.default_rng(1)
    frames = [_frame(rng, 2e4, 600.0, _pattern()) for _ in range(2)]
    with pytest.raises(ValueError, match="fringe.frame"):
        fringe.build_fringe_frame(frames, FringeParams(), SkyParams())


def test_supplied_frame_loses_its_large_scale_background():
    pattern = _pattern()
    yy, _ = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    supplied = fringe.supplied_fringe_frame(0.03 * pattern + 0.5 + 1e-4 * yy, FringeParams(box=64))
    inner = (slice(10, -10), slice(10, -10))
    # what is left besides the pattern is < 10% of its amplitude (the offset and gradient are gone)
    assert float(np.std(supplied.data[inner] - 0.03 * pattern[inner])) < 0.003
    assert np.corrcoef(supplied.data[inner].ravel(), pattern[inner].ravel())[0, 1] > 0.99
