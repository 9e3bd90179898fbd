"""WCS fitting against star positions projected through a known TAN-SIP WCS.

The stars are put on the sky by astropy's own ``all_pix2world`` of a WCS built here from an
explicit rotation matrix and SIP coefficients, so the expectation does not go through the code
under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS, Sip

from potpyri_core.stages.header_wcs import inverse_sip
from potpyri_core.stages.wcsfit import FitError, fit_wcs, from_tangent_plane, model_for, tangent_plane

SHAPE = (1200, 1600)
SCALE = 0.16  # arcsec / px
K3 = 2.0 / 1000.0**3  # 2 px radial displacement at r = 1000 px


def _wcs(angle_deg: float, flip: bool, crval, k3: float, extra_a20: float = 0.0) -> WCS:
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    cd = SCALE / 3600.0 * np.array([[-c, s], [s, c]])
    if flip:
        cd[:, 0] *= -1
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    w.wcs.crpix = [(SHAPE[1] + 1) / 2, (SHAPE[0] + 1) / 2]
    w.wcs.crval = list(crval)
    w.wcs.cd = cd
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[3, 0] = a[1, 2] = b[0, 3] = b[2, 1] = k3
    a[2, 0] = extra_a20
    ap, bp = inverse_sip(a, b, 900.0)
    w.sip = Sip(a, b, ap, bp, w.wcs.crpix)
    w.pixel_shape = (SHAPE[1], SHAPE[0])
    w.wcs.set()
    return w


def _stars(true: WCS, n: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xy = np.column_stack([rng.uniform(10, SHAPE[1] - 10, n), rng.uniform(10, SHAPE[0] - 10, n)])
    sky = true.all_pix2world(xy, 0)
    return xy + rng.normal(0, 0.02, xy.shape), sky[:, 0], sky[:, 1]


def _max_error(solved: WCS, true: WCS) -> float:
    grid = np.array([[x, y] for x in np.linspace(0, SHAPE[1] - 1, 9) for y in np.linspace(0, SHAPE[0] - 1, 7)])
    a = SkyCoord(*true.all_pix2world(grid, 0).T, unit="deg")
    b = SkyCoord(*solved.all_pix2world(grid, 0).T, unit="deg")
    return float(a.separation(b).arcsec.max())


def _start(true: WCS, rng, shift_arcsec=0.8, rot_deg=0.05) -> WCS:
    start = true.deepcopy()
    ra, dec = from_tangent_plane(rng.normal(0, shift_arcsec, (1, 2)), *true.wcs.crval)
    start.wcs.crval = [float(ra[0]), float(dec[0])]
    c, s = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    start.wcs.cd = np.array([[c, -s], [s, c]]) @ true.wcs.cd * 1.001
    start.wcs.set()
    return start


def test_tangent_plane_round_trip():
    rng = np.random.default_rng(0)
    ra, dec = 150 + rng.uniform(-0.1, 0.1, 20), 60 + rng.uniform(-0.1, 0.1, 20)
    back = from_tangent_plane(tangent_plane(ra, dec, 150.02, 59.97), 150.02, 59.97)
    assert np.allclose(back[0], ra, atol=1e-10) and np.allclose(back[1], dec, atol=1e-10)


def test_models_freed_with_star_count():
    assert model_for(5, 12, {2: 40, 3: 80}) == ("similarity", 0)
    assert model_for(20, 12, {2: 40, 3: 80}) == ("affine", 0)
    assert model_for(50, 12, {2: 40, 3: 80}) == ("sip2", 2)
    assert model_for(100, 12, {2: 40, 3: 80}) == ("sip3", 3)


@pytest.mark.parametrize("seed", range(6))
def test_few_stars_on_known_distortion(seed):
    """6 stars, any rotation and parity: shift/rotation/scale on the known distortion."""
    rng = np.random.default_rng(seed)
    true = _wcs(rng.uniform(0, 360), bool(seed % 2), (rng.uniform(0, 360), rng.uniform(-80, 80)), K3)
    xy, ra, dec = _stars(true, 6, rng)
    fit = fit_wcs(_start(true, rng), xy, ra, dec, SHAPE, match_radius=2.0, min_matched=5, affine_min=12,
                  sip_min={2: 40, 3: 80})
    assert fit.model == "similarity" and len(fit.source_index) == 6
    assert _max_error(fit.wcs, true) < 0.03


def test_many_stars_free_an_unknown_distortion_term():
    """300 stars and a quadratic term the known model lacks: freed SIP orders absorb it."""
    rng = np.random.default_rng(11)
    true = _wcs(33.0, False, (210.0, -40.0), K3, extra_a20=1.5e-6)  # 1.5 px at the corner
    xy, ra, dec = _stars(true, 300, rng)
    known = _wcs(33.0, False, (210.0, -40.0), K3)
    fit = fit_wcs(_start(known, rng), xy, ra, dec, SHAPE, match_radius=3.0, min_matched=5, affine_min=12,
                  sip_min={2: 40, 3: 80})
    assert fit.model == "sip3"
    assert _max_error(fit.wcs, true) < 0.02
    assert fit.rms < 0.01


def test_too_few_stars_is_an_error():
    rng = np.random.default_rng(3)
    true = _wcs(10.0, False, (10.0, 10.0), K3)
    xy, ra, dec = _stars(true, 4, rng)
    with pytest.raises(FitError, match="only 4 stars"):
        fit_wcs(_start(true, rng), xy, ra, dec, SHAPE, 2.0, 5, 12, {2: 40})
