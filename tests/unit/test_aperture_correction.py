"""The growth-curve ratio of the aperture correction against a known truth.

Stars of known PSF fraction within an inner and an outer aperture get, in the outer one, extra
light that does not depend on their flux (undetected sources and neighbours' wings: positive and
skewed, as in a crowded stack); the slope of :func:`growth_ratio` must recover the true ratio
where the median of the ratios is biased high.
"""

from __future__ import annotations

import numpy as np

from potpyri_core.stages.photometry import growth_ratio

TRUE_RATIO = 1.25


def _stars(seed: int = 1, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    inner = 10 ** rng.uniform(2.7, 4.5, n)
    contamination = rng.exponential(150.0, n)
    # a few stars with a bright neighbour in the outer aperture only
    contamination[rng.choice(n, 20, replace=False)] += 10 ** rng.uniform(3.0, 4.0, 20)
    outer = TRUE_RATIO * inner + contamination
    outer = outer + rng.normal(0.0, np.sqrt(outer))
    return inner + rng.normal(0.0, np.sqrt(inner)), outer


def test_slope_recovers_the_true_ratio_despite_contamination():
    inner, outer = _stars()
    ratio, error = growth_ratio(inner, outer)
    assert abs(ratio - TRUE_RATIO) < 3 * error, (ratio, error)
    assert error < 0.005 * TRUE_RATIO, error
    # the median of the ratios takes the contamination in
    assert np.median(outer / inner) - TRUE_RATIO > 3 * error


def test_error_is_the_scatter_of_independent_realisations():
    ratios, errors = np.array([growth_ratio(*_stars(seed)) for seed in range(40)]).T
    assert abs(np.mean(ratios) - TRUE_RATIO) < 3 * np.std(ratios) / np.sqrt(ratios.size)
    assert 0.6 < np.std(ratios) / np.median(errors) < 1.5, (np.std(ratios), np.median(errors))
