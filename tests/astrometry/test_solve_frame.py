"""Blind solving of simulated sparse frames against the truth WCS."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.astrometry_frames import simulate_frame, wcs_error_arcsec
from potpyri_core.stages.astrometry import (
    AstrometryError,
    AstrometryParams,
    failure_header,
    solution_header,
    solve_frame,
)

pytest.importorskip("potpyri_gemini")
pytest.importorskip("potpyri_keck")

CATALOG_ONLY = AstrometryParams(backends=("catalog",))


@pytest.fixture(scope="module")
def pm():
    return PluginManager()


@pytest.mark.parametrize(("seed", "pa", "flip", "pa_error"), [(1, 0.0, False, 0.0), (2, 77.0, True, 0.0),
                                                              (13, 200.0, False, 165.0), (4, 310.0, True, -40.0)])
def test_gmos_header_wcs_off_by_minutes_rotated_and_flipped(pm, seed, pa, flip, pa_error):
    gmos = pm.instrument("GMOS-N")
    sim = simulate_frame(gmos, seed, n_gaia=10, pointing_error_arcsec=120.0, pa_deg=pa, flip=flip,
                         header_pa_error_deg=pa_error, header_flip=False)
    assert 6 <= sim.n_gaia_in_frame <= 12
    solution = solve_frame(sim.frame, sim.reference, gmos, CATALOG_ONLY)
    assert solution.n_matched >= 5
    assert wcs_error_arcsec(solution.wcs, sim.true_wcs, sim.truth) <= 0.03
    assert (np.linalg.det(solution.wcs.wcs.cd) > 0) == flip


def test_lris_pointing_keywords_only_ten_arcmin_off(pm):
    lris = pm.instrument("LRIS")
    sim = simulate_frame(lris, 15, n_gaia=10, pointing_error_arcsec=600.0, pa_deg=123.0, pointing_keywords=True,
                         header_pa_error_deg=2.0)
    assert 6 <= sim.n_gaia_in_frame <= 12
    assert sim.frame.header["WCSORIG"] == "pointing"
    solution = solve_frame(sim.frame, sim.reference, lris, CATALOG_ONLY)
    assert wcs_error_arcsec(solution.wcs, sim.true_wcs, sim.truth) <= 0.03


def test_wrong_field_fails_with_a_reason_and_cards(pm):
    gmos = pm.instrument("GMOS-N")
    sim = simulate_frame(gmos, 5, n_gaia=10, pointing_error_arcsec=10.0)
    other = simulate_frame(gmos, 6, n_gaia=10, pointing_error_arcsec=10.0, ra=185.3)
    with pytest.raises(AstrometryError, match="catalog: ") as info:
        solve_frame(sim.frame, other.reference, gmos, CATALOG_ONLY)
    cards = failure_header(str(info.value))
    assert cards["ASTSTAT"] == "FAIL" and "catalog" in cards["ASTREASN"]


def test_solution_cards(pm):
    gmos = pm.instrument("GMOS-N")
    sim = simulate_frame(gmos, 7, n_gaia=12)
    cards = solution_header(solve_frame(sim.frame, sim.reference, gmos, CATALOG_ONLY))
    assert cards["ASTSTAT"] == "PASS" and cards["ASTNMAT"] >= 5
    assert cards["CTYPE1"] == "RA---TAN-SIP" and cards["ASTBACK"] == "catalog"
    assert cards["RADISP"] < 0.05 and cards["ASTCHANC"] < 1e-3


def test_too_few_catalog_stars(pm):
    gmos = pm.instrument("GMOS-N")
    sim = simulate_frame(gmos, 8, n_gaia=10)
    with pytest.raises(AstrometryError):
        solve_frame(sim.frame, Table(sim.reference[:3]), gmos, CATALOG_ONLY)


def test_params_are_strict():
    with pytest.raises(ValueError):
        AstrometryParams(max_offset=3.0)
    assert AstrometryParams().min_matched == 5
