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


def _rotate(xy: np.ndarray, centre: np.ndarray, deg: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return centre + np.asarray(shift) + (xy - centre) @ np.array([[c, -s], [s, c]]).T


BOXES = {0: (0, 1024, 0, 400), 4: (1060, 2084, 0, 400)}


def _truth(stars: np.ndarray, ccd_index: np.ndarray) -> np.ndarray:
    """Where the frame WCS sees each star: a smooth distortion error of the whole frame
    (quadratic, 1.2 px at the far end) plus CCD 4 rotated by 0.136 deg and shifted."""
    u = (stars[:, 0] - 1041.5) / 1042.0
    out = stars + np.column_stack([0.6 * u**2 + 0.2 * u, -0.4 * u**2])
    centre = np.array([1571.5, 199.5])
    on = ccd_index == 1
    out[on] = _rotate(out[on], centre, 0.136, (0.7, -1.3))
    return out


def _stars(rng, n=160):
    x = np.concatenate([rng.uniform(10, 1014, n // 2), rng.uniform(1070, 2074, n // 2)])
    y = rng.uniform(10, 390, n)
    return np.column_stack([x, y]), np.repeat([0, 1], n // 2)


def test_joint_fit_recovers_a_deimos_rotation_and_the_frame_distortion():
    rng = np.random.default_rng(4)
    stars, ccd_index = _stars(rng)
    truth = _truth(stars, ccd_index)
    # the frame WCS alone is wrong by more than a pixel
    assert np.max(np.hypot(*(truth - stars).T)) > 1.2
    distractors = np.column_stack([rng.uniform(0, 2084, 40), rng.uniform(0, 400, 40)])
    detected = stars + rng.normal(0.0, 0.03, stars.shape)
    maps = ccdwcs.joint_fit(detected, ccd_index, BOXES, np.vstack([truth, distractors]), radius_px=6.0,
                            min_stars=5)
    assert [m.ccd for m in maps.ccds] == [0, 4]
    assert maps.ccds[1].rotation_deg - maps.ccds[0].rotation_deg == pytest.approx(0.136, abs=0.004)
    error = np.hypot(*(maps.to_frame(stars) - truth).T)  # detections have 0.03 px noise per axis
    assert np.sqrt(np.mean(error**2)) < 0.02 and error.max() < 0.06
    assert all(m.n_stars >= 75 and m.rms < 0.08 for m in maps.ccds)


def test_joint_fit_needs_enough_stars():
    stars = np.array([[100.0, 100.0], [300.0, 200.0], [600.0, 50.0]])
    with pytest.raises(ccdwcs.CCDFitError, match="only 3 stars"):
        ccdwcs.joint_fit(stars, np.zeros(3, int), {0: BOXES[0]}, stars + 0.2, radius_px=6.0, min_stars=5)


def test_inverse_map_and_ccd_membership():
    rng = np.random.default_rng(1)
    stars, ccd_index = _stars(rng)
    maps = ccdwcs.joint_fit(stars, ccd_index, BOXES, _truth(stars, ccd_index), radius_px=6.0, min_stars=5)
    frame_xy = maps.to_frame(stars)
    x, y = maps.to_mosaic(frame_xy[:, 0], frame_xy[:, 1])
    np.testing.assert_allclose(np.column_stack([x, y]), stars, atol=1e-6)
    # a gap position that no CCD claims is left as it is
    gx, gy = maps.to_mosaic(np.array([1042.0]), np.array([200.0]))
    assert (gx[0], gy[0]) == (1042.0, 200.0)


def test_cards_round_trip_and_removal():
    rng = np.random.default_rng(2)
    stars, ccd_index = _stars(rng)
    maps = ccdwcs.joint_fit(stars, ccd_index, BOXES, _truth(stars, ccd_index), radius_px=6.0, min_stars=5)
    header = ccdwcs.map_cards(maps)
    header["CWIDTH"] = 1  # a card that only starts like the map cards
    back = ccdwcs.maps_from_header(header)
    assert back == maps
    ccdwcs.remove_cards(header)
    assert list(header.keys()) == ["CWIDTH"]
    assert ccdwcs.maps_from_header(header) is None


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
    turn = math.radians(0.8)
    maps = ccdwcs.FrameMaps([ccdwcs.CCDMap(0, (0, 120, 0, 120), (59.5, 59.5)),
                             ccdwcs.CCDMap(1, (140, 260, 0, 120), (199.5, 59.5), (1.6, -0.9),
                                           ((math.cos(turn), -math.sin(turn)), (math.sin(turn), math.cos(turn))))],
                            ccdwcs.Smooth((129.5, 59.5), 130.0, 2, (0.0, 0.0, 0.0, 0.0, 0.5),
                                          (0.0, 0.0, -0.3, 0.0, 0.0)))
    on_ccd = np.array([[30.0, 30.0], [90.0, 95.0], [160.0, 20.0], [235.0, 100.0]])
    image = _gaussian(shape, on_ccd).astype(np.float32)
    mask = np.zeros(shape, np.uint16)
    # where each star really is on the sky: mosaic pixel -> its CCD's map -> frame WCS
    frame_xy = maps.to_frame(on_ccd)
    sky = frame_wcs.pixel_to_world(frame_xy[:, 0], frame_xy[:, 1])
    out_wcs = _sky_wcs((140, 280), 0.25)
    out_wcs.wcs.crval = [150.0005, 2.0003]
    out_wcs.wcs.set()
    expected = np.column_stack(out_wcs.world_to_pixel(sky))
    for with_maps in (True, False):
        data, _, _ = resample.resample(image, np.ones(shape, np.float32), mask, frame_wcs, out_wcs, (140, 280),
                                       step=8, ccd_maps=maps if with_maps else None)
        found = np.array([_centroid(data, x, y) for x, y in expected])
        error = np.hypot(*(found - expected).T)
        if with_maps:
            assert np.all(error < 0.03), error
        else:
            assert error[2:].max() > 1.0  # one WCS for the frame puts CCD 1's stars pixels off
