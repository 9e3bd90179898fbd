"""Frame-to-frame alignment with all detected sources (many more than Gaia stars)."""

from __future__ import annotations

import numpy as np
import pytest

from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.astrometry_frames import simulate_frame, wcs_error_arcsec
from potpyri_core.stages.align import align_frames
from potpyri_core.stages.astrometry import AstrometryParams, away_from_border, detect_stars, solve_frame, start_wcs
from potpyri_core.stages.wcsfit import from_tangent_plane

pytest.importorskip("potpyri_gemini")

PARAMS = AstrometryParams(backends=("catalog",))


@pytest.fixture(scope="module")
def frames():
    gmos = PluginManager().instrument("GMOS-N")
    sims = [simulate_frame(gmos, 21, n_gaia=8, dither_arcsec=d, pointing_error_arcsec=30.0, pa_deg=15.0)
            for d in ((0.0, 0.0), (20.0, 12.0), (-15.0, 25.0))]
    stars = [away_from_border(detect_stars(s.frame.data, np.sqrt(s.frame.variance), s.frame.mask, 5.0),
                              s.frame.data.shape, 5.0) for s in sims]
    solutions = [solve_frame(s.frame, s.reference, gmos, PARAMS, stars=t) for s, t in zip(sims, stars, strict=True)]
    return gmos, sims, stars, solutions


def test_sparse_frames_align_to_the_reference(frames):
    _, sims, stars, solutions = frames
    assert all(len(t) > 3 * s.n_gaia_in_frame for t, s in zip(stars, sims, strict=True))
    # spoil frame 1's catalog solution by 0.3" to see the alignment bring it back
    spoiled = solutions[1].wcs.deepcopy()
    ra, dec = from_tangent_plane(np.array([[0.3, 0.0]]), *spoiled.wcs.crval)
    spoiled.wcs.crval = [float(ra[0]), float(dec[0])]
    spoiled.wcs.set()
    assert wcs_error_arcsec(spoiled, sims[1].true_wcs, sims[1].truth) > 0.25
    wcss = [solutions[0].wcs, spoiled, solutions[2].wcs]
    result = align_frames(stars, wcss, [s.frame.data.shape for s in sims], 0, PARAMS)
    assert result[0].fit is None
    for k in (1, 2):
        assert len(result[k].fit.source_index) >= 20, result[k].message
        assert wcs_error_arcsec(result[k].fit.wcs, sims[k].true_wcs, sims[k].truth) <= 0.03


def test_unsolved_frame_is_aligned_blind(frames):
    gmos, sims, stars, solutions = frames
    starts = [None, start_wcs(sims[1].frame, gmos), None]
    result = align_frames(stars, [solutions[0].wcs, None, solutions[2].wcs], [s.frame.data.shape for s in sims],
                          0, PARAMS, starts)
    assert result[1].message.startswith("blind-aligned")
    assert wcs_error_arcsec(result[1].fit.wcs, sims[1].true_wcs, sims[1].truth) <= 0.03
