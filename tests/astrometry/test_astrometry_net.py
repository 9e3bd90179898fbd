"""astrometry.net backend: index built from the simulated field's Gaia catalog, solve-field run
on our star list; the refined solution agrees with the built-in catalog solver."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.astrometry_frames import simulate_frame, wcs_error_arcsec
from potpyri_core.stages import astrometry_net
from potpyri_core.stages.astrometry import AstrometryParams, solve_frame

pytest.importorskip("potpyri_gemini")
pytestmark = pytest.mark.skipif(not astrometry_net.available(),
                                reason="solve-field / build-astrometry-index not installed (Debian astrometry.net)")


def test_solve_field_agrees_with_catalog_solver(tmp_path):
    gmos = PluginManager().instrument("GMOS-N")
    sim = simulate_frame(gmos, 3, pa_deg=70.0, n_gaia=12, pointing_error_arcsec=60.0)
    side_arcmin = sim.frame.data.shape[1] * gmos.pixel_scale * 2 / 60.0
    written = astrometry_net.build_index(sim.reference["ra"], sim.reference["dec"], sim.reference["mag_G"],
                                         tmp_path / "index", side_arcmin)
    assert written
    net = solve_frame(sim.frame, sim.reference, gmos,
                      AstrometryParams(backends=("astrometry.net",), index_dir=str(tmp_path / "index")))
    builtin = solve_frame(sim.frame, sim.reference, gmos, AstrometryParams(backends=("catalog",)))
    assert net.backend == "astrometry.net"
    ny, nx = sim.frame.data.shape
    grid = np.array([[x, y] for x in np.linspace(0, nx - 1, 5) for y in np.linspace(0, ny - 1, 5)])
    a = SkyCoord(*net.wcs.all_pix2world(grid, 0).T, unit="deg")
    b = SkyCoord(*builtin.wcs.all_pix2world(grid, 0).T, unit="deg")
    assert a.separation(b).arcsec.max() <= 0.05
    assert wcs_error_arcsec(net.wcs, sim.true_wcs, sim.truth) <= 0.03


def test_missing_index_is_a_clear_reason(tmp_path):
    gmos = PluginManager().instrument("GMOS-N")
    sim = simulate_frame(gmos, 4, n_gaia=10)
    with pytest.raises(Exception, match="no index files"):
        solve_frame(sim.frame, sim.reference, gmos,
                    AstrometryParams(backends=("astrometry.net",), index_dir=str(tmp_path)))
