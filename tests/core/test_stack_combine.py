"""The stack combination on synthetic frames with known noise."""

from __future__ import annotations

import numpy as np
import pytest

from potpyri_core.maskbits import Bit
from potpyri_core.stages.stack import combine


def _frames(n: int = 5, shape=(200, 200), sigma: float = 2.0, seed: int = 1):
    rng = np.random.default_rng(seed)
    datas = [rng.normal(10.0, sigma, shape).astype(np.float32) for _ in range(n)]
    variances = [np.full(shape, sigma**2, np.float32) for _ in range(n)]
    masks = [np.zeros(shape, np.uint16) for _ in range(n)]
    return datas, variances, masks


def test_weighted_mean_noise_matches_its_variance():
    datas, variances, masks = _frames()
    data, var, mask, nframes = combine(datas, variances, masks, [1.0] * 5)
    assert abs(np.mean(data) - 10.0) < 0.02
    assert np.std(data) / np.sqrt(np.median(var)) == pytest.approx(1.0, abs=0.05)
    assert (nframes == 5).mean() > 0.98 and not mask.any()


def test_outlier_is_clipped_and_masked_pixels_never_used():
    datas, variances, masks = _frames()
    datas[2][50, 50] = 1e4  # a cosmic ray nobody flagged
    masks[3][60, 60] = Bit.COSMIC_RAY
    datas[3][60, 60] = -1e4
    for m in masks:
        m[70, 70] = Bit.NO_DATA
    data, _, mask, nframes = combine(datas, variances, masks, [1.0] * 5)
    assert abs(data[50, 50] - 10.0) < 5 and nframes[50, 50] == 4
    assert abs(data[60, 60] - 10.0) < 5 and nframes[60, 60] == 4
    assert mask[70, 70] & Bit.NO_DATA and nframes[70, 70] == 0 and data[70, 70] == 0


def test_median_method_and_its_variance():
    datas, variances, masks = _frames(n=9, shape=(300, 300))
    data, var, _, _ = combine(datas, variances, masks, [1.0] * 9, method="median")
    # the variance of a median of n Gaussian values is ~ pi/2 sigma^2 / n
    assert np.std(data) / np.sqrt(np.median(var)) == pytest.approx(1.0, abs=0.1)
