"""PSF photometry on a small synthetic image: pixel-integrated Moffat stars plus noise."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from potpyri_core.stages import psfphot

FWHM = 3.5
BETA = 3.0
SKY_SIGMA = 2.0


def _moffat_pixels(shape: tuple[int, int], x0: float, y0: float, flux: float, sub: int = 5) -> np.ndarray:
    """A Moffat star integrated over pixels (``sub`` x ``sub`` samples per pixel)."""
    alpha = FWHM / (2.0 * np.sqrt(2.0 ** (1.0 / BETA) - 1.0))
    ny, nx = shape
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    image = np.zeros(shape)
    for dy in offsets:
        for dx in offsets:
            r2 = (xx + dx - x0) ** 2 + (yy + dy - y0) ** 2
            image += (BETA - 1.0) / (np.pi * alpha**2) * (1.0 + r2 / alpha**2) ** (-BETA)
    return flux * image / sub**2


@pytest.fixture(scope="module")
def field():
    """300 x 300 image with 42 isolated stars on a jittered grid, and their truth."""
    rng = np.random.default_rng(42)
    shape = (300, 300)
    gx, gy = np.meshgrid(np.linspace(25, 275, 7), np.linspace(25, 275, 6))
    x = gx.ravel() + rng.uniform(-5, 5, gx.size)
    y = gy.ravel() + rng.uniform(-5, 5, gy.size)
    flux = 10 ** rng.uniform(3.3, 6.0, x.size)
    pad = 30  # each star drawn in a 61 x 61 box (0.02% of its light falls outside)
    model = np.zeros((shape[0] + 2 * pad, shape[1] + 2 * pad))
    for xi, yi, fi in zip(x, y, flux):
        ix, iy = int(xi), int(yi)
        model[iy:iy + 2 * pad + 1, ix:ix + 2 * pad + 1] += _moffat_pixels((2 * pad + 1, 2 * pad + 1),
                                                                          xi - ix + pad, yi - iy + pad, fi)
    model = model[pad:-pad, pad:-pad]
    variance = SKY_SIGMA**2 + model
    data = model + rng.normal(0.0, 1.0, shape) * np.sqrt(variance)
    error = np.sqrt(variance)
    mask = np.zeros(shape, bool)
    mask[150, 0:40] = True  # a bad row far from any star centre
    # detection-quality first guesses: 0.2 px off, fluxes 5% off
    aperture = Table({"x": x + rng.uniform(-0.2, 0.2, x.size), "y": y + rng.uniform(-0.2, 0.2, x.size),
                      "flux": flux * 0.95, "snr": flux / np.sqrt(flux + 30 * SKY_SIGMA**2),
                      "elongation": np.ones(x.size), "flags": np.zeros(x.size, int)})
    return {"data": data, "error": error, "mask": mask, "x": x, "y": y, "flux": flux, "aperture": aperture}


def test_epsf_built_from_bright_isolated_stars(field):
    rows = psfphot.select_psf_stars(field["aperture"], FWHM)
    assert len(rows) >= 10
    assert (field["aperture"]["snr"][rows] > 50).all()
    xy = np.column_stack([field["aperture"]["x"], field["aperture"]["y"]])
    epsf, stars = psfphot.build_epsf(field["data"], field["error"], field["mask"], xy[rows], FWHM)
    assert len(stars) >= 10 and stars.meta["OVERSAMP"] == psfphot.EPSF_OVERSAMPLING
    assert stars.meta["CONVERGE"] and stars.meta["NITER"] < psfphot.EPSF_MAXITERS
    # pixel-integrated Moffat: FWHM a little above the intrinsic one; unit total flux
    assert abs(psfphot.epsf_fwhm(epsf.data, epsf.oversampling[0]) / FWHM - 1.0) < 0.1
    assert 0.98 < epsf.data.sum() / epsf.oversampling[0] ** 2 <= 1.0


def test_too_few_stars_raise(field):
    xy = np.column_stack([field["x"][:3], field["y"][:3]])
    with pytest.raises(ValueError, match="stars for the ePSF"):
        psfphot.build_epsf(field["data"], field["error"], field["mask"], xy, FWHM)


def test_psf_fluxes_and_positions(field):
    aperture = field["aperture"]
    rows = psfphot.select_psf_stars(aperture, FWHM)
    xy = np.column_stack([aperture["x"], aperture["y"]])
    epsf, _ = psfphot.build_epsf(field["data"], field["error"], field["mask"], xy[rows], FWHM)
    table, residual = psfphot.psf_photometry(field["data"], field["error"], field["mask"], epsf, xy, FWHM,
                                             flux_init=np.asarray(aperture["flux"]))
    assert len(table) == len(xy) and residual.shape == field["data"].shape and residual.dtype == np.float32
    for name in ("x", "y", "ra", "dec", "flux", "flux_err", "mag_inst", "mag_err", "qfit", "cfit", "flags"):
        assert name in table.colnames, name
    bright = field["flux"] > 1e5  # Poisson noise < 0.35%
    assert bright.sum() >= 10
    ratio = table["flux"][bright] / field["flux"][bright]
    assert np.all(np.abs(ratio - 1.0) < 0.01), ratio
    assert np.all(np.abs(table["x"][bright] - field["x"][bright]) < 0.05)
    assert np.all(np.abs(table["y"][bright] - field["y"][bright]) < 0.05)
    # all stars: errors describe the scatter; the residual holds almost no flux
    pull = (table["flux"] - field["flux"]) / table["flux_err"]
    assert 0.4 < np.median(np.abs(pull)) < 1.2, np.median(np.abs(pull))
    assert (table["flags"][bright] == 0).all()
    np.testing.assert_allclose(table["mag_inst"], -2.5 * np.log10(table["flux"]))
    iy, ix = np.round(field["y"]).astype(int), np.round(field["x"]).astype(int)
    core = np.array([residual[j - 3:j + 4, i - 3:i + 4].sum() for i, j in zip(ix, iy)])
    assert np.median(np.abs(core[bright]) / field["flux"][bright]) < 0.01
