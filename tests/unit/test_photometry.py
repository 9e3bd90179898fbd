"""Aperture and PSF photometry pulls on a synthetic stack, and the zero point on a synthetic
catalog with a known offset.

The stack is drawn here: Moffat stars (beta 3, FWHM 5 px, integrated over each pixel) of
known total flux on a grid, Poisson noise of sky plus star in electrons, converted to e-/s.
For correct fluxes and errors the pulls ``(flux - true) / flux_err`` are N(0, 1): median
``|pull|`` 0.674 and median pull 0. With ~260 stars the standard error of the median
``|pull|`` is 0.05, so the tolerance 0.1 is 2 standard errors; a 20% error on the errors
moves it by 0.13-0.17. The median pull must be within 0.25 of 0 (3 standard errors of a
median of ~260 N(0, 1) values: fluxes unbiased to 0.25 sigma, 0.2-1.2% over this S/N range;
measured: median |pull| 0.73 and 0.75, median pull +0.03 and -0.16, RMS
1.07 and 1.10 for apertures and PSF fits on 256 stars).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.wcs import WCS

from potpyri_core.params import PhotometryParams
from potpyri_core.stages.photometry import aperture_photometry_stack, zero_point
from potpyri_core.stages.psfphot import psf_photometry_stack
from potpyri_core.stages.resample import output_grid

SIDE = 640
SPACING = 36
FWHM = 5.0
BETA = 3.0
EXPTIME = 100.0
SKY_E = 800.0  # per pixel per frame


def moffat_pixels(x0: float, y0: float, total: float, size: int = 41, sub: int = 5) -> tuple[np.ndarray, int, int]:
    """A Moffat star integrated over pixels (``sub`` x ``sub`` sampling), normalised to ``total``
    over the whole plane (the light beyond the stamp is left out, as on the sky)."""
    alpha = FWHM / (2 * np.sqrt(2 ** (1 / BETA) - 1))
    ix, iy = round(x0), round(y0)
    offsets = (np.arange(size * sub) + 0.5) / sub - size / 2
    xx, yy = np.meshgrid(ix + offsets - x0, iy + offsets - y0)
    profile = (BETA - 1) / (np.pi * alpha**2) * (1 + (xx**2 + yy**2) / alpha**2) ** (-BETA)
    stamp = profile.reshape(size, sub, size, sub).mean(axis=(1, 3)) * total
    return stamp, ix - size // 2, iy - size // 2


@pytest.fixture(scope="module")
def stack() -> dict:
    rng = np.random.default_rng(30)
    centres = np.arange(SPACING, SIDE - SPACING + 1, SPACING, dtype=float)
    xs, ys = (v.ravel() + rng.uniform(-0.5, 0.5, v.size) for v in np.meshgrid(centres, centres))
    # total fluxes (e-/s) for aperture S/N ~ 20 to ~150, where photon noise dominates: below,
    # centroid noise costs a 1-FWHM aperture flux (-2.7% at S/N 8-20); above, the aperture
    # correction's own 0.1% error is a fair fraction of sigma
    flux = 10 ** rng.uniform(np.log10(90.0), np.log10(900.0), xs.size)
    light = np.zeros((SIDE, SIDE))
    for x, y, f in zip(xs, ys, flux, strict=True):
        stamp, x0, y0 = moffat_pixels(x, y, f * EXPTIME)
        light[y0:y0 + stamp.shape[0], x0:x0 + stamp.shape[1]] += stamp
    electrons = rng.poisson(SKY_E + light) - SKY_E
    data = (electrons / EXPTIME).astype(np.float32)
    variance = ((SKY_E + light) / EXPTIME**2).astype(np.float32)
    mask = np.zeros((SIDE, SIDE), np.uint16)
    wcs = output_grid(SkyCoord(150.1, 2.2, unit="deg"), (SIDE, SIDE), 0.16)
    result = aperture_photometry_stack(data, variance, mask, wcs, PhotometryParams(fwhm_init=FWHM))
    truth = Table({"x": xs, "y": ys, "flux": flux})
    return {"data": data, "variance": variance, "mask": mask, "wcs": wcs, "result": result, "truth": truth}


def pulls(table: Table, truth: Table, snr_min: float = 8.0) -> np.ndarray:
    """(measured - true) / error of every measured source matched to a true star (< 1 px)."""
    good = table[(np.asarray(table["snr"]) > snr_min) & (np.asarray(table["flags"]) == 0)]
    d = np.hypot(np.asarray(good["x"])[:, None] - np.asarray(truth["x"])[None],
                 np.asarray(good["y"])[:, None] - np.asarray(truth["y"])[None])
    nearest = np.argmin(d, axis=1)
    ok = d[np.arange(len(good)), nearest] < 1.0
    true = np.asarray(truth["flux"])[nearest[ok]]
    return (np.asarray(good["flux"])[ok] - true) / np.asarray(good["flux_err"])[ok]


def test_aperture_flux_pulls_are_standard_normal(stack):
    result = stack["result"]
    assert result.fwhm == pytest.approx(FWHM, rel=0.08)  # pixel-integrated Moffat: ~5% wider
    p = pulls(result.table, stack["truth"])
    assert p.size > 200
    assert abs(np.median(np.abs(p)) - 0.674) < 0.1, np.median(np.abs(p))
    assert abs(np.median(p)) < 0.25, np.median(p)
    # white noise: empty apertures see the summed pixel variance
    assert result.noise_correlation == pytest.approx(1.0, abs=0.15)


def test_psf_flux_pulls_are_standard_normal(stack):
    out = psf_photometry_stack(stack["data"], stack["variance"], stack["mask"], stack["wcs"], stack["result"])
    assert out.psf_table is not None
    psf = out.psf_table.copy()
    psf["flags"] = np.asarray(stack["result"].table["flags"])[np.asarray(psf["ap_index"], int)]
    p = pulls(psf, stack["truth"])
    assert p.size > 200
    assert abs(np.median(np.abs(p)) - 0.674) < 0.1, np.median(np.abs(p))
    assert abs(np.median(p)) < 0.25, np.median(p)


def test_zero_point_recovers_a_known_offset_despite_outliers():
    rng = np.random.default_rng(40)
    n = 200
    true_zp = 27.93
    ra = 150.1 + rng.uniform(-0.05, 0.05, n)
    dec = 2.2 + rng.uniform(-0.05, 0.05, n)
    mag = rng.uniform(16.0, 22.0, n)
    mag_err = 0.003 * 10 ** (0.2 * (mag - 16.0))  # S/N ~ 360 down to ~23
    inst = mag - true_zp + rng.normal(0.0, mag_err)
    inst[:10] -= 0.7  # blends / variables: brighter than the catalog says
    sources = Table({"ra": ra, "dec": dec, "mag_inst": inst, "mag_err": mag_err, "snr": 1.0857 / mag_err,
                     "flags": np.zeros(n, int), "elongation": np.ones(n)})
    reference = Table({"ra": ra + rng.normal(0, 0.1, n) / 3600, "dec": dec + rng.normal(0, 0.1, n) / 3600,
                       "mag_r": mag, "err_r": np.full(n, 0.01)})
    out = zero_point(sources, reference, "r")
    assert out["ZPTMAG"] == pytest.approx(true_zp, abs=3 * out["ZPTMUCER"])
    assert out["ZPTMUCER"] < 0.003
    assert 150 < out["ZPTNSTAR"] <= n - 10


def test_zero_point_catalog_and_stack_on_one_wcs(stack):
    """Measured magnitudes of the synthetic stack with a known zero point, end to end through
    the aperture catalog: ZPTMAG is the one the catalog magnitudes were made with."""
    truth = stack["truth"]
    wcs: WCS = stack["wcs"]
    sky = wcs.pixel_to_world(np.asarray(truth["x"]), np.asarray(truth["y"]))
    true_zp = 26.5
    reference = Table({"ra": sky.ra.deg, "dec": sky.dec.deg, "mag_r": true_zp - 2.5 * np.log10(truth["flux"]),
                       "err_r": np.full(len(truth), 0.01)})
    out = zero_point(stack["result"].table, reference, "r")
    assert out["ZPTMAG"] == pytest.approx(true_zp, abs=max(3 * out["ZPTMUCER"], 0.01))
