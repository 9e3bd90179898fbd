"""Resampling (flux, positions, variance vs Monte Carlo, mask bits, units) and weighted
clipped stacking with unequal variances."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from potpyri_core.defaults import potpyri_resample, potpyri_stack
from potpyri_core.frames import Frame
from potpyri_core.maskbits import Bit
from potpyri_core.params import ResampleParams, StackParams
from potpyri_core.stages.resample import output_grid

SCALE = 0.2  # arcsec per pixel
SHAPE = (200, 220)
CENTER = SkyCoord(150.1, 2.2, unit="deg")


def tilted_wcs(angle_deg: float = 0.7, shift: tuple[float, float] = (3.3, -2.6)) -> WCS:
    """An input-frame WCS: rotated, shifted, same pixel scale as the output grid."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [CENTER.ra.deg, CENTER.dec.deg]
    wcs.wcs.crpix = [(SHAPE[1] + 1) / 2 + shift[0], (SHAPE[0] + 1) / 2 + shift[1]]
    a = np.radians(angle_deg)
    s = SCALE / 3600
    wcs.wcs.cd = [[-s * np.cos(a), s * np.sin(a)], [s * np.sin(a), s * np.cos(a)]]
    return wcs


def gaussian(x0: float, y0: float, flux: float, sigma: float = 2.0) -> np.ndarray:
    yy, xx = np.indices(SHAPE, dtype=float)
    return flux / (2 * np.pi * sigma**2) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))


def solved_frame(data: np.ndarray, variance: np.ndarray, mask: np.ndarray, exptime: float) -> Frame:
    header = tilted_wcs().to_header()
    header["EXPTIME"] = exptime
    return Frame(data=data.astype(np.float32), variance=variance.astype(np.float32), mask=mask, header=header)


def grid() -> tuple[fits.Header, tuple[int, int]]:
    shape = (180, 180)
    return output_grid(CENTER, shape, SCALE).to_header(), shape


def test_resampled_source_keeps_its_flux_and_sky_position_in_electrons_per_second():
    exptime = 120.0
    in_wcs = tilted_wcs()
    star = in_wcs.pixel_to_world(97.3, 104.6)
    data = gaussian(97.3, 104.6, 1e5)
    out = potpyri_resample(instrument=None, frame=solved_frame(data, np.ones(SHAPE), np.zeros(SHAPE, np.uint16),
                                                               exptime), grid=grid()[0], shape=grid()[1],
                           params=ResampleParams())
    assert out.data.sum() == pytest.approx(1e5 / exptime, rel=3e-3)  # bilinear: 0.1% for sigma = 2 px
    yy, xx = np.indices(out.data.shape)
    cx, cy = (xx * out.data).sum() / out.data.sum(), (yy * out.data).sum() / out.data.sum()
    ex, ey = WCS(grid()[0]).world_to_pixel(star)
    assert np.hypot(cx - ex, cy - ey) < 0.02  # pixels


def test_propagated_variance_matches_monte_carlo():
    rng = np.random.default_rng(8)
    xx = np.indices(SHAPE)[1]
    variance = 50.0 + 100.0 * xx / SHAPE[1]  # unequal variances across the frame
    header, shape = grid()
    runs, predicted = [], None
    for _ in range(300):
        noise = rng.normal(0.0, np.sqrt(variance))
        out = potpyri_resample(instrument=None, frame=solved_frame(noise, variance, np.zeros(SHAPE, np.uint16), 1.0),
                               grid=header, shape=shape, params=ResampleParams())
        runs.append(out.data)
        predicted = out.variance
    measured = np.var(np.stack(runs), axis=0, ddof=1)
    inner = np.s_[20:-20, 20:-20]
    ratio = measured[inner] / predicted[inner]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.03)
    # also where the interpolation weights are unequal (not only on average)
    sub = np.abs(ratio - 1.0) < 0.3
    assert sub.mean() > 0.98


def test_mask_bits_are_carried_unchanged():
    mask = np.zeros(SHAPE, np.uint16)
    mask[100, 100] = Bit.BAD
    mask[101, 100] = Bit.BAD
    mask[60, 60] = Bit.COSMIC_RAY | Bit.SATURATED
    header, shape = grid()
    out = potpyri_resample(instrument=None, frame=solved_frame(np.zeros(SHAPE), np.ones(SHAPE), mask, 1.0),
                           grid=header, shape=shape, params=ResampleParams())
    inside = (out.mask & Bit.NO_DATA) == 0
    values = set(np.unique(out.mask[inside]).tolist())
    assert values == {0, int(Bit.BAD), int(Bit.COSMIC_RAY | Bit.SATURATED)}
    # the output pixels flagged are those that touch the flagged input pixels
    ex, ey = WCS(header).world_to_pixel(tilted_wcs().pixel_to_world(100, 100.5))
    bad = np.argwhere(out.mask == Bit.BAD)
    assert np.all(np.hypot(bad[:, 1] - ex, bad[:, 0] - ey) < 2.5)


