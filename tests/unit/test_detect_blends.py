"""Source detection for astrometry splits blended pairs of stars (`detect_stars` deblending)."""

from __future__ import annotations

import numpy as np
import pytest

from potpyri_core.stages.astrometry import detect_stars

FWHM = 4.0


def _gaussian_stars(shape: tuple[int, int], xy: list[tuple[float, float]], flux: list[float]) -> np.ndarray:
    sigma = FWHM / 2.3548
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    image = np.zeros(shape)
    for (x0, y0), f in zip(xy, flux):
        image += f / (2 * np.pi * sigma**2) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))
    return image


@pytest.mark.parametrize("separation_fwhm", [2.0, 3.0])
def test_a_pair_a_few_fwhm_apart_gives_two_sources_at_the_true_positions(separation_fwhm):
    rng = np.random.default_rng(5)
    shape = (120, 120)
    true = [(50.3, 60.2), (50.3 + separation_fwhm * FWHM * 0.8, 60.2 + separation_fwhm * FWHM * 0.6)]
    image = _gaussian_stars(shape, true, [2.0e5, 1.2e5])
    sky_sigma = 10.0
    data = image + rng.normal(0.0, sky_sigma, shape)
    error = np.sqrt(sky_sigma**2 + np.clip(image, 0, None))
    found = detect_stars(data, error, np.zeros(shape, np.uint16), FWHM)
    assert len(found) == 2, found
    for x0, y0 in true:
        distance = np.hypot(found["x"] - x0, found["y"] - y0).min()
        assert distance < 0.3, (x0, y0, found)


def test_a_single_star_is_not_split():
    rng = np.random.default_rng(6)
    shape = (80, 80)
    image = _gaussian_stars(shape, [(40.0, 40.0)], [5.0e6])
    data = image + rng.normal(0.0, 10.0, shape)
    found = detect_stars(data, np.sqrt(100.0 + image), np.zeros(shape, np.uint16), FWHM)
    assert len(found) == 1 and abs(found["x"][0] - 40.0) < 0.05
