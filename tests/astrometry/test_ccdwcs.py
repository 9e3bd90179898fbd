"""Astrometry per CCD: the similarity map of each CCD, its header cards and the resampling
through it.

Truth is built here from explicit rotation matrices (not through the code under test): star
positions on a CCD are moved by a known rotation and shift about the CCD centre to where the
frame's WCS sees them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.wcs import WCS

from potpyri_core.frames import AmpFacts, Frame
from potpyri_core.plugins import PluginManager
from potpyri_core.stages import ccdwcs, resample

BOX = (0, 1024, 0, 400)
CENTRE = np.array([511.5, 199.5])


def _rotate(xy: np.ndarray, centre: np.ndarray, deg: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return centre + np.asarray(shift) + (xy - centre) @ np.array([[c, -s], [s, c]]).T


def test_fit_recovers_a_deimos_rotation_and_shift():
    rng = np.random.default_rng(4)
    stars = np.column_stack([rng.uniform(10, 1014, 80), rng.uniform(10, 390, 80)])
    truth = _rotate(stars, CENTRE, 0.136, (0.7, -1.3))
    # the frame WCS alone is wrong by more than a pixel at the CCD's ends
    assert np.max(np.hypot(*(truth - stars).T)) > 1.5
    distractors = np.column_stack([rng.uniform(0, 1024, 30), rng.uniform(0, 400, 30)])
    reference = np.vstack([truth, distractors])
    detected = stars + rng.normal(0.0, 0.05, stars.shape)
    m = ccdwcs.fit_ccd(detected, reference, 4, BOX, radius_px=6.0, min_stars=5)
    assert m.rotation_deg == pytest.approx(0.136, abs=0.004)
    assert np.max(np.hypot(*(m.forward(stars) - truth).T)) < 0.05
    assert m.n_stars >= 75
    assert m.rms < 0.12


def test_fit_needs_enough_stars():
    stars = np.array([[100.0, 100.0], [300.0, 200.0], [600.0, 50.0]])
    with pytest.raises(ccdwcs.CCDFitError, match="only 3 stars"):
        ccdwcs.fit_ccd(stars, stars + 0.2, 0, BOX, radius_px=6.0, min_stars=5)


def test_inverse_map_and_ccd_membership():
    maps = [ccdwcs.CCDMap(0, (0, 100, 0, 80), (49.5, 39.5), (1.0, -0.5), ((1.0, -0.01), (0.01, 1.0))),
            ccdwcs.CCDMap(1, (110, 210, 0, 80), (159.5, 39.5), (-2.0, 0.3), ((1.0, 0.02), (-0.02, 1.0)))]
    pts = np.array([[5.0, 5.0], [60.0, 70.0], [120.0, 10.0], [200.0, 75.0]])
    frame_xy = np.vstack([maps[0].forward(pts[:2]), maps[1].forward(pts[2:])])
    x, y = ccdwcs.to_ccd_pixels(maps, frame_xy[:, 0], frame_xy[:, 1])
    np.testing.assert_allclose(np.column_stack([x, y]), pts, atol=1e-9)
    # a gap position that no CCD claims is left as it is
    gx, gy = ccdwcs.to_ccd_pixels(maps, np.array([105.0]), np.array([40.0]))
    assert (gx[0], gy[0]) == (105.0, 40.0)


def test_cards_round_trip_and_removal():
    maps = [ccdwcs.CCDMap(3, (3212, 4236, 0, 400), (3723.5, 199.5), (0.25, -1.5), ((0.9999, -0.0021), (0.0021, 0.9999)),
                          57, 0.08),
            ccdwcs.CCDMap(5, (1073, 2097, 422, 822), (1584.5, 621.5))]
    header = ccdwcs.map_cards(maps)
    header["OTHER"] = 1
    back = ccdwcs.maps_from_header(header)
    assert back == maps
    ccdwcs.remove_cards(header)
    assert list(header.keys()) == ["OTHER"]


def test_ccd_boxes_from_the_amplifier_map():
    settings = PluginManager().instrument("DEIMOS")
    amp_map = np.full((30, 50), 255, np.uint8)
    amp_map[2:28, 0:20] = 0
    amp_map[0:25, 26:50] = 1
    amps = [AmpFacts("8amp-1", 1.2, 2.5, 7e4), AmpFacts("8amp-6", 1.2, 2.5, 7e4)]
    frame = Frame(np.zeros((30, 50), np.float32), np.ones((30, 50), np.float32), np.zeros((30, 50), np.uint16),
                  WCS(naxis=2).to_header(), amps=amps, amp_map=amp_map)
    assert ccdwcs.ccd_boxes(frame, settings) == {0: (0, 20, 2, 28), 5: (26, 50, 0, 25)}


def _sky_wcs(shape: tuple[int, int], scale: float) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    w.wcs.cdelt = [-scale / 3600, scale / 3600]
    w.array_shape = shape
    w.wcs.set()
    return w


def _gaussian(shape, xy, sigma=1.5):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape, np.float64)
    for x, y in xy:
        image += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return image


def _centroid(image, x, y, r=5):
    x0, y0 = round(x), round(y)
    cut = image[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1]
    yy, xx = np.mgrid[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1]
    return float((cut * xx).sum() / cut.sum()), float((cut * yy).sum() / cut.sum())


def test_resampling_puts_each_ccds_stars_where_its_own_map_says():
    shape = (120, 260)
    frame_wcs = _sky_wcs(shape, 0.25)
    maps = [ccdwcs.CCDMap(0, (0, 120, 0, 120), (59.5, 59.5)),
            ccdwcs.CCDMap(1, (140, 260, 0, 120), (199.5, 59.5), (1.6, -0.9),
                          ((math.cos(math.radians(0.8)), -math.sin(math.radians(0.8))),
                           (math.sin(math.radians(0.8)), math.cos(math.radians(0.8)))))]
    on_ccd = np.array([[30.0, 30.0], [90.0, 95.0], [160.0, 20.0], [235.0, 100.0]])
    image = _gaussian(shape, on_ccd).astype(np.float32)
    image[:, 120:140] = 0.0
    mask = np.zeros(shape, np.uint16)
    # where each star really is on the sky: CCD pixel -> its map -> frame WCS
    frame_xy = np.vstack([maps[0].forward(on_ccd[:2]), maps[1].forward(on_ccd[2:])])
    sky = frame_wcs.pixel_to_world(frame_xy[:, 0], frame_xy[:, 1])
    out_wcs = _sky_wcs((140, 280), 0.25)
    out_wcs.wcs.crval = [150.0005, 2.0003]
    out_wcs.wcs.set()
    expected = np.column_stack(out_wcs.world_to_pixel(sky))
    for with_maps, tolerance in ((True, 0.03), (False, None)):
        data, _, _ = resample.resample(image, np.ones(shape, np.float32), mask, frame_wcs, out_wcs, (140, 280),
                                       step=8, ccd_maps=maps if with_maps else None)
        found = np.array([_centroid(data, x, y) for x, y in expected])
        error = np.hypot(*(found - expected).T)
        if with_maps:
            assert np.all(error < tolerance), error
        else:
            assert error[2:].max() > 1.0  # one WCS for the frame puts CCD 1's stars pixels off
