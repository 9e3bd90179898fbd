"""Cosmic-ray masks on injected hits, and the WCS solved for stars projected through a known
TAN-SIP WCS from a header WCS that is off by 4 arcsec and 0.3 degrees."""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from potpyri_core.defaults import potpyri_mask_cosmic_rays, potpyri_solve_wcs
from potpyri_core.frames import AmpFacts, Frame
from potpyri_core.params import AstrometryParams, CosmicRayParams
from potpyri_core.plugins import PluginManager

SHAPE = (700, 700)
SCALE = 0.16


def star_image(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, flux: np.ndarray,
               fwhm: float = 5.0) -> np.ndarray:
    """Gaussian stars (e-), rendered in stamps."""
    image = np.zeros(SHAPE)
    sigma = fwhm / 2.355
    for x, y, f in zip(xs, ys, flux, strict=True):
        x0, y0 = int(x) - 12, int(y) - 12
        yy, xx = np.mgrid[max(y0, 0):min(y0 + 25, SHAPE[0]), max(x0, 0):min(x0 + 25, SHAPE[1])]
        image[yy, xx] += f / (2 * np.pi * sigma**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return image


def frame_of(data: np.ndarray, variance: np.ndarray, header: fits.Header | None = None) -> Frame:
    return Frame(data=data.astype(np.float32), variance=variance.astype(np.float32),
                 mask=np.zeros(SHAPE, np.uint16), header=header or fits.Header(),
                 amps=[AmpFacts("A", 1.0, 4.0, 2e5)], amp_map=np.zeros(SHAPE, np.uint8))


def test_cosmic_rays_are_flagged_and_stars_are_not():
    rng = np.random.default_rng(50)
    n = 120
    xs, ys = rng.uniform(20, 680, n), rng.uniform(20, 680, n)
    light = star_image(rng, xs, ys, 10 ** rng.uniform(3.5, 5.5, n))
    sky = 1000.0
    data = rng.poisson(sky + light) + rng.normal(0, 4.0, SHAPE)
    hits = np.zeros(SHAPE, bool)
    for _ in range(80):  # single pixels and short tracks, 5-19 sigma above the sky
        y, x = rng.integers(5, 695, 2)
        length = rng.integers(1, 5)
        hits[y, x:x + length] = True
    data = np.where(hits, data + rng.uniform(150, 600, SHAPE), data)
    frame = frame_of(data, sky + light + 16.0)
    crs = potpyri_mask_cosmic_rays(instrument=None, frame=frame, params=CosmicRayParams())
    assert crs[hits].mean() > 0.95  # measured 0.986 (at twice the threshold: 0.84)
    cores = np.zeros(SHAPE, bool)
    for x, y in zip(xs, ys, strict=True):
        cy, cx = round(y), round(x)
        cores[cy - 2:cy + 3, cx - 2:cx + 3] = True
    assert crs[cores & ~hits].mean() < 0.01
    grown = np.zeros(SHAPE, bool)
    for y, x in np.argwhere(hits):
        grown[y - 2:y + 3, x - 2:x + 3] = True
    assert (crs & ~grown).sum() < 0.002 * crs.size  # false hits elsewhere


def true_wcs() -> WCS:
    header = fits.Header()
    header.update({"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP", "CRVAL1": 150.1, "CRVAL2": 2.2,
                   "CRPIX1": 350.5, "CRPIX2": 350.5, "CD1_1": -SCALE / 3600, "CD1_2": 0.0, "CD2_1": 0.0,
                   "CD2_2": SCALE / 3600, "A_ORDER": 3, "B_ORDER": 3,
                   # ~2 px of distortion at the corners
                   "A_2_0": 2e-6, "A_0_2": -1.5e-6, "A_3_0": 8e-9, "B_1_1": 3e-6, "B_0_3": -6e-9, "B_2_1": 4e-9})
    return WCS(header)


def test_solved_wcs_maps_every_pixel_to_the_true_sky():
    rng = np.random.default_rng(60)
    truth = true_wcs()
    n = 260
    xs, ys = rng.uniform(10, 690, n), rng.uniform(10, 690, n)
    mag = rng.uniform(16, 21, n)
    flux = 10 ** (-0.4 * (mag - 26.0))
    light = star_image(rng, xs, ys, flux)
    sky = 500.0
    data = rng.poisson(sky + light) - sky + rng.normal(0, 4.0, SHAPE)
    # header WCS: TAN only, 4" off, rotated 0.3 deg
    guess = WCS(naxis=2)
    guess.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    guess.wcs.crval = [150.1 + 3.0 / 3600 / np.cos(np.radians(2.2)), 2.2 - 2.6 / 3600]
    guess.wcs.crpix = [350.5, 350.5]
    a = np.radians(0.3)
    s = SCALE / 3600
    guess.wcs.cd = [[-s * np.cos(a), s * np.sin(a)], [s * np.sin(a), s * np.cos(a)]]
    frame = frame_of(data, sky + light + 16.0, guess.to_header())
    world = truth.pixel_to_world(xs, ys)
    reference = Table({"ra": world.ra.deg, "dec": world.dec.deg, "mag_r": mag})
    gmos = PluginManager().instrument("GMOS-N")  # the settings of a real imager, without its distortion
    camera = gmos.model_copy(update={"header_wcs": gmos.header_wcs.model_copy(update={"distortion_k3": 0.0})})
    solution = potpyri_solve_wcs(instrument=camera, frame=frame, reference=reference, params=AstrometryParams())
    assert solution.n_matched > 80
    gx, gy = np.meshgrid(np.linspace(0, 699, 15), np.linspace(0, 699, 15))
    sky_true = truth.pixel_to_world(gx.ravel(), gy.ravel())
    sky_fit = solution.wcs.pixel_to_world(gx.ravel(), gy.ravel())
    sep = sky_fit.separation(sky_true).arcsec
    assert np.sqrt(np.mean(sep**2)) < 0.2 * SCALE, sep.max()
    assert sep.max() < 0.5 * SCALE
    assert solution.rms_ra < 0.1 * SCALE + 0.01 and solution.rms_dec < 0.1 * SCALE + 0.01