def test_weighted_stack_of_unequal_variances_is_optimal_and_clips_outliers():
    rng = np.random.default_rng(12)
    shape = (120, 120)
    truth = 10.0
    sigmas = [1.0, 1.0, 2.0, 4.0, 4.0]
    frames = []
    for i, sigma in enumerate(sigmas):
        data = truth + rng.normal(0.0, sigma, shape)
        mask = np.zeros(shape, np.uint16)
        if i == 0:
            data[10:14, 10:14] += 500.0  # an unflagged hit in one frame
            mask[50, 50] = Bit.COSMIC_RAY  # a flagged hit: its value must never count
            data[50, 50] = 1e6
        frames.append(Frame(data=data.astype(np.float32), variance=np.full(shape, sigma**2, np.float32), mask=mask,
                            header=fits.Header()))
    out = potpyri_stack(instrument=None, frames=frames, params=StackParams())
    optimal = 1.0 / np.sum(1.0 / np.square(sigmas))
    clean = np.ones(shape, bool)
    clean[8:16, 8:16] = False
    clean[50, 50] = False
    # the scatter of the stack is the optimal (inverse-variance) one, and its variance says so
    assert np.var(out.data[clean] - truth) == pytest.approx(optimal, rel=0.1)
    assert np.median(out.variance[clean]) == pytest.approx(optimal, rel=0.02)
    assert abs(np.mean(out.data[clean]) - truth) < 4 * np.sqrt(optimal / clean.sum())
    assert np.all(np.abs(out.data[10:14, 10:14] - truth) < 5 * np.sqrt(optimal * 2))
    assert abs(out.data[50, 50] - truth) < 6.0
    assert out.meta["nframes"][50, 50] == len(frames) - 1
    assert out.mask[50, 50] == 0


@pytest.mark.parametrize("backend", ["reproject_interp", "reproject_adaptive"])
def test_reproject_backends_keep_flux_position_and_mask_bits(backend: str) -> None:
    exptime = 120.0
    in_wcs = tilted_wcs()
    star = in_wcs.pixel_to_world(97.3, 104.6)
    mask = np.zeros(SHAPE, np.uint16)
    mask[60, 60] = Bit.COSMIC_RAY | Bit.SATURATED
    mask[:, :40] = Bit.NO_DATA
    data = gaussian(97.3, 104.6, 1e5)
    data[60, 60] = 1e6  # a flagged hit: its value must not reach the output
    header, shape = grid()
    out = potpyri_resample(instrument=None, frame=solved_frame(data, np.ones(SHAPE), mask, exptime), grid=header,
                           shape=shape, params=ResampleParams(backend=backend))
    assert out.data.sum() == pytest.approx(1e5 / exptime, rel=5e-3)
    yy, xx = np.indices(out.data.shape)
    cx, cy = (xx * out.data).sum() / out.data.sum(), (yy * out.data).sum() / out.data.sum()
    ex, ey = WCS(header).world_to_pixel(star)
    assert np.hypot(cx - ex, cy - ey) < 0.03
    hit = WCS(header).world_to_pixel(in_wcs.pixel_to_world(60, 60))
    flagged = np.argwhere(out.mask & Bit.COSMIC_RAY)
    # bilinear: the 2 x 2 output pixels around the hit; adaptive: its ~2 px anti-aliasing kernel
    limit, radius = (4, 1.5) if backend == "reproject_interp" else (20, 3.0)
    assert 1 <= len(flagged) <= limit and np.all(np.hypot(flagged[:, 1] - hit[0], flagged[:, 0] - hit[1]) < radius)
    assert np.all(out.mask[tuple(flagged.T)] & Bit.SATURATED)
    assert not np.any(out.mask[tuple(flagged.T)] & Bit.NO_DATA)
    near = np.hypot(xx - hit[0], yy - hit[1]) < 6  # no star light there: only the hit could leak
    assert np.abs(out.data[near & ((out.mask & Bit.COSMIC_RAY) == 0)]).max() < 1e-3
    # a NO_DATA band of the frame (columns 0-39) is NO_DATA in the output, and only there
    band = WCS(header).world_to_pixel(in_wcs.pixel_to_world(np.full(50, 32.0), np.linspace(40, 160, 50)))
    assert band[0].min() > 5
    assert np.all(out.mask[np.round(band[1]).astype(int), np.round(band[0]).astype(int)] & Bit.NO_DATA)
    assert not (out.mask[60:120, 60:120] & Bit.NO_DATA).any()


def test_reproject_interp_variance_is_not_the_true_noise() -> None:
    """The reason the core's resampling is the default: reproject resamples the variance
    like the data, so its ERROR overestimates the noise of the resampled frame."""
    rng = np.random.default_rng(9)
    variance = np.full(SHAPE, 100.0)
    header, shape = grid()
    runs, predicted = [], None
    for _ in range(150):
        out = potpyri_resample(instrument=None, frame=solved_frame(rng.normal(0.0, 10.0, SHAPE), variance,
                                                                   np.zeros(SHAPE, np.uint16), 1.0),
                               grid=header, shape=shape, params=ResampleParams(backend="reproject_interp"))
        runs.append(out.data)
        predicted = out.variance
    inner = np.s_[20:-20, 20:-20]
    ratio = np.var(np.stack(runs), axis=0, ddof=1)[inner] / predicted[inner]
    assert np.median(predicted[inner]) == pytest.approx(100.0, rel=0.01)
    assert np.median(ratio) < 0.8  # the true variance is sum w^2 var < sum w var
